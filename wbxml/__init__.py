"""MS-ASWBXML codec: WBXML bytes <-> lxml element tree. Sans-I/O.

    root = wbxml.decode(data)            # bytes -> lxml element
    data = wbxml.encode(root)            # lxml element -> bytes
    log.info(wbxml.render(root))         # readable XML for logs

Element namespaces are the code page names with a trailing colon, as in the
XML examples of MS-ASCMD: ``{AirSync:}Sync``, ``{AirSyncBase:}Body``. Tag names
are the ones of MS-ASWBXML section 2.1.2.1 (wbxml/codepages.py).

Binary content. An lxml tree holds text only, and XML text cannot carry every
byte. Content that cannot be text is kept exactly, base64-encoded in the
element's text, and the element carries the attribute
``{urn:x-eas-gateway:wbxml}raw``:

- ``raw="opaque"``: the content arrived as WBXML OPAQUE (e.g. ComposeMail:Mime);
- ``raw="string"``: an inline string whose bytes are not valid XML text
  (control characters, invalid UTF-8).

Read content with ``element_bytes(el)`` (exact bytes) or ``element_text(el)``
(text; invalid UTF-8 replaced), write binary content with ``set_opaque(el,
data)``. ``encode`` writes raw-marked elements back byte for byte, and writes
the byte-array elements of MS-ASDTYPE 2.7.1 as OPAQUE even when given text.
"""

from __future__ import annotations

import binascii
from typing import Any

from lxml import etree

from wbxml.decoder import Limits
from wbxml.decoder import decode as _decode
from wbxml.encoder import encode
from wbxml.errors import (
    LimitExceededError,
    MalformedError,
    TruncatedError,
    UnknownTokenError,
    UnsupportedError,
    WBXMLError,
)
from wbxml.render import render
from wbxml.tokens import RAW_ATTR, WBXML_NS

__all__ = [
    "Limits",
    "LimitExceededError",
    "MalformedError",
    "RAW_ATTR",
    "TruncatedError",
    "UnknownTokenError",
    "UnsupportedError",
    "WBXMLError",
    "WBXML_NS",
    "decode",
    "element_bytes",
    "element_text",
    "encode",
    "render",
    "set_opaque",
    "set_string_bytes",
]


_DEFAULT_LIMITS = Limits()


def decode(data: bytes, **limits: Any) -> etree._Element:
    """Decode a WBXML document into an lxml element tree.

    Keyword arguments override the fields of ``Limits`` (max_size, max_depth,
    max_elements, max_string). Raises a WBXMLError subclass for anything that
    is not a well-formed EAS document; never anything else for bad bytes.
    """
    return _decode(data, Limits(**limits) if limits else _DEFAULT_LIMITS)



def element_bytes(el: etree._Element) -> bytes:
    """The exact content bytes of an element (raw content decoded from base64)."""
    if el.get(RAW_ATTR) is not None:
        return binascii.a2b_base64((el.text or "").encode("ascii"))
    return (el.text or "").encode()


def element_text(el: etree._Element) -> str:
    """The content of an element as text; invalid UTF-8 becomes U+FFFD."""
    if el.get(RAW_ATTR) is not None:
        return element_bytes(el).decode("utf-8", "replace")
    return el.text or ""


def set_opaque(el: etree._Element, data: bytes) -> None:
    """Make ``data`` the content of ``el``, to be encoded as WBXML OPAQUE."""
    el.text = binascii.b2a_base64(data, newline=False).decode("ascii")
    el.set(RAW_ATTR, "opaque")


def set_string_bytes(el: etree._Element, data: bytes) -> None:
    """Make ``data`` the content of ``el``, encoded as an inline string byte for
    byte (e.g. a MIME message that is not valid UTF-8). ``data`` must not hold
    NUL, which ends a WBXML inline string: use ``set_opaque`` for such data."""
    if b"\0" in data:
        raise ValueError("an inline string cannot hold NUL bytes")
    el.text = binascii.b2a_base64(data, newline=False).decode("ascii")
    el.set(RAW_ATTR, "string")
