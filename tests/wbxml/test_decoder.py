"""Decoding: the WBXML 1.3 grammar as EAS peers use it, and every way it can fail."""

from __future__ import annotations

import json

import pytest

import wbxml
from tests.wbxml.dialects import CORPUS
from wbxml import LimitExceededError, MalformedError, TruncatedError, UnknownTokenError, UnsupportedError, WBXMLError

H = b"\x03\x01\x6a\x00"  # WBXML 1.3, unknown public id, UTF-8, no string table


def test_simple_document() -> None:
    root = wbxml.decode(H + b"\x00\x07\x56\x52\x030\x00\x01\x01")
    assert root.tag == "{FolderHierarchy:}FolderSync"
    assert root[0].tag == "{FolderHierarchy:}SyncKey"
    assert root[0].text == "0"


def test_empty_element_and_content_flag_without_content() -> None:
    root = wbxml.decode(H + b"\x45\x0b\x4c\x01\x01")
    assert [c.tag for c in root] == ["{AirSync:}SyncKey", "{AirSync:}ClientId"]
    assert root[0].text is None and root[1].text is None


def test_switch_page_anywhere() -> None:
    # Before the root, twice in a row, before END, and after the root.
    data = H + b"\x00\x11\x00\x00\x45\x00\x11\x4a\x00\x00\x01\x01\x00\x07"
    root = wbxml.decode(data)
    assert root.tag == "{AirSync:}Sync"
    assert root[0].tag == "{AirSyncBase:}Body"


def test_page_is_per_document_not_per_element() -> None:
    # After a child on page 17 ends, tokens stay on page 17 until switched.
    data = H + b"\x45\x00\x11\x4a\x01\x4a\x01\x01"
    root = wbxml.decode(data)
    assert [c.tag for c in root] == ["{AirSyncBase:}Body", "{AirSyncBase:}Body"]


def test_string_table_and_str_t() -> None:
    table = b"abc\x00hello\x00"
    data = b"\x03\x01\x6a" + bytes([len(table)]) + table + b"\x45\x4b\x83\x04\x01\x4c\x83\x00\x03!\x00\x01\x01"
    root = wbxml.decode(data)
    assert root[0].text == "hello"
    assert root[1].text == "abc!"


def test_literal_public_id_from_the_string_table() -> None:
    table = b"-//AIRSYNC//DTD AirSync//EN\x00"
    data = b"\x03\x00\x00\x6a" + bytes([len(table)]) + table + b"\x05"
    assert wbxml.decode(data).tag == "{AirSync:}Sync"


def test_wbxml_1_0_header_has_no_charset() -> None:
    assert wbxml.decode(b"\x00\x01\x00\x45\x4b\x031\x00\x01\x01")[0].text == "1"


def test_latin1_charset_is_transcoded() -> None:
    root = wbxml.decode(b"\x03\x01\x04\x00\x45\x4b\x03caf\xe9\x00\x01\x01")
    assert root[0].text == "café"


def test_unsupported_charset() -> None:
    with pytest.raises(UnsupportedError, match="charset"):
        wbxml.decode(b"\x03\x01\x83\x77\x00\x05")


def test_entity() -> None:
    root = wbxml.decode(H + b"\x45\x4b\x03a\x00\x02\x81\x7f\x03b\x00\x01\x01")
    assert root[0].text == "a\u00ffb"


@pytest.mark.parametrize("code", [b"\x00", b"\x83\xb0\x00", b"\x84\xc4\x80\x00"])
def test_entity_that_is_not_a_character(code: bytes) -> None:
    with pytest.raises(MalformedError, match="entity"):
        wbxml.decode(H + b"\x45\x4b\x02" + code + b"\x01\x01")


def test_text_needing_escapes_and_carriage_returns() -> None:
    text = "a & b < c > d ]]> \r\n e\t"
    root = wbxml.decode(H + b"\x45\x4b\x03" + text.encode() + b"\x00\x01\x01")
    assert root[0].text == text


def test_non_ascii_text() -> None:
    text = "Grüße, 日本語, emoji \U0001f600"
    assert wbxml.decode(H + b"\x45\x4b\x03" + text.encode() + b"\x00\x01\x01")[0].text == text


def test_several_strings_in_one_element_are_joined() -> None:
    assert wbxml.decode(H + b"\x45\x4b\x03ab\x00\x03cd\x00\x01\x01")[0].text == "abcd"


def test_opaque_is_kept_as_bytes() -> None:
    payload = bytes(range(256))
    root = wbxml.decode(H + b"\x00\x15\x45\x50\xc3\x82\x00" + payload + b"\x01\x01")
    mime = root[0]
    assert mime.get(wbxml.RAW_ATTR) == "opaque"
    assert wbxml.element_bytes(mime) == payload


def test_opaque_in_any_element_and_empty_opaque() -> None:
    root = wbxml.decode(H + b"\x45\x4b\xc3\x02\x31\x32\x01\x4c\xc3\x00\x01\x01")
    assert wbxml.element_text(root[0]) == "12"
    assert wbxml.element_bytes(root[1]) == b""
    assert root[1].get(wbxml.RAW_ATTR) == "opaque"


def test_inline_string_in_a_byte_array_element_stays_a_string() -> None:
    data = H + b"\x00\x15\x45\x50\x03Subject: hi\x00\x01\x01"
    root = wbxml.decode(data)
    assert root[0].get(wbxml.RAW_ATTR) == "string"
    assert wbxml.element_text(root[0]) == "Subject: hi"
    assert wbxml.encode(root) == data


def test_string_and_opaque_mixed_in_one_element() -> None:
    root = wbxml.decode(H + b"\x45\x4b\x03ab\x00\xc3\x01\xff\x01\x01")
    assert wbxml.element_bytes(root[0]) == b"ab\xff"


@pytest.mark.parametrize("raw", [b"bell\x07", b"bad utf8 \xff\xfe", b"\xef\xbf\xbe"])
def test_strings_that_are_not_xml_text_are_kept_exactly(raw: bytes) -> None:
    data = H + b"\x45\x4b\x03" + raw + b"\x00\x01\x01"
    root = wbxml.decode(data)
    assert root[0].get(wbxml.RAW_ATTR) == "string"
    assert wbxml.element_bytes(root[0]) == raw
    assert wbxml.encode(root) == data


def test_mixed_content_text_around_children() -> None:
    root = wbxml.decode(H + b"\x45\x03a\x00\x0b\x03b\x00\x01")
    assert root.text == "a"
    assert root[0].tail == "b"


def test_binary_content_mixed_with_child_elements_is_refused() -> None:
    # Mixed content is fine as text; binary content cannot sit beside children
    # in a tree (and no EAS peer sends it).
    with pytest.raises(UnsupportedError, match="opaque data after a child"):
        wbxml.decode(H + b"\x45\x0b\xc3\x01x\x01")
    with pytest.raises(UnsupportedError, match="opaque data before a child"):
        wbxml.decode(H + b"\x45\xc3\x01x\x0b\x01")
    with pytest.raises(UnsupportedError, match="non-XML characters in text before a child"):
        wbxml.decode(H + b"\x45\x03\x07\x00\x0b\x01")
    with pytest.raises(UnsupportedError, match="non-XML characters in text that follows"):
        wbxml.decode(H + b"\x45\x0b\x03\x07\x00\x01")


@pytest.mark.parametrize(
    ("body", "error", "reason"),
    [
        (b"\xc5\x03\x01", UnsupportedError, "attributes"),
        (b"\x45\x04\x00\x01", UnsupportedError, "LITERAL"),
        (b"\x45\x44\x00\x01", UnsupportedError, "LITERAL_C"),
        (b"\x45\x43\x05\x01\x01", UnsupportedError, "processing instruction"),
        (b"\x45\xc0\x01", UnsupportedError, "EXT_0"),
        (b"\x45\x40\x03a\x00\x01", UnsupportedError, "EXT_I_0"),
        (b"\x45\x80\x01\x01", UnsupportedError, "EXT_T_0"),
        (b"\x45\x3f\x01", UnknownTokenError, "token 0x3F on code page 0"),
        (b"\x00\x1a\x05", UnknownTokenError, "code page 26"),
        (b"\x01", MalformedError, "END without"),
        (b"\x05\x05", MalformedError, "second root"),
        (b"\x03a\x00", MalformedError, "outside the root"),
        (b"", MalformedError, "no root"),
        (b"\x00\x01", MalformedError, "no root"),
        (b"\x05\x03a\x00", MalformedError, "outside the root"),
        (b"\x45\x4b\x83\x05\x01\x01", MalformedError, "string table"),
        (b"\x45\x4b\xc3\x81\x82\x83\x84\x85\x06x\x01\x01", MalformedError, "32 bits"),
    ],
)
def test_refused_documents(body: bytes, error: type[WBXMLError], reason: str) -> None:
    with pytest.raises(error, match=reason) as info:
        wbxml.decode(H + body)
    assert info.value.http_status in (400, 413)


def test_error_knows_the_offset() -> None:
    with pytest.raises(UnknownTokenError) as info:
        wbxml.decode(H + b"\x45\x3f\x01")
    assert info.value.offset == 5


def test_bad_headers() -> None:
    with pytest.raises(TruncatedError):
        wbxml.decode(b"")
    with pytest.raises(UnsupportedError, match="version"):
        wbxml.decode(b"\x04\x01\x6a\x00\x05")
    with pytest.raises(TruncatedError, match="string table"):
        wbxml.decode(b"\x03\x01\x6a\x05ab")
    with pytest.raises(MalformedError, match="public identifier"):
        wbxml.decode(b"\x03\x00\x05\x6a\x00\x05")


def test_every_truncation_of_a_document_raises_wbxml_error() -> None:
    data = (CORPUS / "pyactivesync-wire" / "01-Provision.wbxml").read_bytes()
    wbxml.decode(data)
    for end in range(len(data)):
        with pytest.raises(WBXMLError):
            wbxml.decode(data[:end])


def test_trailing_garbage_is_refused() -> None:
    data = (CORPUS / "pyactivesync-wire" / "04-Sync.wbxml").read_bytes()
    for garbage in (b"\x01", b"\x05", b"\x03x\x00", b"\xc3\x00", b"\x45\x01"):
        with pytest.raises(WBXMLError):
            wbxml.decode(data + garbage)


@pytest.mark.parametrize(
    ("limit", "value", "body"),
    [
        ("max_size", 10, b"\x45\x4b\x03abcdefgh\x00\x01\x01"),
        ("max_depth", 3, b"\x45\x5c\x4f\x56\x01\x01\x01\x01"),
        ("max_elements", 2, b"\x45\x0b\x0b\x01"),
        ("max_string", 4, b"\x45\x4b\x03abcde\x00\x01\x01"),
        ("max_string", 4, b"\x45\x4b\xc3\x05abcde\x01\x01"),
    ],
)
def test_limits(limit: str, value: int, body: bytes) -> None:
    with pytest.raises(LimitExceededError) as info:
        wbxml.decode(H + body, **{limit: value})
    assert info.value.http_status == 413
    wbxml.decode(H + body)  # fine with the defaults


def test_limits_reject_unknown_names() -> None:
    with pytest.raises(TypeError):
        wbxml.decode(H + b"\x05", max_bananas=1)


def test_input_types() -> None:
    assert wbxml.decode(bytearray(H + b"\x05")).tag == "{AirSync:}Sync"
    assert wbxml.decode(memoryview(H + b"\x05")).tag == "{AirSync:}Sync"
    with pytest.raises(TypeError):
        wbxml.decode("not bytes")  # type: ignore[arg-type]


def test_deep_nesting_is_linear_not_recursive() -> None:
    depth = 60
    data = H + b"\x00\x0f" + b"\x53" * depth + b"\x01" * depth  # Search:And nested
    root = wbxml.decode(data)
    assert sum(1 for _ in root.iter()) == depth


# AOSP Exchange's parser test vectors (tests/src/.../ParserTest.java). AOSP's
# parser is an application parser: it skips unknown tags, refuses opaque data
# where it expects text and text where it expects an integer. A codec does
# none of that: unknown tokens are an error here, opaque data and any string
# are accepted in every element (typing is the command parsers' job). Those
# three vectors are the documented differences; the others agree.
AOSP_DIFFERENT = {"unknownTag": True, "textTagWithOpaqueData": False, "intTagWithTextData": False}


def _aosp_vectors() -> list[dict[str, object]]:
    return json.loads((CORPUS / "aosp-exchange" / "ParserTest_vectors.json").read_text())  # type: ignore[no-any-return]


@pytest.mark.parametrize("vector", _aosp_vectors(), ids=lambda v: str(v["name"]))
def test_aosp_parser_vectors(vector: dict[str, object]) -> None:
    data = bytes.fromhex(str(vector["hex"]))
    name = str(vector["name"])
    raises = AOSP_DIFFERENT.get(name, bool(vector["expect_parser_exception"]))
    if raises:
        with pytest.raises(WBXMLError):
            wbxml.decode(data)
    else:
        root = wbxml.decode(data)
        assert wbxml.encode(wbxml.decode(wbxml.encode(root))) == wbxml.encode(root)
