"""The C fast path of the encoder (wbxml/_speedups.c) against the Python encoder.

The C path must give the Python encoder's bytes for every tree it accepts, and
decline (None) every tree the Python encoder refuses, so that the error raised
is the Python encoder's. scripts/test.sh builds the extension; a test run
without it would only test the fallback, so its absence fails here.
"""

from __future__ import annotations

import base64
import gc
import tracemalloc

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

import wbxml
from tests.wbxml.strategies import trees, xml_text
from tests.wbxml.test_corpus import EAS_WBXML, _id
from wbxml import encoder
from wbxml.errors import WBXMLError

speedups = encoder._speedups


def test_the_extension_is_built() -> None:
    assert encoder.ACCELERATED, (
        "wbxml/_speedups.c was not compiled: reinstall with a C compiler and the Python headers "
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
        if el is not root and el.getparent() is not None and len(el.getparent()) and draw(st.booleans()):
            if el.getparent().get(wbxml.RAW_ATTR) is None:
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
    with pytest.raises(type(python_error.value), match=str(python_error.value)[:30].replace("(", ".").replace(")", ".")):
        wbxml.encode(root)


def test_depth_bound_is_the_python_one() -> None:
    both(_chain(encoder.MAX_DEPTH + 1))  # the deepest element is a leaf: allowed by both


def test_not_an_element_is_declined_and_refused() -> None:
    assert speedups.encode(b"<Sync/>") is None
    with pytest.raises(TypeError):
        wbxml.encode("<Sync/>")  # type: ignore[arg-type]


def test_no_reference_leaks() -> None:
    root = E("{ComposeMail:}SendMail")
    wbxml.set_opaque(E("{ComposeMail:}Mime", parent=root), b"x" * 1000)
    bad = E("{AirSync:}SyncKey", "!!not base64!!")
    bad.set(wbxml.RAW_ATTR, "opaque")
    for _ in range(100):
        speedups.encode(root)
        speedups.encode(bad)
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(10_000):
            speedups.encode(root)
            speedups.encode(bad)
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    # A leaked result or payload would be 10,000 x 1 KB.
    assert grown < 256 * 1024
