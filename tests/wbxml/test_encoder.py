"""Encoding: the form real devices and Exchange put on the wire."""

from __future__ import annotations

import pytest
from lxml import etree

import wbxml
from wbxml import MalformedError, UnknownTokenError, UnsupportedError

H = b"\x03\x01\x6a\x00"


def E(tag: str, *children: etree._Element, text: str | None = None) -> etree._Element:
    el = etree.Element(tag)
    el.text = text
    el.extend(children)
    return el


def test_header_and_switch_page_only_on_change() -> None:
    root = E(
        "{AirSync:}Sync",
        E("{AirSyncBase:}Body", E("{AirSyncBase:}Type", text="1")),
        E("{AirSyncBase:}NativeBodyType", text="1"),
        E("{AirSync:}Status", text="1"),
    )
    assert wbxml.encode(root) == (
        H + b"\x45\x00\x11\x4a\x46\x031\x00\x01\x01\x56\x031\x00\x01\x00\x00\x4e\x031\x00\x01\x01"
    )


def test_empty_elements_have_no_content_flag() -> None:
    assert wbxml.encode(E("{AirSync:}Sync", E("{AirSync:}GetChanges"), E("{AirSync:}SyncKey", text=""))) == (
        H + b"\x45\x13\x0b\x01"
    )


def test_byte_array_elements_are_opaque() -> None:
    mime = E("{ComposeMail:}Mime", text="Subject: x\r\n\r\nbody")
    root = E("{ComposeMail:}SendMail", E("{ComposeMail:}ClientId", text="1"), mime)
    data = wbxml.encode(root)
    assert data == H + b"\x00\x15\x45\x51\x031\x00\x01\x50\xc3\x12Subject: x\r\n\r\nbody\x01\x01"


def test_set_opaque_and_long_opaque_length() -> None:
    el = E("{Email2:}ConversationId")
    payload = bytes(range(256)) * 2
    wbxml.set_opaque(el, payload)
    data = wbxml.encode(E("{AirSync:}ApplicationData", el))
    assert data == H + b"\x5d\x00\x16\x49\xc3\x84\x00" + payload + b"\x01\x01"
    assert wbxml.element_bytes(wbxml.decode(data)[0]) == payload


def test_non_ascii_text_is_utf8() -> None:
    data = wbxml.encode(E("{AirSync:}Sync", E("{AirSync:}SyncKey", text="ü€")))
    assert data == H + b"\x45\x4b\x03" + "ü€".encode() + b"\x00\x01\x01"


def test_mixed_content_tail_text() -> None:
    root = E("{AirSync:}Sync", text="a")
    child = etree.SubElement(root, "{AirSync:}SyncKey")
    child.tail = "b"
    assert wbxml.encode(root) == H + b"\x45\x03a\x00\x0b\x03b\x00\x01"


def test_alias_name() -> None:
    data = wbxml.encode(E("{Provision:}EASProvisionDoc", E("{Provision:}DeviceEncryptionEnabled", text="0")))
    assert data == H + b"\x00\x0e\x4d\x50\x030\x00\x01\x01"


@pytest.mark.parametrize(
    ("tag", "match"),
    [("{AirSync}Sync", "not an MS-ASWBXML code page"), ("{AirSync:}Nope", "no such tag"), ("Sync", "namespace")],
)
def test_unknown_elements(tag: str, match: str) -> None:
    with pytest.raises(UnknownTokenError, match=match):
        wbxml.encode(E(tag))


def test_attributes_comments_and_bad_raw_content_are_refused() -> None:
    el = E("{AirSync:}Sync")
    el.set("id", "1")
    with pytest.raises(UnsupportedError, match="attributes"):
        wbxml.encode(el)
    root = E("{AirSync:}Sync")
    root.append(etree.Comment("hi"))
    with pytest.raises(UnsupportedError, match="comments"):
        wbxml.encode(root)
    raw = E("{AirSync:}SyncKey", text="!!not base64!!")
    raw.set(wbxml.RAW_ATTR, "opaque")
    with pytest.raises(MalformedError, match="base64"):
        wbxml.encode(raw)
    raw = E("{AirSync:}SyncKey", text="AAA=")
    raw.set(wbxml.RAW_ATTR, "string")
    with pytest.raises(MalformedError, match="NUL"):
        wbxml.encode(raw)


def test_not_an_element() -> None:
    with pytest.raises(TypeError):
        wbxml.encode(b"<Sync/>")  # type: ignore[arg-type]


def test_render_truncates_long_text_and_binary() -> None:
    root = E("{AirSync:}Sync", E("{AirSyncBase:}Data", text="x" * 1000))
    mime = etree.SubElement(root, "{ComposeMail:}Mime")
    wbxml.set_opaque(mime, b"\x00" * 5000)
    text = wbxml.render(root, max_text=50)
    assert '<Sync xmlns="AirSync:">' in text
    assert "[1000 chars]" in text
    assert "[opaque 5000 bytes: 00 00" in text
    assert len(text) < 500
