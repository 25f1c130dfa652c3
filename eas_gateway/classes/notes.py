"""The Notes class (MS-ASNOTE): VJOURNALs in CalDAV calendars (items.notes).

A phone below 14.0 is not shown Notes folders (the class is 14.0 on).
MS-ASNOTE has no ghosting: a Sync that sends Supported for a Notes folder gets
Status 4 (``supported_refused``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from lxml import etree

from eas_gateway.classes.base import A
from eas_gateway.classes.dav import DavClass
from eas_gateway.items import notes
from eas_gateway.items.options import PLAIN, Options
from eas_gateway.xml import E
from usm.upstream.dav_store import NOTES

if TYPE_CHECKING:
    from eas_gateway.context import Context


class NotesClass(DavClass):
    kind = NOTES
    name = "Notes"
    content_type = "text/calendar; charset=utf-8"
    extension = "ics"
    conversion_errors = (notes.NoteError,)
    supported_refused = True
    first_version = "14.0"  # MS-ASNOTE 1.5; MS-ASWBXML 2.1.2.1.24: the Notes code page is 14.0 on

    def to_phone(self, ctx: Context, text: str, options: Options) -> etree._Element:
        data = E(None, A + "ApplicationData")
        plain = next((b for b in options.body if b.type == PLAIN), None)
        notes.application_data(data, text, truncation=plain.truncation if plain else None)
        return data

    def from_phone(self, ctx: Context, stored: str | None, data: etree._Element | None, options: Options, *,
                   uid: str) -> str:
        return notes.merge(stored, notes.read_phone(data), uid=uid, now=datetime.now(UTC))
