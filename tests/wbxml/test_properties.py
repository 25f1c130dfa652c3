"""Properties: generated trees over every code page round-trip; any bytes
either decode or raise WBXMLError (never anything else)."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

import wbxml
from tests.wbxml import strategies
from tests.wbxml.dialects import CORPUS, canonical

SEEDS = [p.read_bytes() for p in sorted((CORPUS / "pyactivesync-wire").glob("*.wbxml"))] + [
    p.read_bytes() for p in sorted((CORPUS / "libwbxml" / "derived-wbxml").glob("*.wbxml"))
]


def _fold_empty_raw(root: etree._Element) -> etree._Element:
    # Empty raw content is written as a bare token (device form) and so comes
    # back as an element without content.
    for el in root.iter():
        if el.get(wbxml.RAW_ATTR) is not None and not wbxml.element_bytes(el):
            del el.attrib[wbxml.RAW_ATTR]
            el.text = None
    return root


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(strategies.trees())
def test_round_trip_of_generated_trees_over_every_code_page(root: etree._Element) -> None:
    data = wbxml.encode(root)
    back = wbxml.decode(data)
    assert canonical(back) == canonical(_fold_empty_raw(root))
    assert wbxml.encode(back) == data


def test_every_code_page_is_generated() -> None:
    namespaces = {n + ":" for n in wbxml.codepages.NAMESPACES.values()}
    assert {etree.QName(t).namespace for t in strategies.ALL_TAGS} == namespaces


@settings(max_examples=1500, deadline=None)
@given(st.binary(max_size=200))
def test_any_bytes_decode_or_raise_wbxml_error(data: bytes) -> None:
    _decode_or_wbxml_error(data)


@settings(max_examples=1500, deadline=None)
@given(st.binary(max_size=120))
def test_any_body_after_a_valid_header(body: bytes) -> None:
    _decode_or_wbxml_error(b"\x03\x01\x6a\x00" + body)


@settings(max_examples=1500, deadline=None)
@given(st.sampled_from(SEEDS), st.data())
def test_mutated_real_documents(seed: bytes, data: st.DataObject) -> None:
    buf = bytearray(seed)
    for _ in range(data.draw(st.integers(1, 4))):
        pos = data.draw(st.integers(0, len(buf) - 1))
        op = data.draw(st.sampled_from(["flip", "insert", "delete"]))
        if op == "flip":
            buf[pos] = data.draw(st.integers(0, 255))
        elif op == "insert":
            buf[pos:pos] = data.draw(st.binary(min_size=1, max_size=4))
        elif len(buf) > 1:
            del buf[pos]
    _decode_or_wbxml_error(bytes(buf))


def _decode_or_wbxml_error(data: bytes) -> None:
    try:
        root = wbxml.decode(data)
    except wbxml.WBXMLError:
        return
    # Whatever decodes also encodes and decodes to the same tree.
    assert canonical(wbxml.decode(wbxml.encode(root))) == canonical(_fold_empty_raw(root))
