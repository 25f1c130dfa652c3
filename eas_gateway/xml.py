"""Building response trees for wbxml.encode."""

from __future__ import annotations

from lxml import etree


def E(parent: etree._Element | None, tag: str, text: str | int | None = None) -> etree._Element:
    """A new element (a root when ``parent`` is None) with optional text."""
    el = etree.Element(tag) if parent is None else etree.SubElement(parent, tag)
    if text is not None:
        el.text = str(text)
    return el


def child_text(el: etree._Element, tag: str) -> str | None:
    found = el.find(tag)
    return None if found is None else (found.text or "")
