"""Calendar (MS-ASCAL) from iCalendar VEVENT (RFC 5545): what a phone is sent. Pure.

The master VEVENT (the one without RECURRENCE-ID) becomes the item; its RRULE the
Recurrence (items.recurrence); each EXDATE an Exception with Deleted, each
RECURRENCE-ID override an Exception holding the fields that differ from the master,
ExceptionStartTime being the original start in UTC. Times go out in UTC (compact
form, MS-ASDTYPE) with the blob of the event's own zone (items.timezone).

All-day events (DTSTART;VALUE=DATE): below 16.0 the phone gets local midnight of
the date in the zone it shows the event in (the user's zone), with that zone's
blob; from 16.0 the date at 00:00 and no Timezone (MS-ASCAL). So a phone in
UTC+13 and one in UTC-10 show the same day.

Not yet wired to a folder class: eas_gateway.classes registers Calendar once the
phone's side (Add/Change/Delete, meetings) is built too (issue 14).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any

from icalendar import Calendar
from lxml import etree

from eas_gateway.items import body, calendar_attachments, ical, recurrence, timezone
from eas_gateway.xml import E

C, B = "{Calendar:}", "{AirSyncBase:}"
# MS-ASCAL BusyStatus: 0 free, 1 tentative, 2 busy, 3 out of office, 4 working elsewhere (16.0).
BUSY = {"FREE": 0, "TENTATIVE": 1, "BUSY": 2, "OOF": 3, "WORKINGELSEWHERE": 4}
# MS-ASCAL AttendeeStatus: 0 unknown, 2 tentative, 3 accepted, 4 declined, 5 not responded.
ATTENDEE_STATUS = {"TENTATIVE": 2, "ACCEPTED": 3, "DECLINED": 4, "NEEDS-ACTION": 5}
# MS-ASCAL AttendeeType: 1 required, 2 optional, 3 resource.
ATTENDEE_TYPE = {"REQ-PARTICIPANT": 1, "CHAIR": 1, "OPT-PARTICIPANT": 2, "NON-PARTICIPANT": 2}
# MS-ASCAL MeetingStatus: 0 an appointment, 1 a meeting the user organizes, 3 one the user was
# invited to, 5 / 7 the same, cancelled.
APPOINTMENT, ORGANIZER, ATTENDEE, CANCELLED_ORGANIZER, CANCELLED_ATTENDEE = 0, 1, 3, 5, 7


class CalendarError(ValueError):
    """iCalendar data the gateway cannot show (no VEVENT, no start)."""


@dataclass(frozen=True)
class Shown:
    """How the phone shows events: its protocol version, the user's zone (all-day events,
    floating times), the user's addresses (is the user the organizer?), body truncation."""

    version: float
    zone: tzinfo
    user_addresses: frozenset[str] = frozenset()
    truncation: int | None = None


def compact(moment: datetime) -> str:
    """MS-ASDTYPE compact date-time, in UTC."""
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def _start_end(event: Any, shown: Shown) -> tuple[datetime, datetime, bool, tzinfo]:
    """(start, end) as aware datetimes, whether all-day, and the zone to describe them in."""
    if "DTSTART" not in event:
        raise CalendarError("VEVENT without DTSTART")
    start = event["DTSTART"].dt
    if "DTEND" in event:
        end = event["DTEND"].dt
    elif "DURATION" in event:
        end = start + event["DURATION"].dt
    else:
        end = start + (timedelta(days=1) if not isinstance(start, datetime) else timedelta(0))
    if not isinstance(start, datetime):  # VALUE=DATE: all day
        if isinstance(end, datetime):
            end = end.date()
        if end <= start:
            end = start + timedelta(days=1)
        zone = UTC if shown.version >= 16.0 else shown.zone
        return (datetime.combine(start, time(0), zone), datetime.combine(end, time(0), zone), True, zone)
    zone = start.tzinfo or shown.zone  # floating time: the user's
    if start.tzinfo is None:
        start = start.replace(tzinfo=zone)
    if isinstance(end, datetime) and end.tzinfo is None:
        end = end.replace(tzinfo=zone)
    if not isinstance(end, datetime):
        end = datetime.combine(end, time(0), zone)
    return start, max(end, start), False, zone




def _reminder(event: Any, start: datetime) -> int | None:
    """Minutes before the start of the first display or audio alarm."""
    for alarm in event.walk("VALARM"):
        trigger = alarm.get("TRIGGER")
        if trigger is None:
            continue
        value = trigger.dt
        if isinstance(value, timedelta):
            if str(trigger.params.get("RELATED", "START")).upper() == "END":
                continue
            minutes = -value.total_seconds() / 60
        elif isinstance(value, datetime):
            minutes = (start - value).total_seconds() / 60
        else:
            continue
        if minutes >= 0:
            return round(minutes)
    return None



def _busy(event: Any) -> int:
    override = ical.text(event, "X-MICROSOFT-CDO-BUSYSTATUS")
    if override and override.upper() in BUSY:
        return BUSY[override.upper()]
    return 0 if (ical.text(event, "TRANSP") or "").upper() == "TRANSPARENT" else 2


def _meeting_status(event: Any, shown: Shown) -> int:
    if "ATTENDEE" not in event and "ORGANIZER" not in event:
        return APPOINTMENT
    organizer = ical.address(event.get("ORGANIZER", "")).lower()
    mine = not organizer or organizer in shown.user_addresses
    if (ical.text(event, "STATUS") or "").upper() == "CANCELLED":
        return CANCELLED_ORGANIZER if mine else CANCELLED_ATTENDEE
    return ORGANIZER if mine else ATTENDEE


def _attendees(event: Any) -> list[Any]:
    return ical.as_list(event.get("ATTENDEE"))


def _fields(parent: etree._Element, event: Any, shown: Shown, *, start: datetime, end: datetime,
            all_day: bool, master: Any = None) -> None:
    """The fields every item and exception has; with ``master``, only those that differ."""
    def differs(name: str) -> bool:
        return master is None or ical.text(event, name) != ical.text(master, name)

    if master is None or all_day != ("VALUE=DATE" in master["DTSTART"].to_ical().decode() or
                                     not isinstance(master["DTSTART"].dt, datetime)):
        E(parent, C + "AllDayEvent", int(all_day))
    if "DESCRIPTION" in event and differs("DESCRIPTION"):
        body.plain(parent, ical.text(event, "DESCRIPTION") or "", shown.truncation)
    if master is None or _busy(event) != _busy(master):
        E(parent, C + "BusyStatus", _busy(event))
    if master is None and "ORGANIZER" in event:
        organizer = event["ORGANIZER"]
        if organizer.params.get("CN"):
            E(parent, C + "OrganizerName", str(organizer.params["CN"]))
        E(parent, C + "OrganizerEmail", ical.address(organizer))
    if "DTSTAMP" in event and (master is None or differs("DTSTAMP")):
        E(parent, C + "DtStamp", compact(event["DTSTAMP"].dt))
    E(parent, C + "EndTime", compact(end))
    location = ical.text(event, "LOCATION")
    if location and differs("LOCATION"):
        if shown.version >= 16.0:
            E(E(parent, B + "Location"), B + "DisplayName", location)
        else:
            E(parent, C + "Location", location)
    reminder = _reminder(event, start)
    if reminder is not None and (master is None or reminder != _reminder(master, start)):
        E(parent, C + "Reminder", reminder)
    sensitivity = ical.sensitivity(event)
    if master is None or differs("CLASS"):
        E(parent, C + "Sensitivity", sensitivity)
    if "SUMMARY" in event and differs("SUMMARY"):
        E(parent, C + "Subject", ical.text(event, "SUMMARY"))
    E(parent, C + "StartTime", compact(start))
    categories = ical.categories(event)
    if categories and (master is None or categories != ical.categories(master)):
        holder = E(parent, C + "Categories")
        for category in categories:
            E(holder, C + "Category", category)


def application_data(parent: etree._Element, text: str, shown: Shown, *, path: str | None = None) -> None:
    """The Calendar fields of the iCalendar object ``text`` under ``parent`` (ApplicationData);
    ``path``: where it is upstream, which its attachments' FileReferences name (16.x)."""
    try:
        calendar: Any = Calendar.from_ical(text)
    except ValueError as exc:
        raise CalendarError(f"not iCalendar data: {exc}") from exc
    events = list(calendar.walk("VEVENT"))
    if not events:
        raise CalendarError("no VEVENT in the object")
    master = next((e for e in events if "RECURRENCE-ID" not in e), events[0])
    overrides = [e for e in events if e is not master and "RECURRENCE-ID" in e]
    start, end, all_day, zone = _start_end(master, shown)
    if not (all_day and shown.version >= 16.0):
        E(parent, C + "Timezone", timezone.for_zone(zone, start).to_base64())
    _fields(parent, master, shown, start=start, end=end, all_day=all_day)
    if "UID" in master:
        E(parent, C + "UID", ical.text(master, "UID"))
    status = _meeting_status(master, shown)
    E(parent, C + "MeetingStatus", status)
    if shown.version >= 16.0 and path is not None:
        calendar_attachments.write(parent, master, path)
    attendees = _attendees(master)
    if attendees:
        holder = E(parent, C + "Attendees")
        for attendee in attendees:
            one = E(holder, C + "Attendee")
            E(one, C + "Email", ical.address(attendee))
            E(one, C + "Name", str(attendee.params.get("CN") or ical.address(attendee)))
            partstat = str(attendee.params.get("PARTSTAT", "")).upper()
            E(one, C + "AttendeeStatus", ATTENDEE_STATUS.get(partstat, 0))
            kind = 3 if str(attendee.params.get("CUTYPE", "")).upper() in ("RESOURCE", "ROOM") else \
                ATTENDEE_TYPE.get(str(attendee.params.get("ROLE", "REQ-PARTICIPANT")).upper(), 1)
            E(one, C + "AttendeeType", kind)
    if status in (ATTENDEE, CANCELLED_ATTENDEE):
        mine = next((a for a in attendees if ical.address(a).lower() in shown.user_addresses), None)
        if mine is not None and str(mine.params.get("RSVP", "")).upper() == "TRUE":
            E(parent, C + "ResponseRequested", 1)
    rule = master.get("RRULE")
    if rule is not None:
        pattern, _ = recurrence.to_eas(dict(rule), start.astimezone(zone).replace(tzinfo=None))
        _recurrence(E(parent, C + "Recurrence"), pattern, zone)
    exceptions = _exceptions(master, overrides, shown, zone, all_day, end - start)
    if exceptions:
        holder = E(parent, C + "Exceptions")
        for element in exceptions:
            holder.append(element)


def _recurrence(parent: etree._Element, pattern: recurrence.Recurrence, zone: tzinfo) -> None:
    E(parent, C + "Type", pattern.type)
    if pattern.occurrences is not None:
        E(parent, C + "Occurrences", pattern.occurrences)
    elif pattern.until is not None:
        until = pattern.until
        if not isinstance(until, datetime):
            until = datetime.combine(until, time(23, 59, 59), zone)
        elif until.tzinfo is None:
            until = until.replace(tzinfo=zone)
        E(parent, C + "Until", compact(until))
    if pattern.interval > 1:
        E(parent, C + "Interval", pattern.interval)
    for name, value in (("DayOfWeek", pattern.day_of_week), ("DayOfMonth", pattern.day_of_month),
                        ("WeekOfMonth", pattern.week_of_month), ("MonthOfYear", pattern.month_of_year),
                        ("FirstDayOfWeek", pattern.first_day_of_week)):
        if value is not None:
            E(parent, C + name, value)


def _exdates(master: Any) -> list[datetime | date]:
    value = master.get("EXDATE")
    out: list[datetime | date] = []
    for item in value if isinstance(value, list) else [value] if value is not None else []:
        out += [d.dt for d in item.dts]
    return out


def _as_utc(value: datetime | date, zone: tzinfo) -> datetime:
    if not isinstance(value, datetime):
        return datetime.combine(value, time(0), zone)
    return value if value.tzinfo is not None else value.replace(tzinfo=zone)


def _exceptions(master: Any, overrides: list[Any], shown: Shown, zone: tzinfo, all_day: bool,
                length: timedelta) -> list[etree._Element]:
    out = []
    for original in _exdates(master):
        element = E(None, C + "Exception")
        E(element, C + "Deleted", 1)
        E(element, C + "ExceptionStartTime", compact(_as_utc(original, zone)))
        out.append(element)
    for event in overrides:
        element = E(None, C + "Exception")
        original = _as_utc(event["RECURRENCE-ID"].dt, zone)
        E(element, C + "ExceptionStartTime", compact(original))
        if (ical.text(event, "STATUS") or "").upper() == "CANCELLED":
            E(element, C + "Deleted", 1)
        else:
            start, end, exception_all_day, _ = _start_end(event, shown)
            _fields(element, event, shown, start=start, end=end, all_day=exception_all_day, master=master)
        out.append(element)
    return out
