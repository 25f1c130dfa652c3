"""AirSyncBase Body (MS-ASAIRS 2.2.2.9): the size, truncation and data of a body, the same
for every item class (e-mail, contacts, calendar)."""

from __future__ import annotations

from lxml import etree

import wbxml
from eas_gateway.items.options import PLAIN, BodyPreference
from eas_gateway.xml import E

B = "{AirSyncBase:}"


def data(el: etree._Element, chosen: BodyPreference, content: bytes, size: int, *, complete: bool,
         raw: bool = False) -> None:
    """EstimatedDataSize, Truncated and Data of a Body. ``complete``: ``content`` is
    the whole body (else the upstream cut it, at no less than the limit + 1)."""
    limit = chosen.truncation
    cut = not complete or (limit is not None and len(content) > limit)
    E(el, B + "EstimatedDataSize", size)
    if cut:
        E(el, B + "Truncated", 1)
        if chosen.all_or_none:
            return
        if limit is not None:
            content = content[:limit] if raw else content[:limit].decode("utf-8", "ignore").encode()
    if not content:
        return
    if not raw:
        E(el, B + "Data", content.decode())
    elif b"\0" in content:
        wbxml.set_opaque(E(el, B + "Data"), content)
    else:
        wbxml.set_string_bytes(E(el, B + "Data"), content)


def plain(parent: etree._Element, text: str, truncation: int | None) -> None:
    """A plain-text Body (a contact's note, an event's description), lines ending in CRLF."""
    encoded = text.replace("\r\n", "\n").replace("\n", "\r\n").encode()
    el = E(parent, B + "Body")
    E(el, B + "Type", PLAIN)
    data(el, BodyPreference(PLAIN, truncation), encoded, len(encoded), complete=True)
