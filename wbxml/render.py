"""A readable rendering of a document for logs and protocol traces.

XML text, one element per line, namespaces declared where the code page
changes (as libwbxml's wbxml2xml prints them). Long text is cut and its length
given; binary content is shown as its size and a hex prefix, never whole.
"""

from __future__ import annotations

import binascii
from xml.sax.saxutils import escape

from lxml import etree

from wbxml.tokens import RAW_ATTR


def _content(el: etree._Element, max_text: int) -> str:
    text = el.text or ""
    raw = el.get(RAW_ATTR)
    if raw is not None:
        try:
            data = binascii.a2b_base64(text.encode("ascii"))
        except (binascii.Error, UnicodeEncodeError):
            return f"[{raw}: invalid base64]"
        shown = data[: max(max_text // 2, 0)].hex(" ")
        more = " ..." if len(data) > max_text // 2 else ""
        return f"[{raw} {len(data)} bytes: {shown}{more}]"
    if len(text) > max_text:
        return escape(text[:max_text]) + f"... [{len(text)} chars]"
    return escape(text)


def _lines(el: etree._Element, parent_ns: str | None, indent: int, max_text: int, out: list[str]) -> None:
    pad = "  " * indent
    if not isinstance(el.tag, str):
        out.append(f"{pad}<!-- {type(el).__name__} -->")
        return
    qname = etree.QName(el)
    decl = f' xmlns="{qname.namespace}"' if qname.namespace != parent_ns else ""
    name = qname.localname
    if len(el) == 0:
        content = _content(el, max_text)
        out.append(f"{pad}<{name}{decl}>{content}</{name}>" if content else f"{pad}<{name}{decl}/>")
        return
    out.append(f"{pad}<{name}{decl}>" + _content(el, max_text).strip())
    for child in el:
        _lines(child, qname.namespace, indent + 1, max_text, out)
        if child.tail and child.tail.strip():
            out.append("  " * (indent + 1) + escape(child.tail[:max_text]))
    out.append(f"{pad}</{name}>")


def render(root: etree._Element, max_text: int = 200) -> str:
    out: list[str] = []
    _lines(root, None, 0, max_text, out)
    return "\n".join(out)
