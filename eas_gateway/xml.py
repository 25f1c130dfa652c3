"""Building response trees for wbxml.encode, and reading request values."""

from __future__ import annotations

from datetime import UTC, datetime

from lxml import etree

import wbxml


def E(parent: etree._Element | None, tag: str, text: str | int | None = None) -> etree._Element:
    """A new element (a root when ``parent`` is None) with optional text.

    Text that XML cannot hold (control characters from a mail body) is kept
    as the exact bytes of an inline string (wbxml.set_string_bytes); NUL,
    which WBXML strings cannot carry, is dropped.
    """
    el = etree.Element(tag) if parent is None else etree.SubElement(parent, tag)
    if text is not None:
        try:
            el.text = str(text)
        except ValueError:
            wbxml.set_string_bytes(el, str(text).replace("\0", "").encode("utf-8", "replace"))
    return el


def child_text(el: etree._Element, tag: str) -> str | None:
    found = el.find(tag)
    return None if found is None else (found.text or "")


def date_time(text: str | None) -> datetime | None:
    """An MS-ASDTYPE 2.3 dateTime (2026-11-30T08:00:00.000Z, the fraction optional), UTC;
    None for anything else."""
    for layout in ("%Y-%m-%dT%H:%M:%S.%fZ", "%Y-%m-%dT%H:%M:%SZ"):
        try:
            return datetime.strptime((text or "").strip(), layout).replace(tzinfo=UTC)
        except ValueError:
            continue
    return None
