"""Attachments of events (RFC 5545 ATTACH) as EAS 16.x shows them: airsyncbase:Attachments
in the Calendar ApplicationData (MS-ASCAL 2.2.2.3), fetched by ItemOperations through
their FileReference. Pure.

An ATTACH is either inline (VALUE=BINARY;ENCODING=BASE64) or a URI (a server's managed
attachment, RFC 8607, or any link). The FileReference names the object and the ATTACH's
place in its master VEVENT: ``caldav|<object path>|<index>|<name>``; the bytes come from
the object again at fetch time, with the user's own credentials.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from icalendar import Calendar
from lxml import etree

from eas_gateway.items import ical
from eas_gateway.xml import E

B = "{AirSyncBase:}"
PREFIX = "caldav"


@dataclass(frozen=True)
class Attachment:
    name: str
    content_type: str
    size: int | None  # None: not known before it is fetched (a URI without SIZE)
    data: bytes | None  # inline bytes
    uri: str | None


def _master(text: str) -> Any:
    calendar: Any = Calendar.from_ical(text)
    events = [c for c in calendar.subcomponents if c.name == "VEVENT"]
    return next((e for e in events if "RECURRENCE-ID" not in e), events[0] if events else None)


def of_event(event: Any) -> list[Attachment]:
    """The ATTACHes of one VEVENT, in order."""
    out = []
    for number, prop in enumerate(ical.as_list(event.get("ATTACH"))):
        params = prop.params
        kind = str(params.get("FMTTYPE") or "application/octet-stream")
        inline = str(params.get("VALUE", "")).upper() == "BINARY" or \
            str(params.get("ENCODING", "")).upper() == "BASE64"
        raw = prop.to_ical()
        data: bytes | None = None
        uri: str | None = None
        if inline:
            try:
                data = base64.b64decode(raw, validate=False)
            except (binascii.Error, ValueError):
                data = b""
        else:
            uri = raw.decode("utf-8", "replace").strip()
        name = str(params.get("FILENAME") or params.get("X-FILENAME") or params.get("X-APPLE-FILENAME") or
                   params.get("X-ORACLE-FILENAME") or "")
        if not name and uri:
            name = unquote(urlsplit(uri).path.rstrip("/").rpartition("/")[2])
        size = len(data) if data is not None else (int(params["SIZE"]) if str(params.get("SIZE", "")).isdigit()
                                                   else None)
        out.append(Attachment(name or f"attachment-{number + 1}", kind, size, data, uri))
    return out


def reference(path: str, index: int, name: str) -> str:
    return "|".join((PREFIX, quote(path, safe="/@:+-_.~"), str(index), quote(name, safe="")))


def parse_reference(text: str) -> tuple[str, int] | None:
    """(object path, index) of a FileReference this module made; None for any other."""
    parts = text.split("|")
    if len(parts) != 4 or parts[0] != PREFIX or not parts[2].isascii() or not parts[2].isdigit():
        return None
    path = unquote(parts[1])
    if not path.startswith("/") or "/../" in path or path.endswith("/.."):
        return None
    return path, int(parts[2])


def write(parent: etree._Element, event: Any, path: str) -> None:
    """airsyncbase:Attachments of ``event`` (the object at ``path``) under ``parent``."""
    found = of_event(event)
    if not found:
        return
    holder = E(parent, B + "Attachments")
    for index, attachment in enumerate(found):
        element = E(holder, B + "Attachment")
        E(element, B + "DisplayName", attachment.name)
        E(element, B + "FileReference", reference(path, index, attachment.name))
        E(element, B + "Method", 1)
        E(element, B + "EstimatedDataSize", attachment.size or 0)


def find(text: str, index: int) -> Attachment | None:
    """The ``index``-th ATTACH of the object's master VEVENT."""
    master = _master(text)
    found = of_event(master) if master is not None else []
    return found[index] if 0 <= index < len(found) else None
