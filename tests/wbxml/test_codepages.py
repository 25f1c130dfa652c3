"""The code page tables against MS-ASWBXML 2.1.2.1 and the spec's own example."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from lxml import etree

import wbxml
from wbxml import codepages
from wbxml.codepages import BINARY_ELEMENTS, NAMESPACES, TOKENS
from wbxml.tokens import TOKEN_OF_TAG, clark


def test_every_page_0_to_25_is_present_with_its_namespace() -> None:
    assert sorted(TOKENS) == list(range(26))
    assert sorted(NAMESPACES) == list(range(26))
    assert len(set(NAMESPACES.values())) == 26


def test_tokens_are_tag_tokens_and_names_unique_per_page() -> None:
    for page, tokens in TOKENS.items():
        assert tokens, page
        for token, name in tokens.items():
            assert 0x05 <= token <= 0x3F, (page, hex(token))
            assert re.fullmatch(r"[A-Za-z][A-Za-z0-9]*", name), (page, name)
        assert len(set(tokens.values())) == len(tokens), f"duplicate name on page {page}"


def test_source_has_no_duplicate_keys() -> None:
    # A dict literal silently keeps the last of two equal keys; read the source.
    tree = ast.parse(Path(codepages.__file__).read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            keys = [ast.literal_eval(k) for k in node.keys if k is not None]
            assert len(keys) == len(set(keys)), f"duplicate key in dict at line {node.lineno}"


def test_names_and_tokens_from_the_specification() -> None:
    # Spot checks of rows that other implementations get wrong or lack.
    expected = {
        (25, "MaxPictures"): 0x20,  # MS-ASWBXML 2.1.2.1.26: the spec decides
        (25, "MaxSize"): 0x21,
        (25, "Picture"): 0x22,
        (25, "MailBoxSearchCriterion"): 0x08,
        (25, "GalSearchCriterion"): 0x19,
        (17, "InstanceId"): 0x2D,
        (17, "Content"): 0x1F,
        (22, "IsDraft"): 0x15,
        (22, "Send"): 0x17,
        (21, "Mime"): 0x10,
        (21, "ForwardeeEmail"): 0x18,
        (14, "AccountOnlyRemoteWipe"): 0x3B,
        (8, "ProposedStartTime"): 0x10,
        (8, "SendResponse"): 0x12,
        (4, "ClientUid"): 0x3C,
        (2, "Status"): 0x3B,
        (0, "HeartbeatInterval"): 0x29,
        (13, "HeartbeatInterval"): 0x08,
        (18, "RightsManagementInformation"): 0x2B,
    }
    for (page, name), token in expected.items():
        assert TOKEN_OF_TAG[clark(page, name)] == (page, token), (page, name)


def test_alias_encodes_to_the_same_token() -> None:
    assert TOKEN_OF_TAG["{Provision:}DeviceEncryptionEnabled"] == \
        TOKEN_OF_TAG["{Provision:}RequireStorageCardEncryption"]


def test_binary_elements_exist() -> None:
    for page, name in BINARY_ELEMENTS:
        assert name in TOKENS[page].values()


# MS-ASWBXML section 4 ("Protocol Examples"): a Sync response adding a contact,
# its XML and the WBXML bytes printed by the specification.
SPEC_EXAMPLE_XML = b"""<Sync xmlns="AirSync:" xmlns:airsyncbase="AirSyncBase:" xmlns:contacts="Contacts:">
<Collections><Collection><Class>Contacts</Class><SyncKey>2</SyncKey><CollectionId>2</CollectionId>
<Status>1</Status><Commands><Add><ServerId>2:1</ServerId><ApplicationData>
<airsyncbase:Body><airsyncbase:Type>1</airsyncbase:Type>
<airsyncbase:EstimatedDataSize>0</airsyncbase:EstimatedDataSize>
<airsyncbase:Truncated>1</airsyncbase:Truncated></airsyncbase:Body>
<contacts:FileAs>Funk, Don</contacts:FileAs><contacts:FirstName>Don</contacts:FirstName>
<contacts:LastName>Funk</contacts:LastName><airsyncbase:NativeBodyType>1</airsyncbase:NativeBodyType>
</ApplicationData></Add></Commands></Collection></Collections></Sync>"""
SPEC_EXAMPLE_PREFIX = bytes.fromhex(
    "03 01 6A 00 45 5C 4F 50 03 43 6F 6E 74 61 63 74 73 00 01 4B 03 32 00 01 52 03 32 00 01 4E 03 31 00 01"
    " 56 47 4D 03 32 3A 31 00 01 5D 00 11 4A 46 03 31 00 01 4C 03 30 00 01 4D 03 31 00 01 01 00 01 5E 03 46"
    " 75 6E 6B"
)


def test_specification_example_encodes_to_the_printed_bytes() -> None:
    root = etree.fromstring(SPEC_EXAMPLE_XML, etree.XMLParser(remove_blank_text=True))
    data = wbxml.encode(root)
    assert data.startswith(SPEC_EXAMPLE_PREFIX)
    # The rest, derived from the same tables: ", Don", FirstName, LastName,
    # back to AirSyncBase for NativeBodyType, then six ENDs.
    rest = b", Don\x00\x01\x5f\x03Don\x00\x01\x69\x03Funk\x00\x01\x00\x11\x56\x031\x00\x01" + b"\x01" * 6
    assert data == SPEC_EXAMPLE_PREFIX + rest
    assert wbxml.encode(wbxml.decode(data)) == data
