"""Lookups derived from the literal tables in wbxml/codepages.py."""

from __future__ import annotations

from wbxml.codepages import BINARY_ELEMENTS, NAMESPACES, TOKENS

# The namespace that marks decoded content the tree cannot hold as text
# (see wbxml/__init__.py, "Binary content").
WBXML_NS = "urn:x-eas-gateway:wbxml"
RAW_ATTR = "{%s}raw" % WBXML_NS

# Page number -> XML namespace ("AirSync:") and back.
NAMESPACE_OF_PAGE: dict[int, str] = {page: name + ":" for page, name in NAMESPACES.items()}
PAGE_OF_NAMESPACE: dict[str, int] = {ns: page for page, ns in NAMESPACE_OF_PAGE.items()}

# Names that encode to a token although decoding gives the token another name.
# [MS-ASWBXML] 2.1.2.1.15: Provision 0x10 is DeviceEncryptionEnabled in 12.0.
TAG_ALIASES: dict[tuple[int, str], int] = {(14, "DeviceEncryptionEnabled"): 0x10}


def clark(page: int, name: str) -> str:
    """The lxml tag ("{AirSync:}Sync") of element ``name`` on code page ``page``."""
    return "{%s}%s" % (NAMESPACE_OF_PAGE[page], name)


def _tag_table() -> dict[str, tuple[int, int]]:
    table = {clark(page, name): (page, token) for page, tokens in TOKENS.items() for token, name in tokens.items()}
    table.update({clark(page, name): (page, token) for (page, name), token in TAG_ALIASES.items()})
    return table


# "{AirSync:}Sync" -> (code page, token)
TOKEN_OF_TAG: dict[str, tuple[int, int]] = _tag_table()

# lxml tags of the elements transmitted as OPAQUE (MS-ASDTYPE 2.7.1).
BINARY_TAGS: frozenset[str] = frozenset(clark(page, name) for page, name in BINARY_ELEMENTS)
