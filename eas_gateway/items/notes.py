"""Notes (MS-ASNOTE) from and into iCalendar VJOURNAL (RFC 5545 3.6.3). Pure.

A note is SUMMARY (Subject), DESCRIPTION (AirSyncBase Body), CATEGORIES and
LAST-MODIFIED (LastModifiedDate); its MessageClass is IPM.StickyNote unless the phone
gave another (kept in X-EAS-MESSAGE-CLASS). From the phone: merged into the stored
VJOURNAL, what it did not send stays.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from icalendar import Calendar, Journal
from lxml import etree

from eas_gateway.items import body, ical
from eas_gateway.xml import E

N, B = "{Notes:}", "{AirSyncBase:}"
STICKY_NOTE = "IPM.StickyNote"


class NoteError(ValueError):
    """iCalendar data that is no note, or ApplicationData that cannot be one (Status 6)."""


def _journal(text: str) -> tuple[Any, Any]:
    try:
        calendar: Any = Calendar.from_ical(text)
    except ValueError as exc:
        raise NoteError(f"not iCalendar data: {exc}") from exc
    journal = next((c for c in calendar.subcomponents if c.name == "VJOURNAL"), None)
    if journal is None:
        raise NoteError("no VJOURNAL in the object")
    return calendar, journal


def application_data(parent: etree._Element, text: str, *, truncation: int | None) -> None:
    _, journal = _journal(text)
    description = ical.text(journal, "DESCRIPTION")
    if description is not None:
        body.plain(parent, description, truncation)
    E(parent, N + "Subject", ical.text(journal, "SUMMARY") or "")
    E(parent, N + "MessageClass", ical.text(journal, "X-EAS-MESSAGE-CLASS") or STICKY_NOTE)
    modified = journal.get("LAST-MODIFIED") or journal.get("DTSTAMP")
    if modified is not None and isinstance(modified.dt, datetime):
        moment = modified.dt if modified.dt.tzinfo else modified.dt.replace(tzinfo=UTC)
        E(parent, N + "LastModifiedDate", moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z"))
    categories = ical.categories(journal)
    if categories:
        holder = E(parent, N + "Categories")
        for category in categories:
            E(holder, N + "Category", category)


@dataclass
class PhoneNote:
    values: dict[str, str]
    categories: list[str] | None
    body: str | None


def read_phone(data: etree._Element | None) -> PhoneNote:
    if data is None:
        raise NoteError("no ApplicationData")
    out = PhoneNote({}, None, None)
    for element in data:
        q = etree.QName(element)
        if q.namespace == "AirSyncBase:" and q.localname == "Body":
            out.body = element.findtext(B + "Data") or ""
        elif q.namespace != "Notes:":
            raise NoteError(f"{{{q.namespace}}}{q.localname} is no note field")
        elif q.localname == "Categories":
            out.categories = [(c.text or "").strip() for c in element if (c.text or "").strip()]
        else:
            out.values[q.localname] = element.text or ""
    return out


def merge(stored: str | None, phone: PhoneNote, *, uid: str, now: datetime) -> str:
    if stored:
        calendar, journal = _journal(stored)
    else:
        calendar = Calendar()
        calendar.add("PRODID", "-//eas-gateway//EN")
        calendar.add("VERSION", "2.0")
        journal = Journal()
        journal.add("UID", uid)
        journal.add("DTSTART", now.astimezone(UTC).date())
        calendar.add_component(journal)
    if "Subject" in phone.values:
        ical.replace(journal, "SUMMARY", phone.values["Subject"])
    if phone.body is not None:
        ical.replace(journal, "DESCRIPTION", phone.body.replace("\r\n", "\n"))
    if phone.categories is not None:
        ical.replace(journal, "CATEGORIES", phone.categories or None)
    message_class = phone.values.get("MessageClass", "").strip()
    if message_class:
        ical.replace(journal, "X-EAS-MESSAGE-CLASS", None if message_class == STICKY_NOTE else message_class)
    ical.replace(journal, "DTSTAMP", now.astimezone(UTC))
    ical.replace(journal, "LAST-MODIFIED", now.astimezone(UTC))
    return str(calendar.to_ical(sorted=False).decode())
