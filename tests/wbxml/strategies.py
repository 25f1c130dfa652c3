"""Hypothesis strategies for EAS element trees over every code page."""

from __future__ import annotations

import base64

from hypothesis import strategies as st
from lxml import etree

import wbxml
from wbxml.codepages import TOKENS
from wbxml.tokens import BINARY_TAGS, clark

ALL_TAGS = sorted(clark(page, name) for page, tokens in TOKENS.items() for name in tokens.values())
BINARY = sorted(BINARY_TAGS)

# XML 1.0 characters (no controls, no surrogates, no U+FFFE/U+FFFF).
xml_text = st.text(
    st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\ufffe\uffff") | st.sampled_from("\t\n\r"),
    min_size=1,
    max_size=40,
)


def trees(tags: list[str] = ALL_TAGS, *, raw: bool = True,
          text: st.SearchStrategy[str] = xml_text) -> st.SearchStrategy[etree._Element]:
    """Random trees; with ``raw`` leaves may hold opaque or non-XML bytes."""

    def leaf_content(draw: st.DrawFn, el: etree._Element) -> None:
        kind = draw(st.sampled_from(["empty", "text", "text", "opaque"] + (["raw"] if raw else [])))
        if el.tag in BINARY_TAGS and kind == "text" and not raw:
            # A byte-array element holds bytes; in libwbxml's XML dialect text
            # there would mean base64, in ours literal text.
            kind = "opaque"
        if kind == "text":
            el.text = draw(text)
        elif kind == "opaque" and (raw or el.tag in BINARY_TAGS):
            wbxml.set_opaque(el, draw(st.binary(max_size=300)))
        elif kind == "raw":
            data = draw(st.binary(min_size=1, max_size=40).filter(lambda b: b"\x00" not in b))
            el.text = base64.b64encode(data).decode()
            el.set(wbxml.RAW_ATTR, "string")

    @st.composite
    def build(draw: st.DrawFn, depth: int = 0) -> etree._Element:
        el = etree.Element(draw(st.sampled_from(tags)))
        n = draw(st.integers(0, 4)) if depth < 4 else 0
        if n == 0:
            leaf_content(draw, el)
        for _ in range(n):
            el.append(draw(build(depth + 1)))
        return el

    return build()
