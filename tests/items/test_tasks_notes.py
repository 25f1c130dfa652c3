"""Tasks (VTODO) and Notes (VJOURNAL) both ways, pure: every field, the two date forms
of MS-ASTASK, merge-never-rebuild, and what the phone cannot say kept upstream."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from icalendar import Calendar
from lxml import etree

from eas_gateway.items import notes, tasks

A, T, N, B = "{AirSync:}", "{Tasks:}", "{Notes:}", "{AirSyncBase:}"
BERLIN = ZoneInfo("Europe/Berlin")
NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)

TODO = """BEGIN:VCALENDAR\r
VERSION:2.0\r
PRODID:-//test//EN\r
BEGIN:VTODO\r
UID:todo-1\r
DTSTAMP:20261101T000000Z\r
SUMMARY:File taxes\r
DESCRIPTION:all of them\r
DTSTART;TZID=Europe/Berlin:20261201T090000\r
DUE;VALUE=DATE:20261215\r
PRIORITY:3\r
CLASS:PRIVATE\r
CATEGORIES:Home,Money\r
RRULE:FREQ=MONTHLY;BYMONTHDAY=1,15\r
X-OTHER-APP:keep\r
BEGIN:VALARM\r
ACTION:DISPLAY\r
DESCRIPTION:x\r
TRIGGER;RELATED=END:-PT1H\r
END:VALARM\r
END:VTODO\r
END:VCALENDAR\r
"""


def shown(text: str, zone: ZoneInfo = BERLIN) -> dict[str, str]:
    data = etree.Element(A + "ApplicationData")
    tasks.application_data(data, text, zone=zone, truncation=None)
    return {etree.QName(e).localname: e.text or "" for e in data.iter() if len(e) == 0}


def todo_of(text: str):  # type: ignore[no-untyped-def]
    return next(c for c in Calendar.from_ical(text).subcomponents if c.name == "VTODO")


def test_a_task_is_shown_with_every_field() -> None:
    got = shown(TODO)
    assert got["Subject"] == "File taxes" and got["Data"] == "all of them"
    assert got["Importance"] == "2"  # PRIORITY 3: high
    assert got["Sensitivity"] == "2"
    assert got["StartDate"] == "2026-12-01T09:00:00.000Z"  # wall clock written as UTC
    assert got["UtcStartDate"] == "2026-12-01T08:00:00.000Z"
    assert got["DueDate"] == "2026-12-15T00:00:00.000Z"  # a due day: local midnight
    assert got["UtcDueDate"] == "2026-12-14T23:00:00.000Z"
    assert got["ReminderSet"] == "1" and got["ReminderTime"] == "2026-12-14T22:00:00.000Z"  # 1 h before due
    assert got["Complete"] == "0" and "DateCompleted" not in got
    assert got["Type"] == "2" and got["Start"] == "2026-12-01T09:00:00.000Z"  # nearest: monthly
    assert got["Regenerate"] == "0" and got["DeadOccur"] == "0"
    data = etree.Element(A + "ApplicationData")
    tasks.application_data(data, TODO, zone=BERLIN, truncation=None)
    assert [c.text for c in data.iter(T + "Category")] == ["Home", "Money"]


def test_a_completed_task_has_its_date() -> None:
    done = TODO.replace("PRIORITY:3\r\n", "STATUS:COMPLETED\r\nCOMPLETED:20261203T101500Z\r\n")
    got = shown(done)
    assert got["Complete"] == "1" and got["DateCompleted"] == "2026-12-03T10:15:00.000Z"
    assert got["Importance"] == "1"  # no PRIORITY: normal


def phone(fields: dict[str, str], recurrence: dict[str, str] | None = None) -> etree._Element:
    data = etree.Element(A + "ApplicationData")
    for name, value in fields.items():
        etree.SubElement(data, T + name).text = value
    if recurrence is not None:
        holder = etree.SubElement(data, T + "Recurrence")
        for name, value in recurrence.items():
            etree.SubElement(holder, T + name).text = value
    return data


def test_the_phone_echoing_what_it_was_shown_changes_nothing_it_cannot_say() -> None:
    data = etree.Element(A + "ApplicationData")
    tasks.application_data(data, TODO, zone=BERLIN, truncation=None)
    data.find(T + "Subject").text = "File taxes now"
    merged = tasks.merge(TODO, tasks.read_phone(data), zone=BERLIN, uid="x", now=NOW)
    todo = todo_of(merged)
    assert str(todo["SUMMARY"]) == "File taxes now"
    assert todo["RRULE"].to_ical() == b"FREQ=MONTHLY;BYMONTHDAY=1,15"  # the approximation did not replace it
    assert int(todo["PRIORITY"]) == 3  # Importance 2 still means 3
    assert todo["DUE"].dt == date(2026, 12, 15)  # still a day
    assert todo["DTSTART"].dt == datetime(2026, 12, 1, 9, tzinfo=BERLIN)
    assert str(todo["X-OTHER-APP"]) == "keep"
    alarm = next(c for c in todo.subcomponents if c.name == "VALARM")
    assert alarm["TRIGGER"].dt == timedelta(hours=-1)  # the same moment: the relative alarm stays
    assert str(todo["DESCRIPTION"]) == "all of them"


def test_the_phone_completes_reschedules_and_reprioritises() -> None:
    merged = tasks.merge(TODO, tasks.read_phone(phone({
        "Complete": "1", "DateCompleted": "2026-12-02T07:00:00.000Z", "Importance": "0",
        "DueDate": "2026-12-20T00:00:00.000Z", "UtcDueDate": "2026-12-19T23:00:00.000Z",
        "ReminderSet": "1", "ReminderTime": "2026-12-19T08:00:00.000Z"})), zone=BERLIN, uid="x", now=NOW)
    todo = todo_of(merged)
    assert str(todo["STATUS"]) == "COMPLETED" and todo["COMPLETED"].dt == datetime(2026, 12, 2, 7, tzinfo=UTC)
    assert int(todo["PRIORITY"]) == 9
    assert todo["DUE"].dt == date(2026, 12, 20)
    alarms = [c for c in todo.subcomponents if c.name == "VALARM"]
    assert len(alarms) == 1 and alarms[0]["TRIGGER"].dt == datetime(2026, 12, 19, 8, tzinfo=UTC)
    reopened = todo_of(tasks.merge(merged, tasks.read_phone(phone({"Complete": "0", "ReminderSet": "0"})),
                                   zone=BERLIN, uid="x", now=NOW))
    assert str(reopened["STATUS"]) == "NEEDS-ACTION" and "COMPLETED" not in reopened
    assert not [c for c in reopened.subcomponents if c.name == "VALARM"]


def test_a_new_task_from_the_phone() -> None:
    text = tasks.merge(None, tasks.read_phone(phone(
        {"Subject": "Call Ada", "UtcDueDate": "2026-12-05T15:30:00.000Z", "DueDate": "2026-12-05T16:30:00.000Z",
         "Importance": "2", "Complete": "0"},
        recurrence={"Type": "1", "Start": "2026-12-05T16:30:00.000Z", "DayOfWeek": "64", "Interval": "1",
                    "Regenerate": "1", "DeadOccur": "0"})), zone=BERLIN, uid="new-1", now=NOW)
    todo = todo_of(text)
    assert str(todo["UID"]) == "new-1" and str(todo["SUMMARY"]) == "Call Ada"
    assert todo["DUE"].dt == datetime(2026, 12, 5, 16, 30, tzinfo=BERLIN)
    assert int(todo["PRIORITY"]) == 1
    assert todo["RRULE"]["FREQ"] == ["WEEKLY"] and todo["RRULE"]["BYDAY"] == ["SA"]
    assert str(todo["X-EAS-REGENERATE"]) == "1"
    assert shown(text)["Regenerate"] == "1"


@pytest.mark.parametrize("fields", [{"Importance": "7"}, {"Complete": "²"}, {"UtcDueDate": "tomorrow"},
                                    {"UtcStartDate": "2026-12-10T00:00:00.000Z",
                                     "UtcDueDate": "2026-12-01T00:00:00.000Z"}])
def test_bad_task_fields_are_refused(fields: dict[str, str]) -> None:
    with pytest.raises(tasks.TaskError):
        tasks.merge(TODO, tasks.read_phone(phone(fields)), zone=BERLIN, uid="x", now=NOW)


def test_another_classes_fields_are_no_task() -> None:
    data = phone({"Subject": "x"})
    etree.SubElement(data, "{Calendar:}StartTime").text = "20261201T000000Z"
    with pytest.raises(tasks.TaskError):
        tasks.read_phone(data)
    with pytest.raises(tasks.TaskError):
        shown(TODO.replace("VTODO", "VEVENT"))


JOURNAL = ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:VJOURNAL\r\nUID:note-1\r\n"
           "DTSTAMP:20261101T000000Z\r\nLAST-MODIFIED:20261102T101010Z\r\nSUMMARY:Ideas\r\n"
           "DESCRIPTION:one\\ntwo\r\nCATEGORIES:Work\r\nX-KEEP:1\r\nEND:VJOURNAL\r\nEND:VCALENDAR\r\n")


def test_a_note_both_ways() -> None:
    data = etree.Element(A + "ApplicationData")
    notes.application_data(data, JOURNAL, truncation=None)
    got = {etree.QName(e).localname: e.text for e in data.iter() if len(e) == 0}
    assert got["Subject"] == "Ideas" and got["Data"] == "one\r\ntwo"
    assert got["MessageClass"] == "IPM.StickyNote" and got["LastModifiedDate"] == "2026-11-02T10:10:10.000Z"
    assert got["Category"] == "Work"
    change = etree.Element(A + "ApplicationData")
    etree.SubElement(change, N + "Subject").text = "Ideas, more"
    merged = notes.merge(JOURNAL, notes.read_phone(change), uid="x", now=NOW)
    journal = next(c for c in Calendar.from_ical(merged).subcomponents if c.name == "VJOURNAL")
    assert str(journal["SUMMARY"]) == "Ideas, more" and str(journal["DESCRIPTION"]) == "one\ntwo"
    assert str(journal["X-KEEP"]) == "1" and journal["LAST-MODIFIED"].dt == NOW
    new = notes.merge(None, notes.read_phone(change), uid="n-1", now=NOW)
    assert "BEGIN:VJOURNAL" in new and "UID:n-1" in new
    etree.SubElement(change, "{Tasks:}Complete").text = "1"
    with pytest.raises(notes.NoteError):
        notes.read_phone(change)
