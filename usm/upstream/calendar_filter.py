"""What a CalDAV server's calendar-query does, for objects the gateway already holds:
whether an iCalendar object is of a component (VEVENT, VTODO, VJOURNAL), and whether
it has an occurrence at or after a moment (RFC 4791 9.9 time-range with a start only:
a recurring series counts when any occurrence does, EXDATEs and overrides included).

Used where no server query can say it: the changes of a collection that holds several
components (sync-collection reports them all), a changed object that may have left the
FilterType window, and the in-memory store (usm.upstream.memory).
"""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, timedelta
from typing import Any

import recurring_ical_events
from icalendar import Calendar

log = logging.getLogger(__name__)


def _parse(text: str) -> Any:
    try:
        return Calendar.from_ical(text)
    except ValueError:
        return None


def holds(text: str, component: str) -> bool:
    """The object holds a ``component`` (an unreadable object: the item class says so later)."""
    calendar = _parse(text)
    if calendar is None:
        return f"BEGIN:{component}" in text.upper()
    return any(c.name == component for c in calendar.subcomponents)


def completed(text: str) -> bool:
    """A task that is done (STATUS:COMPLETED or a COMPLETED time)."""
    calendar = _parse(text)
    if calendar is None:
        return False
    todo = next((c for c in calendar.subcomponents if c.name == "VTODO"), None)
    return todo is not None and ("COMPLETED" in todo or str(todo.get("STATUS", "")).upper() == "COMPLETED")


def uid_of(text: str) -> str | None:
    """The UID of an iCalendar object's first component (None: unreadable or none)."""
    calendar = _parse(text)
    if calendar is None:
        return None
    return next((str(c["UID"]) for c in calendar.subcomponents if "UID" in c), None)


def occurs_between(text: str, component: str, start: datetime, end: datetime) -> bool:
    """The object has an occurrence overlapping [start, end) (an unreadable one does not:
    this answers a time-range query, not what to keep)."""
    calendar = _parse(text)
    if calendar is None:
        return False
    try:
        return bool(recurring_ical_events.of(calendar, components=[component]).between(start, end))
    except Exception:
        log.info("calendar filter: could not expand an object", exc_info=True)
        return False


def occurs_since(text: str, component: str, since: datetime) -> bool:
    """The object has an occurrence ending at or after ``since`` (one without a start,
    or one the expansion cannot read, counts: better shown than lost)."""
    calendar = _parse(text)
    if calendar is None:
        return True
    try:
        query = recurring_ical_events.of(calendar, components=[component])
        # at() / between() want a range: one day before catches an event that started before
        # ``since`` and lasts past it; the end check is ours.
        for occurrence in query.after(since - timedelta(days=1)):
            end = occurrence.get("DTEND") or occurrence.get("DUE") or occurrence.get("DTSTART")
            if end is None or _utc(end.dt) >= since:
                return True
            if _utc(occurrence["DTSTART"].dt) > since:
                return True
        return False
    except Exception:
        log.info("calendar filter: could not expand an object; it is kept in the window", exc_info=True)
        return True


def _utc(value: date | datetime) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo is not None and value.tzinfo.utcoffset(value) is not None \
            else value.replace(tzinfo=UTC)
    return datetime(value.year, value.month, value.day, tzinfo=UTC)
