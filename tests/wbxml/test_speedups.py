"""The C fast paths (wbxml/csrc/) against the Python encoder and translator.

Encoding: the C path must give the Python encoder's bytes for every tree it
accepts, and decline (None) every tree the Python encoder refuses, so that the
error raised is the Python encoder's. Decoding: the C translation (WBXML -> XML
text) must be the Python translator's first-pass text wherever it gives one,
and decline wherever the Python translator raises. scripts/test.sh builds the extension; a test run
without it would only test the fallback, so its absence fails here.
"""

from __future__ import annotations

import base64
import gc
import tracemalloc
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

import wbxml
from tests.wbxml.strategies import trees, xml_text
from tests.wbxml.test_corpus import EAS_WBXML, _id
from wbxml import decoder, encoder
from wbxml.errors import WBXMLError

speedups = encoder._speedups
LIMITS = decoder.Limits()


def test_the_extension_is_built() -> None:
    assert encoder.ACCELERATED, (
        "wbxml/csrc/ was not compiled: reinstall with a C compiler and the Python headers "
        "(.venv/bin/pip install -e .); encode() is running on its Python path only"
    )


def both(root: etree._Element) -> bytes:
    fast = speedups.encode(root)
    slow = encoder.encode_python(root)
    assert fast is not None, "the C path declined a tree the Python encoder accepts"
    assert fast == slow
    return fast


@pytest.mark.parametrize("path", EAS_WBXML, ids=_id)
def test_corpus_documents_encode_alike(path: object) -> None:
    root = wbxml.decode(path.read_bytes())  # type: ignore[attr-defined]
    both(root)


@st.composite
def mixed_trees(draw: st.DrawFn) -> etree._Element:
    """Generated trees with text before and between child elements (tails)."""
    root = draw(trees())
    for el in root.iter():
        if len(el) and draw(st.booleans()):
            el.text = draw(xml_text)
        if el is not root and draw(st.booleans()):  # a parent has children, so it is never raw-marked
            el.tail = draw(xml_text)
    return root


@settings(max_examples=300, deadline=None)
@given(trees())
def test_generated_trees_encode_alike(root: etree._Element) -> None:
    assert wbxml.decode(both(root)) is not None


@settings(max_examples=200, deadline=None)
@given(mixed_trees())
def test_mixed_content_encodes_alike(root: etree._Element) -> None:
    both(root)


def E(tag: str, text: str | None = None, parent: etree._Element | None = None) -> etree._Element:
    el = etree.Element(tag) if parent is None else etree.SubElement(parent, tag)
    el.text = text
    return el


def test_text_split_over_text_and_cdata_nodes_is_one_string() -> None:
    parser = etree.XMLParser(strip_cdata=False)
    root = etree.fromstring(
        b'<Sync xmlns="AirSync:"><SyncKey>a<![CDATA[<b>]]>c</SyncKey>x<![CDATA[y]]><Status/>t</Sync>', parser
    )
    data = both(root)
    assert b"\x03a<b>c\x00" in data and b"\x03xy\x00" in data and b"\x03t\x00" in data


def test_empty_text_a_subelement_as_root_and_a_tail_outside_it() -> None:
    assert both(E("{AirSync:}SyncKey", "")) == wbxml.encoder.HEADER + bytes([0x0B])
    root = E("{AirSync:}Sync")
    child = E("{Email:}Subject", "s", root)
    child.tail = "ignored: the tail of the root is outside the document"
    assert both(child) == wbxml.encoder.HEADER + b"\x00\x02\x54\x03s\x00\x01"


def test_raw_marked_and_binary_elements() -> None:
    root = E("{ComposeMail:}SendMail")
    wbxml.set_opaque(E("{ComposeMail:}Mime", parent=root), bytes(range(256)) * 300)
    wbxml.set_string_bytes(E("{ComposeMail:}ClientId", parent=root), b"\xff\xfe\x01")
    wbxml.set_opaque(E("{ComposeMail:}SaveInSentItems", parent=root), b"")
    E("{Email2:}ConversationId", "text in a byte-array element", root)
    both(root)


def _chain(length: int) -> etree._Element:
    root = el = E("{AirSync:}Sync")
    for _ in range(length - 1):
        el = E("{AirSync:}Sync", parent=el)
    return root


def _declined() -> list[tuple[str, etree._Element]]:
    cases = [("unknown tag", E("{AirSync:}NoSuchTag")), ("no namespace", E("Sync")),
             ("unknown namespace", E("{Nowhere:}Sync"))]
    el = E("{AirSync:}Sync")
    el.set("id", "1")
    cases.append(("attribute", el))
    el = E("{AirSync:}SyncKey", "AAAA")
    el.set(wbxml.RAW_ATTR, "opaque")
    el.set("id", "1")
    cases.append(("raw marker and another attribute", el))
    el = E("{AirSync:}SyncKey", "AAAA")
    el.set(wbxml.RAW_ATTR, "bytes")
    cases.append(("raw marker of an unknown kind", el))
    for name, node in (("comment", etree.Comment("c")), ("processing instruction", etree.PI("pi", "x")),
                       ("entity reference", etree.Entity("amp"))):
        el = E("{AirSync:}Sync")
        E("{AirSync:}SyncKey", "1", el)
        el.append(node)
        cases.append((name, el))
    cases.append(("comment as the root", etree.Comment("c")))
    el = E("{AirSync:}SyncKey", "!!not base64!!")
    el.set(wbxml.RAW_ATTR, "opaque")
    cases.append(("raw content not base64", el))
    el = E("{AirSync:}SyncKey", "QUFB\u00e9")
    el.set(wbxml.RAW_ATTR, "opaque")
    cases.append(("raw content not ASCII", el))
    el = E("{AirSync:}SyncKey", base64.b64encode(b"a\x00b").decode())
    el.set(wbxml.RAW_ATTR, "string")
    cases.append(("raw string holding NUL", el))
    el = E("{AirSync:}Sync", "QUFB")
    el.set(wbxml.RAW_ATTR, "opaque")
    E("{AirSync:}SyncKey", "1", el)
    cases.append(("raw element with children", el))
    cases.append(("deeper than MAX_DEPTH", _chain(encoder.MAX_DEPTH + 2)))
    return cases


@pytest.mark.parametrize("name,root", _declined(), ids=[name for name, _ in _declined()])
def test_what_python_refuses_the_c_path_declines(name: str, root: etree._Element) -> None:
    assert speedups.encode(root) is None
    with pytest.raises(WBXMLError) as python_error:
        encoder.encode_python(root)
    pattern = str(python_error.value)[:30].replace("(", ".").replace(")", ".")
    with pytest.raises(type(python_error.value), match=pattern):
        wbxml.encode(root)


def test_depth_bound_is_the_python_one() -> None:
    both(_chain(encoder.MAX_DEPTH + 1))  # the deepest element is a leaf: allowed by both


def test_not_an_element_is_declined_and_refused() -> None:
    assert speedups.encode(b"<Sync/>") is None
    with pytest.raises(TypeError):
        wbxml.encode("<Sync/>")  # type: ignore[arg-type]


def assert_no_leak(call: Callable[[], object]) -> None:
    """10,000 calls must not grow traced memory (a leaked result or payload would: 10,000 x 1 KB).
    Only what was allocated from this file's frames counts: threads left by other tests (a gateway,
    its logging) allocate meanwhile too."""
    for _ in range(100):
        call()
    gc.collect()
    mine = [tracemalloc.Filter(True, __file__)]
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot().filter_traces(mine)
        for _ in range(10_000):
            call()
        gc.collect()
        after = tracemalloc.take_snapshot().filter_traces(mine)
    finally:
        tracemalloc.stop()
    grown = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    assert grown < 256 * 1024


def test_no_reference_leaks() -> None:
    root = E("{ComposeMail:}SendMail")
    wbxml.set_opaque(E("{ComposeMail:}Mime", parent=root), b"x" * 1000)
    bad = E("{AirSync:}SyncKey", "!!not base64!!")
    bad.set(wbxml.RAW_ATTR, "opaque")
    assert_no_leak(lambda: (speedups.encode(root), speedups.encode(bad)))


# ---- decoding -------------------------------------------------------------


def _translate(data: bytes, limits: decoder.Limits = LIMITS) -> bytes | None:
    return speedups.translate(data, limits.max_depth, limits.max_elements, limits.max_string)  # type: ignore[no-any-return]


def translated_alike(data: bytes, limits: decoder.Limits = LIMITS) -> bytes | None:
    """The C translation, checked against the Python one; None where C declined."""
    fast = _translate(data, limits)
    try:
        slow = decoder.translate_python(data, limits)
    except WBXMLError:
        assert fast is None, "the C translator accepted what the Python translator refuses"
        return None
    if fast is not None:
        assert fast == slow
    return fast


@pytest.mark.parametrize("path", EAS_WBXML, ids=_id)
def test_corpus_documents_translate_alike(path: object) -> None:
    data = path.read_bytes()  # type: ignore[attr-defined]
    fast = translated_alike(data)
    if data.startswith(b"\x03\x01\x6a\x00") and b"\x83" not in data[4:] and b"\x02" not in data[4:]:
        # Device form without string references or entities: C must not decline.
        # (A byte 0x83 or 0x02 may be content, so this only spares it where it cannot be.)
        assert fast is not None, "the C translator declined a device-form document"


@settings(max_examples=300, deadline=None)
@given(trees())
def test_encoded_generated_trees_translate_alike(root: etree._Element) -> None:
    assert translated_alike(wbxml.encode(root)) is not None


@settings(max_examples=2000, deadline=None)
@given(st.binary(max_size=120))
def test_any_body_translates_alike_or_is_declined(body: bytes) -> None:
    translated_alike(b"\x03\x01\x6a\x00" + body)


@settings(max_examples=1000, deadline=None)
@given(st.binary(max_size=60))
def test_any_bytes_translate_alike_or_are_declined(data: bytes) -> None:
    translated_alike(data)


def _doc(*body: bytes) -> bytes:
    return b"\x03\x01\x6a\x00" + b"".join(body)


# Sync(0x45) SyncKey(0x4B) on page 0. Valid WBXML that the C translator leaves
# to the Python one:
DECLINED_VALID = {
    "string table reference": b"\x03\x01\x6a\x02a\x00\x45\x4b\x83\x00\x01\x01",
    "entity": _doc(b"\x45\x4b\x02\x41\x01\x01"),
    "latin-1 charset": b"\x03\x01\x04\x00\x45\x4b\x03\xe9\x00\x01\x01",
    "text after a child": _doc(b"\x45\x0b\x03t\x00\x01"),
    "text before a child": _doc(b"\x45\x03t\x00\x0b\x01"),
    "two strings": _doc(b"\x45\x4b\x03a\x00\x03b\x00\x01\x01"),
    "string then opaque": _doc(b"\x45\x4b\x03a\x00\xc3\x01b\x01\x01"),
}
# and documents the Python translator refuses:
DECLINED_INVALID = {
    "attribute": _doc(b"\xc5\x01\x01"),
    "literal": _doc(b"\x04\x00\x01"),
    "unknown page": _doc(b"\x00\x63\x45\x01"),
    "unknown token": _doc(b"\x00\x01\x3f"),
    "second root": _doc(b"\x05\x05"),
    "truncated": _doc(b"\x45\x4b\x03abc"),
    "opaque past the end": _doc(b"\x45\x4b\xc3\x10ab\x01\x01"),
}


@pytest.mark.parametrize("name", sorted(DECLINED_VALID))
def test_what_the_c_translator_leaves_to_python(name: str) -> None:
    data = DECLINED_VALID[name]
    assert _translate(data) is None
    assert wbxml.decode(data).tag == "{AirSync:}Sync"


@pytest.mark.parametrize("name", sorted(DECLINED_INVALID))
def test_what_the_c_translator_declines_python_refuses(name: str) -> None:
    data = DECLINED_INVALID[name]
    assert _translate(data) is None
    with pytest.raises(WBXMLError):
        wbxml.decode(data)


def test_limits_decline_in_c_and_raise_in_python() -> None:
    deep = _doc(b"\x45" * 10, b"\x01" * 10)
    assert _translate(deep) is not None
    small = decoder.Limits(max_depth=9)
    assert _translate(deep, small) is None
    with pytest.raises(wbxml.LimitExceededError):
        wbxml.decode(deep, max_depth=9)
    many = _doc(b"\x45", b"\x0b" * 20, b"\x01")
    assert _translate(many, decoder.Limits(max_elements=20)) is None
    assert _translate(many, decoder.Limits(max_elements=21)) is not None
    text = _doc(b"\x45\x4b\x03", b"x" * 100, b"\x00\x01\x01")
    opaque = _doc(b"\x45\x4b\xc3\x64", b"x" * 100, b"\x01\x01")
    for data in (text, opaque):
        assert _translate(data, decoder.Limits(max_string=99)) is None
        assert _translate(data, decoder.Limits(max_string=100)) is not None
        with pytest.raises(wbxml.LimitExceededError):
            wbxml.decode(data, max_string=99)


def test_special_text_and_invalid_utf8() -> None:
    # Escaped characters, control characters (raw), U+FFFE (raw), CR (kept).
    for text in (b"a&b<c>d", b"tab\there\r\n", b"bell\x07", b"\xef\xbf\xbe", b"\xef\xbb\xbf BOM"):
        data = _doc(b"\x45\x4b\x03", text, b"\x00\x01\x01")
        assert translated_alike(data) is not None
        assert wbxml.element_bytes(wbxml.decode(data)[0]) == text
    # Invalid UTF-8: C writes the same text as Python's first pass, lxml refuses
    # it, and the strict pass keeps the bytes as a raw string.
    data = _doc(b"\x45\x4b\x03\xff\xfe\x00\x01\x01")
    assert translated_alike(data) is not None
    el = wbxml.decode(data)[0]
    assert el.get(wbxml.RAW_ATTR) == "string" and wbxml.element_bytes(el) == b"\xff\xfe"


def test_decode_leaks_nothing() -> None:
    data = _doc(b"\x45\x4b\xc3\x83\x68", b"x" * 1000, b"\x01\x01")
    bad = _doc(b"\x45\x4b\x03a\x00\x03b\x00\x01\x01")
    assert_no_leak(lambda: (_translate(data), _translate(bad)))
