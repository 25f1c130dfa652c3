"""Test helpers: where the fixture corpus is, and how other implementations'
XML dialects map onto ours (by code page and token, never by guessing).

libwbxml 0.11.8 (Debian libwbxml2-utils) writes ActiveSync XML with the same
"Page:" namespaces as we do, but names some tags differently from
MS-ASWBXML. LIBWBXML_NAMES is the complete list, checked against the
installed libwbxml by tests/wbxml/test_libwbxml_oracle.py.
"""

from __future__ import annotations

import binascii
from pathlib import Path

from lxml import etree

import wbxml
from wbxml.codepages import TOKENS
from wbxml.tokens import BINARY_TAGS, NAMESPACE_OF_PAGE, RAW_ATTR

REPO = Path(__file__).resolve().parents[2]
CORPUS = REPO.parent / "shared" / "fixtures" / "eas-corpus"

# (page, token) -> libwbxml's name, where it differs from MS-ASWBXML's.
LIBWBXML_NAMES: dict[tuple[int, int], str] = {
    (1, 0x07): "AssistantTelephoneNumber",
    (1, 0x0D): "BusinessCity",
    (1, 0x0E): "BusinessCountry",
    (1, 0x0F): "BusinessPostalCode",
    (1, 0x10): "BusinessState",
    (1, 0x11): "BusinessStreet",
    (1, 0x21): "HomeCity",
    (1, 0x22): "HomeCountry",
    (1, 0x23): "HomePostalCode",
    (1, 0x24): "HomeState",
    (1, 0x25): "HomeStreet",
    (1, 0x2D): "OtherCity",
    (1, 0x2E): "OtherCountry",
    (1, 0x2F): "OtherPostalCode",
    (1, 0x30): "OtherState",
    (1, 0x31): "OtherStreet",
    (2, 0x09): "AttOId",
    (2, 0x19): "Reply-To",
    (2, 0x1D): "DTStamp",
    (2, 0x29): "Recurrence_Type",
    (2, 0x2A): "Recurrence_Until",
    (2, 0x2B): "Recurrence_Occurrences",
    (2, 0x2C): "Recurrence_Interval",
    (2, 0x2D): "Recurrence_DayOfWeek",
    (2, 0x2E): "Recurrence_DayOfMonth",
    (2, 0x2F): "Recurrence_WeekOfMonth",
    (2, 0x30): "Recurrence_MonthOfYear",
    (2, 0x3B): "FlagStatus",
    (4, 0x05): "TimeZone",
    (4, 0x09): "Attendee_Email",
    (4, 0x0A): "Attendee_Name",
    (4, 0x10): "Compressed_RTF",
    (4, 0x11): "DTStamp",
    (4, 0x15): "Exception_Deleted",
    (4, 0x16): "Exception_StartTime",
    (4, 0x19): "Organizer_Email",
    (4, 0x1A): "Organizer_Name",
    (4, 0x1C): "Recurrence_Type",
    (4, 0x1D): "Recurrence_Until",
    (4, 0x1E): "Recurrence_Occurrences",
    (4, 0x1F): "Recurrence_Interval",
    (4, 0x20): "Recurrence_DayOfWeek",
    (4, 0x21): "Recurrence_DayOfMonth",
    (4, 0x22): "Recurrence_WeekOfMonth",
    (4, 0x23): "Recurrence_MonthOfYear",
    (4, 0x29): "Attendee_Status",
    (4, 0x2A): "Attendee_Type",
    (9, 0x0D): "UTCDueDate",
    (9, 0x10): "Recurrence_Type",
    (9, 0x11): "Recurrence_Start",
    (9, 0x12): "Recurrence_Until",
    (9, 0x13): "Recurrence_Occurrences",
    (9, 0x14): "Recurrence_Interval",
    (9, 0x15): "Recurrence_DayOfMonth",
    (9, 0x16): "Recurrence_DayOfWeek",
    (9, 0x17): "Recurrence_WeekOfMonth",
    (9, 0x18): "Recurrence_MonthOfYear",
    (9, 0x19): "Recurrence_Regenerate",
    (9, 0x1A): "Recurrence_DeadOccur",
    (9, 0x1F): "UTCStartDate",
    (14, 0x10): "DeviceEncryptionEnabled",
    (18, 0x2B): "ihsManagementInformation",
    (21, 0x10): "MIME",
    (24, 0x12): "RMOwner",
    (24, 0x18): "RemoveRightsManagementDistribution",
}
# Tokens of pages 0-24 that libwbxml 0.11.8 does not know (page 25 it lacks whole).
LIBWBXML_MISSING: set[tuple[int, int]] = {(8, 0x10), (8, 0x11), (14, 0x3B)}
# libwbxml names code page 16 "Gal"; MS-ASWBXML 2.1.2.1 names it "GAL".
LIBWBXML_NAMESPACES: dict[str, str] = {"GAL:": "Gal:"}
# libwbxml's binary elements (base64 text in XML <-> OPAQUE), found by encoding
# every tag with xml2wbxml (test_binary_elements_agree_with_libwbxml).
LIBWBXML_BINARY: set[tuple[int, int]] = {
    (10, 0x1C), (15, 0x20), (16, 0x12), (17, 0x1F), (20, 0x18), (21, 0x10), (22, 0x09), (22, 0x0A),
}


def libwbxml_name(page: int, token: int) -> str:
    return LIBWBXML_NAMES.get((page, token), TOKENS[page][token])


def _ours_by_lib() -> dict[tuple[str, str], tuple[str, str]]:
    table = {}
    for page, tokens in TOKENS.items():
        ns = NAMESPACE_OF_PAGE[page]
        for token, name in tokens.items():
            table[(LIBWBXML_NAMESPACES.get(ns, ns), libwbxml_name(page, token))] = (ns, name)
    return table


_OURS_BY_LIB = _ours_by_lib()
_LIB_BY_OURS = {v: k for k, v in _OURS_BY_LIB.items()}
_LIB_BINARY_TAGS = {"{%s}%s" % (NAMESPACE_OF_PAGE[p], TOKENS[p][t]) for p, t in LIBWBXML_BINARY}


def from_libwbxml(root: etree._Element, *, binary_as_raw: bool = True) -> etree._Element:
    """A tree in libwbxml's XML dialect -> the same document in ours.

    Whitespace-only text (pretty printing) is dropped, as libwbxml does when it
    encodes without -k. libwbxml's binary elements hold base64 text; in our
    tree they become raw="opaque" elements.
    """
    out = _translate(root, _OURS_BY_LIB)
    for el in out.iter():
        if el.text is not None and not el.text.strip():
            el.text = None
        if el.tail is not None and not el.tail.strip():
            el.tail = None
        if binary_as_raw and el.tag in _LIB_BINARY_TAGS and el.text:
            data = binascii.a2b_base64("".join(el.text.split()))
            wbxml.set_opaque(el, data)
    return out


def to_libwbxml(root: etree._Element) -> etree._Element:
    """A tree in our dialect -> libwbxml's (raw markers dropped, text kept)."""
    out = _translate(root, _LIB_BY_OURS)
    for el in out.iter():
        if RAW_ATTR in el.attrib:
            del el.attrib[RAW_ATTR]
    etree.cleanup_namespaces(out)
    return out


def _translate(root: etree._Element, table: dict[tuple[str, str], tuple[str, str]]) -> etree._Element:
    def build(el: etree._Element, parent: etree._Element | None) -> etree._Element:
        q = etree.QName(el)
        ns, name = table.get((q.namespace or "", q.localname), (q.namespace or "", q.localname))
        tag = "{%s}%s" % (ns, name)
        new = etree.Element(tag) if parent is None else etree.SubElement(parent, tag)
        new.text, new.tail = el.text, el.tail
        for key, value in el.attrib.items():
            new.set(key, value)
        for child in el:
            if isinstance(child.tag, str):
                build(child, new)
        return new

    return build(root, None)


def canonical(root: etree._Element) -> tuple[object, ...]:
    """A comparable form of a tree: (tag, content, children), content as bytes."""
    content = wbxml.element_bytes(root) if len(root) == 0 else (root.text or "").encode()
    kind = root.get(RAW_ATTR) == "opaque" or (root.tag in BINARY_TAGS and len(root) == 0)
    return (root.tag, kind, content, tuple(canonical(c) for c in root), (root.tail or "").encode())
