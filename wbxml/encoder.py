"""lxml element tree -> WBXML bytes, in the form devices and Exchange send.

Output form (what iOS, Android and Exchange put on the wire, and what
MS-ASWBXML section 4 shows): header 03 01 6A 00 (WBXML 1.3, unknown public id,
UTF-8, empty string table); SWITCH_PAGE only when the code page changes; an
element without content as a bare token; text as STR_I; the byte-array
elements of MS-ASDTYPE 2.7.1 (codepages.BINARY_ELEMENTS) and raw-marked
elements as OPAQUE.

Two paths, one output. The C fast path (wbxml/csrc/, built by setup.py
when a compiler is there) reads lxml's libxml2 nodes directly and handles every
tree of known tags, text and raw-marked content; for anything else it declines
and this module's Python encoder runs, which is also where every error is
raised. ``ACCELERATED`` tells which is available; ``encode_python`` is the
Python path alone (the tests hold both to the same bytes).
"""

from __future__ import annotations

import binascii

from lxml import etree

from wbxml.errors import LimitExceededError, MalformedError, UnknownTokenError, UnsupportedError
from wbxml.tokens import BINARY_TAGS, PAGE_OF_NAMESPACE, RAW_ATTR, TOKEN_OF_TAG, WBXML_NS

HEADER = b"\x03\x01\x6a\x00"
_END = 0x01
_STR_I = 0x03
_OPAQUE = 0xC3
# A tree deeper than this is a bug in its builder, not an EAS document.
MAX_DEPTH = 256

# lxml tag -> (code page, token, SWITCH_PAGE bytes, is a byte-array element)
_INFO: dict[str, tuple[int, int, bytes, bool]] = {
    tag: (page, token, bytes((0x00, page)), tag in BINARY_TAGS) for tag, (page, token) in TOKEN_OF_TAG.items()
}


def _mb_u_int32(value: int) -> bytes:
    out = [value & 0x7F]
    value >>= 7
    while value:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    return bytes(reversed(out))


def _opaque(out: bytearray, data: bytes) -> None:
    out.append(_OPAQUE)
    out += _mb_u_int32(len(data))
    out += data


def _inline(out: bytearray, text: bytes) -> None:
    if b"\x00" in text:
        raise MalformedError("a string element cannot contain a NUL byte (WBXML terminates strings with it)")
    out.append(_STR_I)
    out += text
    out.append(0)


def _unknown(el: etree._Element) -> UnsupportedError | UnknownTokenError:
    tag = el.tag
    if not isinstance(tag, str):
        return UnsupportedError(f"cannot encode {type(el).__name__} nodes (comments, processing instructions)")
    qname = etree.QName(tag)
    if qname.namespace not in PAGE_OF_NAMESPACE:
        return UnknownTokenError(f"element {tag}: namespace {qname.namespace!r} is not an MS-ASWBXML code page")
    return UnknownTokenError(f"element {tag}: no such tag on code page {qname.namespace}")


def _raw_payload(el: etree._Element, kind: str) -> bytes:
    try:
        return binascii.a2b_base64((el.text or "").encode("ascii"))
    except (binascii.Error, UnicodeEncodeError) as exc:
        raise MalformedError(f"element {el.tag} is marked raw={kind} but its text is not base64") from exc


def _write(el: etree._Element, out: bytearray, page: int, depth: int) -> int:
    """Append ``el`` and its subtree to ``out``; return the code page in force after it."""
    info = _INFO.get(el.tag)
    if info is None:
        raise _unknown(el)
    el_page, token, switch, binary = info
    if el_page != page:
        out += switch
        page = el_page
    attrib = el.attrib
    raw = None
    if attrib:
        raw = attrib.get(RAW_ATTR)
        if raw not in ("opaque", "string") or len(attrib) != 1:
            raise UnsupportedError(f"element {el.tag} has attributes (EAS has none): {dict(attrib)}")
    text = el.text
    if len(el) == 0:
        if raw is not None:
            payload = _raw_payload(el, raw)
            if not payload:  # no content: a bare token, as devices send it
                out.append(token)
                return page
            out.append(token | 0x40)
            if raw == "opaque":
                _opaque(out, payload)
            else:
                _inline(out, payload)
            out.append(_END)
        elif text:
            out.append(token | 0x40)
            data = text.encode()
            if binary:
                _opaque(out, data)
            else:
                _inline(out, data)
            out.append(_END)
        else:
            out.append(token)
        return page
    if depth >= MAX_DEPTH:
        raise LimitExceededError(f"tree nested deeper than {MAX_DEPTH} elements")
    out.append(token | 0x40)
    if raw is not None:
        raise UnsupportedError(f"element {el.tag} is marked raw but has child elements")
    if text:
        _inline(out, text.encode())
    for child in el:
        page = _write(child, out, page, depth + 1)
        tail = child.tail
        if tail:
            _inline(out, tail.encode())
    out.append(_END)
    return page


def encode_python(root: etree._Element) -> bytes:
    """The Python encoder alone (what ``encode`` falls back to)."""
    if not etree.iselement(root):
        raise TypeError(f"encode() takes an lxml element, not {type(root).__name__}")
    out = bytearray(HEADER)
    _write(root, out, 0, 0)
    return bytes(out)


try:
    from wbxml import _speedups  # type: ignore[attr-defined]
except ImportError:  # no compiler at install time, or an lxml without a matching C-API
    _speedups = None
else:
    _speedups.set_table({tag: (page, token, binary) for tag, (page, token, _, binary) in _INFO.items()}, WBXML_NS,
                        MAX_DEPTH)

ACCELERATED = _speedups is not None


def encode(root: etree._Element) -> bytes:
    if _speedups is not None:
        data: bytes | None = _speedups.encode(root)
        if data is not None:
            return data
    return encode_python(root)
