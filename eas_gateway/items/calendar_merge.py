"""A phone's Calendar ApplicationData merged into the stored iCalendar object. Pure.

Merge, never rebuild: the stored VCALENDAR is parsed with icalendar, the fields the
phone sent replace their properties in the master VEVENT, and everything else stays
(X- properties, ATTACHs, other alarms, properties EAS has no field for). The
recurrence is the delicate part: when the upstream RRULE is one EAS can only
approximate (items.recurrence), the phone shows the approximation and sends it back
with every edit of another field; the upstream rule is then kept. Only a pattern that
differs from what the phone was shown replaces it.

Times: the phone's UTC times are put in the zone its blob names (items.timezone,
the user's zone first); all-day events become VALUE=DATE (below 16.0 the phone's
local midnight in that zone, from 16.0 the date itself). Exceptions: Deleted ones
become EXDATEs, the others RECURRENCE-ID overrides; an ExceptionStartTime that is no
occurrence of the series (phones send the wrong one after a series moved) is matched
to the nearest original occurrence.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Any

from dateutil.rrule import rrulestr
from icalendar import Alarm, Calendar, Event, vCalAddress, vRecur
from lxml import etree

from eas_gateway.items import ical, recurrence, timezone
from eas_gateway.items.calendar import BUSY, C, Shown

A, B = "{AirSync:}", "{AirSyncBase:}"
BUSY_NAMES = {v: k for k, v in BUSY.items()}
# MS-ASCAL AttendeeType -> (ROLE, CUTYPE): 1 required, 2 optional, 3 resource.
ATTENDEE_ROLES = {1: ("REQ-PARTICIPANT", None), 2: ("OPT-PARTICIPANT", None), 3: ("NON-PARTICIPANT", "RESOURCE")}


class EventError(ValueError):
    """ApplicationData the gateway cannot store as an event (Status 6 for the item)."""


@dataclass
class PhoneEvent:
    """The fields a phone sent; absent keys were not sent."""

    values: dict[str, str]
    categories: list[str] | None
    body: str | None
    recurrence: recurrence.Recurrence | None
    recurrence_sent: bool
    exceptions: list[dict[str, Any]]
    # (email, name, AttendeeType) of each Attendee; None: the phone sent no Attendees.
    attendees: list[tuple[str, str, int]] | None = None


def _number(text: str | None, name: str) -> int | None:
    if text is None or not text.strip():
        return None
    value = text.strip()
    if not value.isascii() or not value.lstrip("-").isdigit():
        raise EventError(f"{name} {text!r} is not a number")
    return int(value)


def _time(text: str, name: str) -> datetime:
    for layout in ("%Y%m%dT%H%M%SZ", "%Y-%m-%dT%H:%M:%S.%fZ", "%Y-%m-%dT%H:%M:%SZ"):
        try:
            return datetime.strptime(text.strip(), layout).replace(tzinfo=UTC)
        except ValueError:
            continue
    raise EventError(f"{name} {text!r} is no date-time")


def read_phone(data: etree._Element | None) -> PhoneEvent:
    """The Calendar fields of a phone's ApplicationData; EventError for another class's."""
    if data is None:
        raise EventError("no ApplicationData")
    out = PhoneEvent({}, None, None, None, False, [])
    for element in data:
        q = etree.QName(element)
        name = q.localname
        if q.namespace == "AirSyncBase:" and name == "Body":
            out.body = element.findtext(B + "Data") or ""
        elif q.namespace == "AirSyncBase:" and name == "Location":
            out.values["Location"] = element.findtext(B + "DisplayName") or ""
        elif q.namespace != "Calendar:":
            raise EventError(f"{{{q.namespace}}}{name} is no calendar field")
        elif name == "Categories":
            out.categories = [(c.text or "").strip() for c in element if (c.text or "").strip()]
        elif name == "Recurrence":
            out.recurrence_sent = True
            out.recurrence = _recurrence(element)
        elif name == "Exceptions":
            out.exceptions = [_exception(e) for e in element.iterfind(C + "Exception")]
        elif name == "Attendees":
            out.attendees = [_attendee(a) for a in element.iterfind(C + "Attendee")]
        elif name == "Body":
            continue  # Calendar:Body is EAS 2.5's; 12.0 and later send AirSyncBase:Body
        else:
            out.values[name] = element.text or ""
    return out


def _recurrence(element: etree._Element) -> recurrence.Recurrence:
    def number(name: str) -> int | None:
        return _number(element.findtext(C + name), name)
    kind = number("Type")
    if kind is None:
        raise EventError("Recurrence without Type")
    until = element.findtext(C + "Until")
    return recurrence.Recurrence(kind, interval=number("Interval") or 1, occurrences=number("Occurrences"),
                                 until=_time(until, "Until") if until else None, day_of_week=number("DayOfWeek"),
                                 day_of_month=number("DayOfMonth"), week_of_month=number("WeekOfMonth"),
                                 month_of_year=number("MonthOfYear"), first_day_of_week=number("FirstDayOfWeek"),
                                 calendar_type=number("CalendarType"))


def _attendee(element: etree._Element) -> tuple[str, str, int]:
    email = (element.findtext(C + "Email") or "").strip()
    if "@" not in email or any(c in email for c in "\r\n<>\"") or len(email) > 320:
        raise EventError(f"Attendee Email {email!r} is no address")
    kind = _number(element.findtext(C + "AttendeeType"), "AttendeeType") or 1
    if kind not in ATTENDEE_ROLES:
        raise EventError(f"AttendeeType {kind}")
    return email, (element.findtext(C + "Name") or "").strip(), kind


def _exception(element: etree._Element) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for child in element:
        name = etree.QName(child).localname
        if name == "Body":
            out["Body"] = child.findtext(B + "Data") or ""
        elif name == "Categories":
            out["Categories"] = [(c.text or "").strip() for c in child]
        elif len(child) == 0:
            out[name] = child.text or ""
    if "ExceptionStartTime" not in out:
        raise EventError("Exception without ExceptionStartTime")
    return out


# -- into the stored object --------------------------------------------------------


def merge(stored: str | None, phone: PhoneEvent, shown: Shown, *, uid: str, now: datetime) -> str:
    """The iCalendar object with the phone's event in it (``stored`` None: a new one)."""
    calendar: Any
    master: Any
    if stored:
        calendar = Calendar.from_ical(stored)
        events = [c for c in calendar.subcomponents if c.name == "VEVENT"]
        master = next((e for e in events if "RECURRENCE-ID" not in e), None)
        if master is None:
            raise EventError("the stored object has no master VEVENT")
    else:
        calendar = Calendar()
        calendar.add("PRODID", "-//eas-gateway//EN")
        calendar.add("VERSION", "2.0")
        master = Event()
        master.add("UID", phone.values.get("UID") or phone.values.get("ClientUid") or uid)
        calendar.add_component(master)
    zone = _zone(phone, shown, master)
    old_start = master.get("DTSTART").dt if "DTSTART" in master else None
    _times(master, phone.values, zone, shown)
    _set_fields(master, phone.values, phone.body, phone.categories)
    _set_recurrence(master, phone, zone)
    if phone.attendees is not None:
        _set_attendees(master, phone.attendees, shown)
    if old_start is not None and isinstance(old_start, datetime) and "DTSTART" in master and \
            isinstance(master["DTSTART"].dt, datetime):
        _move_overrides(calendar, master, master["DTSTART"].dt - _aware(old_start, zone))
    if phone.exceptions:
        _set_exceptions(calendar, master, phone.exceptions, zone, shown)
    ical.replace(master, "DTSTAMP", now.astimezone(UTC))
    if stored:
        sequence = int(master.get("SEQUENCE", 0)) + 1
        ical.replace(master, "SEQUENCE", sequence)
    calendar.add_missing_timezones()
    return _serialize(calendar, stored or "")


def merge_instance(stored: str, phone: PhoneEvent | None, shown: Shown, *, instance: str, now: datetime) -> str:
    """The series with one occurrence (``instance``: its original start, MS-ASAIRS
    InstanceId) changed to the phone's fields, or deleted (``phone`` None); the rest of
    the series as it was."""
    calendar: Any = Calendar.from_ical(stored)
    master = next((c for c in calendar.subcomponents if c.name == "VEVENT" and "RECURRENCE-ID" not in c), None)
    if master is None or "RRULE" not in master:
        raise EventError("InstanceId names an occurrence of an event that does not recur")
    exception: dict[str, Any] = {"ExceptionStartTime": _time(instance, "InstanceId").strftime("%Y%m%dT%H%M%SZ")}
    if phone is None:
        exception["Deleted"] = "1"
    else:
        exception.update(phone.values)
        if phone.body is not None:
            exception["Body"] = phone.body
        if phone.categories is not None:
            exception["Categories"] = phone.categories
    zone = master["DTSTART"].dt.tzinfo if isinstance(master["DTSTART"].dt, datetime) and \
        master["DTSTART"].dt.tzinfo else shown.zone
    _set_exceptions(calendar, master, [exception], zone, shown)
    ical.replace(master, "DTSTAMP", now.astimezone(UTC))
    ical.replace(master, "SEQUENCE", int(master.get("SEQUENCE", 0)) + 1)
    return _serialize(calendar, stored)


class _Verbatim:
    """A property value written as it was read (icalendar writes a rule's parts in its
    own order; the stored text keeps the writer's)."""

    def __init__(self, raw: str, params: Any) -> None:
        self.raw, self.params = raw, params

    def to_ical(self) -> bytes:
        return self.raw.encode()


def _serialize(calendar: Any, stored: str) -> str:
    """The object as text, unchanged parts as they were: properties in their order, and
    each recurrence rule the phone did not change in the words of the stored text."""
    raw_rules: dict[bytes, str] = {}
    for line in stored.replace("\r\n", "\n").replace("\n ", "").replace("\n\t", "").split("\n"):
        name, _, value = line.partition(":")
        if name.split(";")[0].upper() in ("RRULE", "EXRULE") and value:
            try:
                raw_rules[vRecur.from_ical(value).to_ical()] = value
            except ValueError:
                continue
    for component in calendar.walk():
        for name in ("RRULE", "EXRULE"):
            values = component.get(name)
            if values is None:
                continue
            kept = [_Verbatim(raw_rules[v.to_ical()], v.params) if v.to_ical() in raw_rules else v
                    for v in (values if isinstance(values, list) else [values])]
            component[name] = kept if isinstance(values, list) else kept[0]
    return str(calendar.to_ical(sorted=False).decode())


def _aware(value: datetime, zone: tzinfo) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=zone)



def _zone(phone: PhoneEvent, shown: Shown, master: Any) -> tzinfo:
    """The zone the phone's times belong to: its blob's (the user's zone first), else the
    stored event's, else the user's."""
    blob = phone.values.get("Timezone")
    start_text = phone.values.get("StartTime")
    year = _time(start_text, "StartTime").year if start_text else datetime.now(UTC).year
    if blob:
        try:
            parsed = timezone.Blob.from_base64(blob)
        except timezone.BlobError as exc:
            raise EventError(str(exc)) from exc
        return timezone.to_zone(parsed, year, prefer=[str(getattr(shown.zone, "key", ""))] if
                                getattr(shown.zone, "key", None) else [])
    if "DTSTART" in master and isinstance(master["DTSTART"].dt, datetime) and master["DTSTART"].dt.tzinfo:
        found: tzinfo = master["DTSTART"].dt.tzinfo
        return found
    return shown.zone


def _times(master: Any, values: dict[str, str], zone: tzinfo, shown: Shown) -> None:
    all_day_text = values.get("AllDayEvent")
    was_all_day = "DTSTART" in master and not isinstance(master["DTSTART"].dt, datetime)
    all_day = was_all_day if all_day_text is None else all_day_text.strip() == "1"
    for field, name in (("StartTime", "DTSTART"), ("EndTime", "DTEND")):
        text = values.get(field)
        if text is None:
            if all_day != was_all_day and name in master:
                value = master[name].dt
                ical.replace(master, name, value.date() if all_day and isinstance(value, datetime) else value)
            continue
        moment = _time(text, field)
        if all_day:
            local = moment if shown.version >= 16.0 else moment.astimezone(zone)
            ical.replace(master, name, _nearest_date(local))
        else:
            ical.replace(master, name, moment.astimezone(zone))
    if "DTEND" in master and "DURATION" in master:
        del master["DURATION"]
    if "DTSTART" in master and "DTEND" in master and master["DTEND"].dt < master["DTSTART"].dt:
        raise EventError("EndTime before StartTime")


def _nearest_date(local: datetime) -> date:
    """An all-day event's date: the local midnight the phone meant (a phone a little off
    its own zone still means the nearest midnight)."""
    return (local.replace(tzinfo=None) + timedelta(hours=12)).date()


def _set_fields(master: Any, values: dict[str, str], body: str | None, categories: list[str] | None) -> None:
    if "Subject" in values:
        ical.replace(master, "SUMMARY", values["Subject"])
    if "Location" in values:
        ical.replace(master, "LOCATION", values["Location"])
    if body is not None:
        ical.replace(master, "DESCRIPTION", body.replace("\r\n", "\n"))
    if categories is not None:
        ical.replace(master, "CATEGORIES", categories or None)
    if "Sensitivity" in values:
        level = _number(values["Sensitivity"], "Sensitivity")
        if level not in ical.SENSITIVITY_NAMES:
            raise EventError(f"Sensitivity {level}")
        ical.replace(master, "CLASS", ical.SENSITIVITY_NAMES[level])
    if "BusyStatus" in values:
        busy = _number(values["BusyStatus"], "BusyStatus")
        if busy not in BUSY_NAMES:
            raise EventError(f"BusyStatus {busy}")
        ical.replace(master, "TRANSP", "TRANSPARENT" if busy == 0 else "OPAQUE")
        ical.replace(master, "X-MICROSOFT-CDO-BUSYSTATUS", BUSY_NAMES[busy])
    if "Reminder" in values:
        _set_reminder(master, _number(values["Reminder"], "Reminder"))


def _set_attendees(master: Any, attendees: list[tuple[str, str, int]], shown: Shown) -> None:
    """The organizer's list of attendees, as the phone has it. An attendee already there
    keeps its property as it is (PARTSTAT, SCHEDULE-STATUS, who schedules it); a new one
    is invited (NEEDS-ACTION, RSVP). Below EAS 16.0 the phone mails invitations itself
    (MS-ASCAL: SendMail), so a new attendee is marked SCHEDULE-AGENT=CLIENT and the CalDAV
    server sends nothing for it (RFC 6638 7.1); from 16.0 the server sends them. A copy
    the user was invited to is the organizer's list: a phone's Attendees do not change it."""
    organizer = master.get("ORGANIZER")
    if organizer is not None and ical.address(organizer).lower() not in shown.user_addresses:
        return
    existing = {ical.address(a).lower(): a for a in ical.as_list(master.get("ATTENDEE"))}
    if "ATTENDEE" in master:
        del master["ATTENDEE"]
    kept = [a for address, a in existing.items()
            if address in shown.user_addresses and address not in {e.lower() for e, _, _ in attendees}]
    for prop in kept:  # the organizer's own ATTENDEE line (its PARTSTAT) stays
        master.add("ATTENDEE", prop)
    for email, name, kind in attendees:
        prop = existing.get(email.lower())
        if prop is None:
            prop = vCalAddress("mailto:" + email)
            if name and name != email:
                prop.params["CN"] = name
            role, cutype = ATTENDEE_ROLES[kind]
            prop.params["ROLE"] = role
            if cutype:
                prop.params["CUTYPE"] = cutype
            prop.params["PARTSTAT"] = "NEEDS-ACTION"
            prop.params["RSVP"] = "TRUE"
            if shown.version < 16.0:
                prop.params["SCHEDULE-AGENT"] = "CLIENT"
        master.add("ATTENDEE", prop)
    if attendees and organizer is None and shown.user_addresses:
        master.add("ORGANIZER", vCalAddress("mailto:" + min(shown.user_addresses)))




def _set_reminder(master: Any, minutes: int | None) -> None:
    """The first display/audio alarm before the start carries the reminder; others stay."""
    for alarm in [c for c in master.subcomponents if c.name == "VALARM"]:
        trigger = alarm.get("TRIGGER")
        if trigger is not None and isinstance(trigger.dt, timedelta) and \
                str(trigger.params.get("RELATED", "START")).upper() != "END":
            if minutes is None:
                master.subcomponents.remove(alarm)
            else:
                ical.replace(alarm, "TRIGGER", timedelta(minutes=-minutes))
            return
    if minutes is not None:
        alarm = Alarm()
        alarm.add("ACTION", "DISPLAY")
        alarm.add("DESCRIPTION", "Reminder")
        alarm.add("TRIGGER", timedelta(minutes=-minutes))
        master.add_component(alarm)


def _set_recurrence(master: Any, phone: PhoneEvent, zone: tzinfo) -> None:
    if not phone.recurrence_sent:
        return  # the phone said nothing of it: the upstream rule stays
    start = master["DTSTART"].dt if "DTSTART" in master else datetime.now(zone)
    naive_start = start.replace(tzinfo=None) if isinstance(start, datetime) else start
    current = master.get("RRULE")
    if phone.recurrence is not None and current is not None:
        shown, exact = recurrence.to_eas(dict(current), naive_start)
        if recurrence.same_pattern(shown, phone.recurrence):
            return  # what the phone was shown came back: keep the upstream rule, exact or not
    if phone.recurrence is None:
        ical.replace(master, "RRULE", None)
        return
    try:
        rule = recurrence.from_eas(phone.recurrence, naive_start)
    except recurrence.RecurrenceError as exc:
        raise EventError(str(exc)) from exc
    if "UNTIL" in rule and isinstance(start, date) and not isinstance(start, datetime):
        rule["UNTIL"] = [rule["UNTIL"][0].date() if isinstance(rule["UNTIL"][0], datetime) else rule["UNTIL"][0]]
    ical.replace(master, "RRULE", vRecur(rule))



def _occurrences(master: Any, zone: tzinfo, limit: int = 2000) -> list[datetime]:
    if "RRULE" not in master or not isinstance(master["DTSTART"].dt, datetime):
        return []
    start = _aware(master["DTSTART"].dt, zone)
    rule = master["RRULE"].to_ical().decode()
    out = []
    for moment in rrulestr(rule, dtstart=start):
        out.append(moment)
        if len(out) >= limit:
            break
    return out


def _nearest(moment: datetime, occurrences: list[datetime]) -> datetime:
    if not occurrences:
        return moment
    return min(occurrences, key=lambda o: abs((o - moment).total_seconds()))


def _move_overrides(calendar: Any, master: Any, shift: timedelta) -> None:
    """A series that moves takes its overrides and EXDATEs along (their RECURRENCE-IDs
    name occurrences of the old series)."""
    if not shift:
        return
    for component in calendar.subcomponents:
        if component.name == "VEVENT" and component is not master and "RECURRENCE-ID" in component:
            original = component["RECURRENCE-ID"].dt
            if isinstance(original, datetime):
                ical.replace(component, "RECURRENCE-ID", original + shift)
    exdates = master.get("EXDATE")
    if exdates is not None:
        moved = [d.dt + shift for item in (exdates if isinstance(exdates, list) else [exdates]) for d in item.dts
                 if isinstance(d.dt, datetime)]
        del master["EXDATE"]
        for value in moved:
            master.add("EXDATE", value)


def _set_exceptions(calendar: Any, master: Any, exceptions: list[dict[str, Any]], zone: tzinfo,
                    shown: Shown) -> None:
    occurrences = _occurrences(master, zone)
    overrides = {c["RECURRENCE-ID"].dt: c for c in calendar.subcomponents
                 if c.name == "VEVENT" and "RECURRENCE-ID" in c and isinstance(c["RECURRENCE-ID"].dt, datetime)}
    existing = master.get("EXDATE")
    known = {d.dt for item in (existing if isinstance(existing, list) else [existing] if existing else [])
             for d in item.dts}
    for exception in exceptions:
        said = _time(exception["ExceptionStartTime"], "ExceptionStartTime").astimezone(zone)
        # An exception the phone was shown comes back as it was (even one upstream put off
        # the rule's occurrences); any other names the nearest occurrence.
        exact = next((when for when in (*known, *overrides) if isinstance(when, datetime) and when == said), None)
        original = exact if exact is not None else _nearest(said, occurrences)
        if exception.get("Deleted", "0").strip() == "1":
            if original not in known:
                master.add("EXDATE", original)
                known.add(original)
            override = next((c for when, c in overrides.items() if when == original), None)
            if override is not None:
                calendar.subcomponents.remove(override)
            continue
        override = next((c for when, c in overrides.items() if when == original), None)
        if override is None:
            override = Event()
            override.add("UID", master["UID"])
            override.add("RECURRENCE-ID", original)
            length = (master["DTEND"].dt - master["DTSTART"].dt) if "DTEND" in master else timedelta(hours=1)
            override.add("DTSTART", original)
            override.add("DTEND", original + length)
            for name in ("SUMMARY", "LOCATION", "DESCRIPTION", "CLASS", "TRANSP"):
                if name in master:
                    override.add(name, master[name])
            calendar.add_component(override)
        values = {k: v for k, v in exception.items() if isinstance(v, str)}
        _times(override, values, zone, shown)
        _set_fields(override, values, exception.get("Body"), exception.get("Categories"))
        ical.replace(override, "DTSTAMP", datetime.now(UTC))
