"""Meetings (iTIP, RFC 5546, carried by iMIP mail, RFC 6047) as EAS sees them. Pure.

- An invitation or cancellation in the Inbox (a text/calendar part with METHOD
  REQUEST or CANCEL) is an Email with MessageClass IPM.Schedule.Meeting.Request or
  .Canceled and a MeetingRequest element (MS-ASEMAIL 2.2.2.48): ``meeting_request``.
- GlobalObjId (MS-ASEMAIL 2.2.2.41) is the meeting's UID in Outlook's PidLidGlobalObjectId
  form (MS-OXCICAL 2.1.3.1.1.20.26): an Outlook UID (hex of such an id) is that id; any
  other UID is wrapped as "vCal-Uid" data.
- ``respond`` writes the user's answer (MeetingResponse UserResponse) into the event
  as the attendee's PARTSTAT, the event as the user's calendar keeps it (no METHOD).
"""

from __future__ import annotations

import base64
import binascii
import copy
import struct
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from email.message import EmailMessage
from typing import Any

from dateutil.rrule import rrulestr
from icalendar import Calendar, Event, vCalAddress
from lxml import etree

from eas_gateway.items import ical, recurrence, timezone
from eas_gateway.items.calendar import BUSY, CalendarError, Shown
from eas_gateway.xml import E

M, M2, B = "{Email:}", "{Email2:}", "{AirSyncBase:}"
REQUEST_CLASS, CANCELED_CLASS = "IPM.Schedule.Meeting.Request", "IPM.Schedule.Meeting.Canceled"
# MS-ASCMD 2.2.3.181 UserResponse: 1 accepted, 2 tentatively accepted, 3 declined.
ACCEPT, TENTATIVE, DECLINE = 1, 2, 3
PARTSTAT = {ACCEPT: "ACCEPTED", TENTATIVE: "TENTATIVE", DECLINE: "DECLINED"}
_GOID_CLASS = bytes.fromhex("040000008200E00074C5B7101A82E008")


class MeetingError(ValueError):
    """A text/calendar part that is no meeting the gateway can show or answer."""


@dataclass(frozen=True)
class Invitation:
    method: str  # REQUEST, CANCEL (others are no MeetingRequest)
    text: str  # the whole VCALENDAR
    uid: str
    sequence: int

    @property
    def message_class(self) -> str:
        return CANCELED_CLASS if self.method == "CANCEL" else REQUEST_CLASS


def read(text: str) -> Invitation | None:
    """The invitation or cancellation in a text/calendar part; None for another method."""
    try:
        calendar: Any = Calendar.from_ical(text)
    except ValueError as exc:
        raise MeetingError(f"not iCalendar data: {exc}") from exc
    method = (ical.text(calendar, "METHOD") or "").upper()
    if method not in ("REQUEST", "CANCEL"):
        return None
    event = next((c for c in calendar.subcomponents if c.name == "VEVENT"), None)
    if event is None or "UID" not in event:
        raise MeetingError(f"a {method} without a VEVENT and its UID")
    return Invitation(method, text, str(event["UID"]), int(event.get("SEQUENCE", 0) or 0))


def global_object_id(uid: str, instance: date | None = None) -> bytes:
    """PidLidGlobalObjectId of a meeting (or of one instance, ``instance`` its date)."""
    try:
        raw = bytes.fromhex(uid) if uid[:32].upper() == _GOID_CLASS.hex().upper() else b""
    except ValueError:
        raw = b""
    day = struct.pack(">HBB", instance.year, instance.month, instance.day) if instance else b"\0" * 4
    if len(raw) >= 40:
        return raw[:16] + (day if instance else raw[16:20]) + raw[20:]
    data = b"vCal-Uid" + struct.pack("<I", 1) + uid.encode() + b"\0"
    return _GOID_CLASS + day + b"\0" * 16 + struct.pack("<I", len(data)) + data


def uid_of_global_object_id(encoded: str) -> str:
    """The UID a GlobalObjId stands for (InstanceId-less MeetingResponse, Find)."""
    try:
        raw = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise MeetingError("GlobalObjId is not base64") from exc
    if raw[:16] != _GOID_CLASS or len(raw) < 40:
        raise MeetingError("GlobalObjId is no PidLidGlobalObjectId")
    data = raw[40:40 + struct.unpack("<I", raw[36:40])[0]]
    if data.startswith(b"vCal-Uid"):
        return data[12:].rstrip(b"\0").decode("utf-8", "replace")
    return (_GOID_CLASS + b"\0" * 4 + raw[20:]).hex().upper()


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def meeting_request(parent: etree._Element, invitation: Invitation, shown: Shown) -> None:
    """The MeetingRequest element of the invitation's Email (MS-ASEMAIL 2.2.2.48)."""
    calendar: Any = Calendar.from_ical(invitation.text)
    events = [c for c in calendar.subcomponents if c.name == "VEVENT"]
    event = next((e for e in events if "RECURRENCE-ID" not in e), events[0])
    if "DTSTART" not in event:
        raise MeetingError("the invitation has no DTSTART")
    start = event["DTSTART"].dt
    all_day = not isinstance(start, datetime)
    zone: tzinfo = shown.zone if all_day or start.tzinfo is None else start.tzinfo
    begin = _aware(start, zone)
    if "DTEND" in event:
        end = _aware(event["DTEND"].dt, zone)
    elif "DURATION" in event:
        end = begin + event["DURATION"].dt
    else:
        end = begin + (timedelta(days=1) if all_day else timedelta(0))
    request = E(parent, M + "MeetingRequest")
    E(request, M + "AllDayEvent", int(all_day))
    E(request, M + "StartTime", _stamp(begin))
    if "DTSTAMP" in event:
        E(request, M + "DtStamp", _stamp(_aware(event["DTSTAMP"].dt, UTC)))
    E(request, M + "EndTime", _stamp(end))
    instance = "RECURRENCE-ID" in event
    E(request, M + "InstanceType", 3 if instance else 1 if "RRULE" in event else 0)
    location = ical.text(event, "LOCATION")
    if location:
        if shown.version >= 16.0:
            E(E(request, B + "Location"), B + "DisplayName", location)
        else:
            E(request, M + "Location", location)
    if "ORGANIZER" in event:
        E(request, M + "Organizer", ical.address(event["ORGANIZER"]))
    if instance:
        E(request, M + "RecurrenceId", _stamp(_aware(event["RECURRENCE-ID"].dt, zone)))
    trigger = next((a["TRIGGER"].dt for a in event.walk("VALARM") if "TRIGGER" in a), None)
    if isinstance(trigger, timedelta):
        E(request, M + "Reminder", max(0, round(-trigger.total_seconds() / 60)))
    mine = [a for a in ical.as_list(event.get("ATTENDEE")) if ical.address(a).lower() in shown.user_addresses]
    asked = any(str(a.params.get("RSVP", "")).upper() == "TRUE" for a in mine) if mine else True
    E(request, M + "ResponseRequested", int(asked and invitation.method == "REQUEST"))
    rule = event.get("RRULE")
    if rule is not None:
        pattern, _ = recurrence.to_eas(dict(rule), begin.astimezone(zone).replace(tzinfo=None))
        holder = E(E(request, M + "Recurrences"), M + "Recurrence")
        E(holder, M + "Type", pattern.type)
        E(holder, M + "Interval", pattern.interval)
        if pattern.until is not None:
            until = pattern.until if isinstance(pattern.until, datetime) else \
                datetime.combine(pattern.until, time(23, 59, 59), zone)
            E(holder, M + "Until", _stamp(_aware(until, zone)))
        if pattern.occurrences is not None:
            E(holder, M + "Occurrences", pattern.occurrences)
        for name, value in (("WeekOfMonth", pattern.week_of_month), ("DayOfMonth", pattern.day_of_month),
                            ("DayOfWeek", pattern.day_of_week), ("MonthOfYear", pattern.month_of_year)):
            if value is not None:
                E(holder, M + name, value)
        if pattern.first_day_of_week is not None and shown.version >= 14.0:
            E(holder, M2 + "FirstDayOfWeek", pattern.first_day_of_week)
    E(request, M + "Sensitivity", ical.sensitivity(event))
    busy = (ical.text(event, "X-MICROSOFT-CDO-INTENDEDSTATUS") or "").upper()
    E(request, M + "BusyStatus", BUSY.get(busy, 0 if (ical.text(event, "TRANSP") or "").upper() == "TRANSPARENT"
                                          else 2))
    E(request, M + "TimeZone", timezone.for_zone(zone, begin).to_base64())
    instance_date = _aware(event["RECURRENCE-ID"].dt, zone).date() if instance else None
    E(request, M + "GlobalObjId", base64.b64encode(global_object_id(invitation.uid, instance_date)).decode())
    if shown.version >= 14.0:
        E(request, M + "DisallowNewTimeProposal",
          int((ical.text(event, "X-MICROSOFT-DISALLOW-COUNTER") or "").upper() == "TRUE"))
    if shown.version >= 14.1:
        # 1: a new request; 2: a full update (the organizer sent it again, SEQUENCE > 0).
        E(request, M2 + "MeetingMessageType", 1 if invitation.sequence == 0 else 2)


def _aware(value: date | datetime, zone: tzinfo) -> datetime:
    if not isinstance(value, datetime):
        return datetime.combine(value, time(0), zone)
    return value if value.tzinfo is not None else value.replace(tzinfo=zone)


def respond(text: str, user_addresses: frozenset[str], response: int, *, server_replies: bool,
            proposed: tuple[datetime, datetime] | None = None, instance: datetime | None = None) -> tuple[str, str]:
    """The event with the user's answer as their PARTSTAT (and, for a counter-proposal,
    the proposed times as X-properties the organizer's client may read), without an
    iTIP METHOD: what the user's calendar keeps. (text, UID).

    ``server_replies`` False: the phone mails the reply itself, so the ORGANIZER is
    marked SCHEDULE-AGENT=CLIENT (RFC 6638 7.1) and the CalDAV server sends none (Cyrus
    3.6 sends a reply for a PUT even with ``Schedule-Reply: F``); True: the mark goes and
    the server's scheduling mails the organizer.

    ``instance`` (MeetingResponse InstanceId, 16.x): the answer is for that occurrence of
    a series only: its override (made from the series if there is none) takes it."""
    try:
        calendar: Any = Calendar.from_ical(text)
    except ValueError as exc:
        raise CalendarError(f"not iCalendar data: {exc}") from exc
    if "METHOD" in calendar:
        del calendar["METHOD"]
    events = [c for c in calendar.subcomponents if c.name == "VEVENT"]
    if not events:
        raise MeetingError("no VEVENT to answer")
    uid = str(events[0]["UID"])
    answered = events if instance is None else [_occurrence(calendar, events, instance)]
    for event in events:
        organizer = event.get("ORGANIZER")
        if organizer is not None:
            if server_replies:
                organizer.params.pop("SCHEDULE-AGENT", None)
            else:
                organizer.params["SCHEDULE-AGENT"] = "CLIENT"
    found = False
    for event in answered:
        for attendee in ical.as_list(event.get("ATTENDEE")):
            if ical.address(attendee).lower() in user_addresses:
                attendee.params["PARTSTAT"] = PARTSTAT[response]
                attendee.params.pop("RSVP", None)
                found = True
        if proposed is not None:
            ical.replace(event, "X-EAS-PROPOSED-START", proposed[0].astimezone(UTC))
            ical.replace(event, "X-EAS-PROPOSED-END", proposed[1].astimezone(UTC))
    if not found:
        raise MeetingError("the user is no attendee of this meeting")
    return calendar.to_ical(sorted=False).decode(), uid


def _occurrence(calendar: Any, events: list[Any], instance: datetime) -> Any:
    """The override of the occurrence that starts at ``instance`` (its original start),
    made from the series when there is none; MeetingError if the series has no such one."""
    master = next((e for e in events if "RECURRENCE-ID" not in e), None)
    if master is None or "RRULE" not in master or not isinstance(master["DTSTART"].dt, datetime):
        raise MeetingError("InstanceId names an occurrence of a meeting that does not recur")
    start = master["DTSTART"].dt
    zone = start.tzinfo or UTC
    wanted = instance.astimezone(zone)
    for event in events:
        if "RECURRENCE-ID" in event and _aware(event["RECURRENCE-ID"].dt, zone) == wanted:
            return event
    rule = rrulestr(master["RRULE"].to_ical().decode(), dtstart=_aware(start, zone))
    if rule.after(wanted - timedelta(seconds=1), inc=True) != wanted:
        raise MeetingError(f"the meeting has no occurrence at {instance.isoformat()}")
    override = copy.deepcopy(master)
    for name in ("RRULE", "RDATE", "EXDATE", "DTSTART", "DTEND", "DURATION", "RECURRENCE-ID"):
        while name in override:
            del override[name]
    length = (master["DTEND"].dt - start) if "DTEND" in master else \
        (master["DURATION"].dt if "DURATION" in master else timedelta(0))
    occurrence = wanted if start.tzinfo else wanted.replace(tzinfo=None)
    override.add("RECURRENCE-ID", occurrence)
    override.add("DTSTART", occurrence)
    override.add("DTEND", occurrence + length)
    calendar.add_component(override)
    return override


def counter(text: str, user: str, proposed: tuple[datetime, datetime], *, now: datetime) -> tuple[bytes, str] | None:
    """The iMIP COUNTER (RFC 5546 3.2.7) of a new time the user proposes, as a message to the
    organizer (RFC 6047), and the organizer's address; None when there is nobody to ask
    (no organizer, or the user organizes it)."""
    calendar: Any = Calendar.from_ical(text)
    master = next((c for c in calendar.subcomponents if c.name == "VEVENT" and "RECURRENCE-ID" not in c), None)
    if master is None or "ORGANIZER" not in master:
        return None
    organizer = ical.address(master["ORGANIZER"])
    if organizer.lower() == user.lower():
        return None
    proposal = Calendar()
    proposal.add("PRODID", "-//eas-gateway//EN")
    proposal.add("VERSION", "2.0")
    proposal.add("METHOD", "COUNTER")
    event = Event()
    for name in ("UID", "SEQUENCE", "SUMMARY", "LOCATION", "ORGANIZER"):
        if name in master:
            event.add(name, master[name])
    event.add("DTSTAMP", now.astimezone(UTC))
    event.add("DTSTART", proposed[0].astimezone(UTC))
    event.add("DTEND", proposed[1].astimezone(UTC))
    mine = next((a for a in ical.as_list(master.get("ATTENDEE")) if ical.address(a).lower() == user.lower()), None)
    event.add("ATTENDEE", mine if mine is not None else vCalAddress("mailto:" + user))
    proposal.add_component(event)
    summary = ical.text(master, "SUMMARY") or "meeting"
    message = EmailMessage()
    message["From"] = user
    message["To"] = organizer
    message["Subject"] = f"New time proposed: {summary}"
    message.set_content(f"{user} proposes a new time for {summary!r}: {proposed[0].astimezone(UTC):%Y-%m-%d %H:%M}"
                        f" to {proposed[1].astimezone(UTC):%Y-%m-%d %H:%M} UTC.\n")
    message.add_alternative(proposal.to_ical().decode(), subtype="calendar", params={"method": "COUNTER"})
    return message.as_bytes(), organizer
