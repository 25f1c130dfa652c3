"""Tasks (MS-ASTASK) from and into iCalendar VTODO (RFC 5545 3.6.2). Pure.

To the phone: SUMMARY, DESCRIPTION (AirSyncBase Body), DTSTART and DUE in both forms
MS-ASTASK wants (StartDate/DueDate: the local wall-clock time written as if it were
UTC; UtcStartDate/UtcDueDate: the moment), PRIORITY as Importance, STATUS/COMPLETED
as Complete/DateCompleted, CLASS, CATEGORIES, the first alarm as ReminderSet and
ReminderTime, and RRULE as Recurrence with the task's own Start. A date-only DUE
(VALUE=DATE, what most task apps write) is local midnight of the users' zone.

From the phone: merged into the stored VTODO, never rebuilt; what the phone did not
send stays. An upstream PRIORITY keeps its number while the phone's Importance maps
to it; a rule EAS can only approximate stays while the phone sends back what it was
shown (as for events); Regenerate and DeadOccur, which iCalendar has no words for,
are kept in X-EAS-REGENERATE / X-EAS-DEADOCCUR.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any

from icalendar import Alarm, Calendar, Todo, vRecur
from lxml import etree

from eas_gateway.items import body, ical, recurrence
from eas_gateway.xml import E

T, B = "{Tasks:}", "{AirSyncBase:}"
LOW, NORMAL, HIGH = 0, 1, 2


class TaskError(ValueError):
    """iCalendar data that is no task, or ApplicationData that cannot be one (Status 6)."""


def _moment(text: str, name: str) -> datetime:
    for layout in ("%Y-%m-%dT%H:%M:%S.%fZ", "%Y-%m-%dT%H:%M:%SZ", "%Y%m%dT%H%M%SZ"):
        try:
            return datetime.strptime(text.strip(), layout).replace(tzinfo=UTC)
        except ValueError:
            continue
    raise TaskError(f"{name} {text!r} is no date-time")


def _stamp(moment: datetime) -> str:
    """MS-ASDTYPE dateTime (2.3): 2009-11-25T16:00:00.000Z."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def importance(priority: int) -> int:
    """RFC 5545 PRIORITY (1 highest .. 9 lowest, 0 undefined) as Importance."""
    if 1 <= priority <= 4:
        return HIGH
    if priority >= 6:
        return LOW
    return NORMAL


PRIORITY = {HIGH: 1, NORMAL: 5, LOW: 9}


def _todo(text: str) -> tuple[Any, Any]:
    try:
        calendar: Any = Calendar.from_ical(text)
    except ValueError as exc:
        raise TaskError(f"not iCalendar data: {exc}") from exc
    todos = [c for c in calendar.subcomponents if c.name == "VTODO"]
    master = next((t for t in todos if "RECURRENCE-ID" not in t), None)
    if master is None:
        raise TaskError("no VTODO in the object")
    return calendar, master


def _local_and_utc(value: date | datetime, zone: tzinfo) -> tuple[datetime, datetime]:
    """(wall-clock time written as UTC, the moment) of a DTSTART/DUE."""
    if not isinstance(value, datetime):
        local = datetime.combine(value, time(0))
        return local.replace(tzinfo=UTC), local.replace(tzinfo=zone).astimezone(UTC)
    if value.tzinfo is None:
        value = value.replace(tzinfo=zone)
    local = value.astimezone(zone).replace(tzinfo=None)
    return local.replace(tzinfo=UTC), value.astimezone(UTC)


def _reminder(todo: Any, start: datetime | None, due: datetime | None) -> datetime | None:
    """The moment of the first alarm (absolute, or relative to the start or the due time)."""
    for alarm in todo.walk("VALARM"):
        trigger = alarm.get("TRIGGER")
        if trigger is None:
            continue
        if isinstance(trigger.dt, datetime):
            return trigger.dt.astimezone(UTC) if trigger.dt.tzinfo else trigger.dt.replace(tzinfo=UTC)
        related = str(trigger.params.get("RELATED", "START")).upper()
        anchor = due if related == "END" else (start or due)
        if anchor is not None and isinstance(trigger.dt, timedelta):
            return anchor + trigger.dt
    return None


def application_data(parent: etree._Element, text: str, *, zone: tzinfo, truncation: int | None) -> None:
    """The Tasks fields of the iCalendar object ``text`` under ``parent`` (ApplicationData)."""
    _, todo = _todo(text)
    description = ical.text(todo, "DESCRIPTION")
    if description is not None:
        body.plain(parent, description, truncation)
    categories = ical.categories(todo)
    if categories:
        holder = E(parent, T + "Categories")
        for category in categories:
            E(holder, T + "Category", category)
    status = (ical.text(todo, "STATUS") or "").upper()
    done = status == "COMPLETED" or "COMPLETED" in todo
    E(parent, T + "Complete", int(done))
    if done:
        completed = todo["COMPLETED"].dt if "COMPLETED" in todo else \
            (todo["LAST-MODIFIED"].dt if "LAST-MODIFIED" in todo else datetime.now(UTC))
        E(parent, T + "DateCompleted", _stamp(_local_and_utc(completed, zone)[1]))
    due = start = None
    if "DUE" in todo:
        local, due = _local_and_utc(todo["DUE"].dt, zone)
        E(parent, T + "DueDate", _stamp(local))
        E(parent, T + "UtcDueDate", _stamp(due))
    elif "DTSTART" in todo and "DURATION" in todo:
        local, due = _local_and_utc(todo["DTSTART"].dt + todo["DURATION"].dt, zone)
        E(parent, T + "DueDate", _stamp(local))
        E(parent, T + "UtcDueDate", _stamp(due))
    E(parent, T + "Importance", importance(int(todo.get("PRIORITY", 0) or 0)))
    rule = todo.get("RRULE")
    anchor = todo.get("DTSTART") or todo.get("DUE")
    if rule is not None and anchor is not None:
        naive = anchor.dt.astimezone(zone).replace(tzinfo=None) if isinstance(anchor.dt, datetime) and \
            anchor.dt.tzinfo else anchor.dt
        pattern, _ = recurrence.to_eas(dict(rule), naive)
        _recurrence(E(parent, T + "Recurrence"), pattern, todo, _local_and_utc(anchor.dt, zone)[0])
    if "DTSTART" in todo:
        local, start = _local_and_utc(todo["DTSTART"].dt, zone)
    reminder = _reminder(todo, start, due)
    E(parent, T + "ReminderSet", int(reminder is not None))
    if reminder is not None:
        E(parent, T + "ReminderTime", _stamp(reminder))
    E(parent, T + "Sensitivity", ical.sensitivity(todo))
    if start is not None:
        E(parent, T + "StartDate", _stamp(local))
        E(parent, T + "UtcStartDate", _stamp(start))
    E(parent, T + "Subject", ical.text(todo, "SUMMARY") or "")


def _recurrence(parent: etree._Element, pattern: recurrence.Recurrence, todo: Any, start: datetime) -> None:
    E(parent, T + "Type", pattern.type)
    E(parent, T + "Start", _stamp(start))
    if pattern.occurrences is not None:
        E(parent, T + "Occurrences", pattern.occurrences)
    elif pattern.until is not None:
        until = pattern.until if isinstance(pattern.until, datetime) else \
            datetime.combine(pattern.until, time(0), UTC)
        E(parent, T + "Until", _stamp(until.astimezone(UTC) if until.tzinfo else until.replace(tzinfo=UTC)))
    if pattern.interval > 1:
        E(parent, T + "Interval", pattern.interval)
    for name, value in (("DayOfWeek", pattern.day_of_week), ("DayOfMonth", pattern.day_of_month),
                        ("WeekOfMonth", pattern.week_of_month), ("MonthOfYear", pattern.month_of_year)):
        if value is not None:
            E(parent, T + name, value)
    E(parent, T + "Regenerate", int(ical.text(todo, "X-EAS-REGENERATE") == "1"))
    E(parent, T + "DeadOccur", int(ical.text(todo, "X-EAS-DEADOCCUR") == "1"))
    if pattern.first_day_of_week is not None:
        E(parent, T + "FirstDayOfWeek", pattern.first_day_of_week)


# -- from the phone ------------------------------------------------------------------


@dataclass
class PhoneTask:
    """The Tasks fields a phone sent; absent keys were not sent."""

    values: dict[str, str] = field(default_factory=dict)
    categories: list[str] | None = None
    body: str | None = None
    recurrence: dict[str, str] | None = None
    recurrence_sent: bool = False


def read_phone(data: etree._Element | None) -> PhoneTask:
    if data is None:
        raise TaskError("no ApplicationData")
    out = PhoneTask()
    for element in data:
        q = etree.QName(element)
        if q.namespace == "AirSyncBase:" and q.localname == "Body":
            out.body = element.findtext(B + "Data") or ""
        elif q.namespace != "Tasks:":
            raise TaskError(f"{{{q.namespace}}}{q.localname} is no task field")
        elif q.localname == "Categories":
            out.categories = [(c.text or "").strip() for c in element if (c.text or "").strip()]
        elif q.localname == "Recurrence":
            out.recurrence_sent = True
            out.recurrence = {etree.QName(c).localname: (c.text or "").strip() for c in element}
        else:
            out.values[q.localname] = (element.text or "").strip()
    return out


def _number(text: str | None, name: str) -> int | None:
    if text is None or text == "":
        return None
    if not text.isascii() or not text.lstrip("-").isdigit():
        raise TaskError(f"{name} {text!r} is not a number")
    return int(text)


def _when(values: dict[str, str], local_name: str, utc_name: str, zone: tzinfo) -> date | datetime | None:
    """A DTSTART/DUE from the phone's pair: its local midnight is a date (task apps mean a
    day, and the phone's zone may not be the users'); any other time is the UTC moment,
    written in the users' zone."""
    local_text, utc_text = values.get(local_name), values.get(utc_name)
    if not local_text and not utc_text:
        return None
    if local_text:
        local = _moment(local_text, local_name)
        if local.time() == time(0):  # the phone's own midnight, whatever zone it is in
            return local.date()
    if utc_text:
        return _moment(utc_text, utc_name).astimezone(zone)
    return _moment(local_text or "", local_name).replace(tzinfo=zone)


def merge(stored: str | None, phone: PhoneTask, *, zone: tzinfo, uid: str, now: datetime) -> str:
    """The iCalendar object with the phone's task in it (``stored`` None: a new one)."""
    if stored:
        calendar, todo = _todo(stored)
    else:
        calendar = Calendar()
        calendar.add("PRODID", "-//eas-gateway//EN")
        calendar.add("VERSION", "2.0")
        todo = Todo()
        todo.add("UID", uid)
        calendar.add_component(todo)
    values = phone.values
    if "Subject" in values:
        ical.replace(todo, "SUMMARY", values["Subject"])
    if phone.body is not None:
        ical.replace(todo, "DESCRIPTION", phone.body.replace("\r\n", "\n"))
    if phone.categories is not None:
        ical.replace(todo, "CATEGORIES", phone.categories or None)
    if "Sensitivity" in values:
        level = _number(values["Sensitivity"], "Sensitivity")
        if level not in ical.SENSITIVITY_NAMES:
            raise TaskError(f"Sensitivity {level}")
        ical.replace(todo, "CLASS", ical.SENSITIVITY_NAMES[level])
    if "Importance" in values:
        level = _number(values["Importance"], "Importance")
        if level not in PRIORITY:
            raise TaskError(f"Importance {level}")
        if importance(int(todo.get("PRIORITY", 0) or 0)) != level:
            ical.replace(todo, "PRIORITY", PRIORITY[level])
    for local_name, utc_name, prop in (("StartDate", "UtcStartDate", "DTSTART"), ("DueDate", "UtcDueDate", "DUE")):
        if local_name in values or utc_name in values:
            ical.replace(todo, prop, _when(values, local_name, utc_name, zone))
    if "DTSTART" in todo and "DUE" in todo:
        if "DURATION" in todo:
            del todo["DURATION"]
        start, due = (_as_utc(todo[p].dt, zone) for p in ("DTSTART", "DUE"))
        if due < start:
            raise TaskError("the task is due before it starts")
    _complete(todo, values, now)
    _reminder_from_phone(todo, values, zone)
    _recurrence_from_phone(todo, phone, zone)
    ical.replace(todo, "DTSTAMP", now.astimezone(UTC))
    ical.replace(todo, "LAST-MODIFIED", now.astimezone(UTC))
    if stored:
        ical.replace(todo, "SEQUENCE", int(todo.get("SEQUENCE", 0)) + 1)
    return str(calendar.to_ical(sorted=False).decode())


def _as_utc(value: date | datetime, zone: tzinfo) -> datetime:
    return _local_and_utc(value, zone)[1]


def _complete(todo: Any, values: dict[str, str], now: datetime) -> None:
    if "Complete" not in values:
        return
    done = _number(values["Complete"], "Complete") == 1
    was_done = (ical.text(todo, "STATUS") or "").upper() == "COMPLETED" or "COMPLETED" in todo
    if done and not was_done:
        when = _moment(values["DateCompleted"], "DateCompleted") if values.get("DateCompleted") else now
        ical.replace(todo, "STATUS", "COMPLETED")
        ical.replace(todo, "COMPLETED", when.astimezone(UTC))
        ical.replace(todo, "PERCENT-COMPLETE", 100)
    elif not done and was_done:
        ical.replace(todo, "STATUS", "NEEDS-ACTION")
        ical.replace(todo, "COMPLETED", None)
        ical.replace(todo, "PERCENT-COMPLETE", None)


def _reminder_from_phone(todo: Any, values: dict[str, str], zone: tzinfo) -> None:
    if "ReminderSet" not in values:
        return
    alarms = [c for c in todo.subcomponents if c.name == "VALARM"]
    if _number(values["ReminderSet"], "ReminderSet") != 1:
        for alarm in alarms[:1]:
            todo.subcomponents.remove(alarm)
        return
    if not values.get("ReminderTime"):
        return
    when = _moment(values["ReminderTime"], "ReminderTime")
    if alarms:
        start = _as_utc(todo["DTSTART"].dt, zone) if "DTSTART" in todo else None
        due = _as_utc(todo["DUE"].dt, zone) if "DUE" in todo else None
        if _reminder(todo, start, due) == when:
            return  # the same moment, however upstream wrote it: kept as it is
        todo.subcomponents.remove(alarms[0])
    alarm = Alarm()
    alarm.add("ACTION", "DISPLAY")
    alarm.add("DESCRIPTION", "Reminder")
    alarm.add("TRIGGER", when, parameters={"VALUE": "DATE-TIME"})
    todo.add_component(alarm)


def _recurrence_from_phone(todo: Any, phone: PhoneTask, zone: tzinfo) -> None:
    if not phone.recurrence_sent:
        return
    for name, prop in (("Regenerate", "X-EAS-REGENERATE"), ("DeadOccur", "X-EAS-DEADOCCUR")):
        if phone.recurrence is not None and name in phone.recurrence:
            flag = _number(phone.recurrence[name], name) == 1
            ical.replace(todo, prop, "1" if flag else None)
    if phone.recurrence is None or not phone.recurrence.get("Type"):
        ical.replace(todo, "RRULE", None)
        return
    given = phone.recurrence

    def number(name: str) -> int | None:
        return _number(given.get(name), name)
    kind = number("Type")
    assert kind is not None
    pattern = recurrence.Recurrence(
        kind, interval=number("Interval") or 1, occurrences=number("Occurrences"),
        until=_moment(given["Until"], "Until") if given.get("Until") else None, day_of_week=number("DayOfWeek"),
        day_of_month=number("DayOfMonth"), week_of_month=number("WeekOfMonth"), month_of_year=number("MonthOfYear"),
        first_day_of_week=number("FirstDayOfWeek"), calendar_type=number("CalendarType"))
    anchor = todo.get("DTSTART") or todo.get("DUE")
    if anchor is None:
        if not given.get("Start"):
            raise TaskError("a recurring task needs a start or due date")
        todo.add("DTSTART", _moment(given["Start"], "Start").date())
        anchor = todo["DTSTART"]
    naive = anchor.dt.astimezone(zone).replace(tzinfo=None) if isinstance(anchor.dt, datetime) and \
        anchor.dt.tzinfo else anchor.dt
    current = todo.get("RRULE")
    if current is not None and recurrence.same_pattern(recurrence.to_eas(dict(current), naive)[0], pattern):
        return  # what the phone was shown came back: the upstream rule stays, exact or not
    try:
        rule = recurrence.from_eas(pattern, naive)
    except recurrence.RecurrenceError as exc:
        raise TaskError(str(exc)) from exc
    if "UNTIL" in rule and not isinstance(anchor.dt, datetime):
        rule["UNTIL"] = [u.date() if isinstance(u, datetime) else u for u in rule["UNTIL"]]
    ical.replace(todo, "RRULE", vRecur(rule))
