"""The VFREEBUSY of RFC 6638 free/busy queries, on the icalendar library: the request the
gateway POSTs to a schedule outbox (RFC 6638 5.1, RFC 5546 3.3.2) and the busy periods
of a reply (RFC 5545 3.8.2.6 FREEBUSY, FBTYPE)."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime

import icalendar

from usm.upstream.dav_store import Period

log = logging.getLogger(__name__)


def freebusy_request(organizer: str, attendees: list[str], start: datetime, end: datetime) -> str:
    calendar = icalendar.Calendar()
    calendar.add("VERSION", "2.0")
    calendar.add("PRODID", "-//eas-gateway//free-busy//EN")
    calendar.add("METHOD", "REQUEST")
    query = icalendar.FreeBusy()
    query.add("UID", str(uuid.uuid4()))
    query.add("DTSTAMP", datetime.now(UTC))
    query.add("DTSTART", start.astimezone(UTC))
    query.add("DTEND", end.astimezone(UTC))
    query.add("ORGANIZER", f"mailto:{organizer}")
    for address in attendees:
        query.add("ATTENDEE", f"mailto:{address}")
    calendar.add_component(query)
    return str(calendar.to_ical().decode())


def freebusy_periods(text: str) -> list[Period]:
    """The FREEBUSY periods of a reply's VFREEBUSY, UTC, with their FBTYPE (BUSY when unsaid).
    A reply that cannot be read has none (logged)."""
    try:
        calendar = icalendar.Calendar.from_ical(text)
    except ValueError:
        log.warning("free/busy: unreadable reply from the DAV server: %r", text[:200])
        return []
    out: list[Period] = []
    for component in calendar.walk("VFREEBUSY"):
        lines = component.get("FREEBUSY", [])
        for line in lines if isinstance(lines, list) else [lines]:
            fbtype = str(line.params.get("FBTYPE", "BUSY")).upper()
            for period in line.dt if isinstance(line.dt, list) else [line.dt]:
                begin, finish = period
                if not isinstance(finish, datetime):  # a duration
                    finish = begin + finish
                out.append((begin.astimezone(UTC), finish.astimezone(UTC), fbtype))
    return out
