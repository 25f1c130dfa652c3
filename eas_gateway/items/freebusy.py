"""Free/busy as ResolveRecipients answers it (MS-ASCMD 2.2.3.107 MergedFreeBusy): one digit
per 30 minutes from StartTime, 0 free, 1 tentative, 2 busy, 3 out of office, 4 no data;
a slot touched by several periods shows the highest digit. Pure: busy periods come from
the user's own events (``from_events``) or a scheduling server's VFREEBUSY (``from_fbtypes``).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import icalendar
import recurring_ical_events

from eas_gateway.items import calendar, ical

log = logging.getLogger(__name__)

SLOT = timedelta(minutes=30)
MAX_SLOTS = 32 * 1024  # "a maximum length of 32 KB": a longer span is asked in parts
FREE, TENTATIVE, BUSY, OOF = 0, 1, 2, 3
# An event's own free/busy: MS-ASCAL BusyStatus as X-MICROSOFT-CDO-BUSYSTATUS writes it (the
# digits 0-3 are the same), but working elsewhere is being at work: free for whoever looks for a slot.
BY_BUSY_STATUS = {**calendar.BUSY, "WORKINGELSEWHERE": FREE}
# RFC 5545 3.2.9 FBTYPE.
BY_FBTYPE = {"FREE": FREE, "BUSY-TENTATIVE": TENTATIVE, "BUSY": BUSY, "BUSY-UNAVAILABLE": OOF}

Busy = tuple[datetime, datetime, int]  # UTC start, end, digit


def slots(start: datetime, end: datetime) -> int:
    return math.ceil((end - start) / SLOT)


def merged(start: datetime, end: datetime, busy: Iterable[Busy]) -> str:
    digits = [FREE] * slots(start, end)
    for begin, finish, level in busy:
        if level <= FREE or finish <= start or begin >= end:
            continue
        first = max(0, math.floor((begin - start) / SLOT))
        last = min(len(digits), math.ceil((finish - start) / SLOT))
        for i in range(first, last):
            digits[i] = max(digits[i], level)
    return "".join(str(d) for d in digits)


def from_fbtypes(periods: Iterable[tuple[datetime, datetime, str]]) -> list[Busy]:
    """A scheduling server's busy periods (an unknown FBTYPE counts as busy, RFC 5545 3.2.9)."""
    return [(begin, finish, BY_FBTYPE.get(fbtype.upper(), BUSY)) for begin, finish, fbtype in periods]


def level(event: Any) -> int:
    """What an event makes of its time: cancelled and transparent ones nothing."""
    if (ical.text(event, "STATUS") or "").upper() == "CANCELLED":
        return FREE
    own = (ical.text(event, "X-MICROSOFT-CDO-BUSYSTATUS") or "").upper()
    if own in BY_BUSY_STATUS:
        return BY_BUSY_STATUS[own]
    if (ical.text(event, "TRANSP") or "").upper() == "TRANSPARENT":
        return FREE
    return TENTATIVE if (ical.text(event, "STATUS") or "").upper() == "TENTATIVE" else BUSY


def from_events(texts: Iterable[str], start: datetime, end: datetime, zone: ZoneInfo) -> list[Busy]:
    """The busy periods of iCalendar objects' events over [start, end), recurrences expanded;
    floating times and all-day dates are in ``zone`` (the user's). An object that cannot be
    read gives nothing (logged)."""
    out: list[Busy] = []
    for text in texts:
        try:
            calendar = icalendar.Calendar.from_ical(text)
            occurrences = recurring_ical_events.of(calendar, components=["VEVENT"]).between(start, end)
        except Exception:
            log.info("free/busy: an event could not be read or expanded; left out", exc_info=True)
            continue
        for event in occurrences:
            digit = level(event)
            if digit == FREE or "DTSTART" not in event:
                continue
            begin = event["DTSTART"].dt
            if "DTEND" in event:
                finish = event["DTEND"].dt
            elif "DURATION" in event:
                finish = begin + event["DURATION"].dt
            else:  # RFC 5545 3.6.1: a date lasts the day, a time no time
                finish = begin + timedelta(days=1) if not isinstance(begin, datetime) else begin
            out.append((_utc(begin, zone), _utc(finish, zone), digit))
    return out


def _utc(value: date | datetime, zone: ZoneInfo) -> datetime:
    if not isinstance(value, datetime):
        value = datetime.combine(value, time(), tzinfo=zone)
    elif value.tzinfo is None:
        value = value.replace(tzinfo=zone)
    return value.astimezone(UTC)
