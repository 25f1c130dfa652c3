"""A phone's event into iCalendar without a server: a new event, an edit that keeps
everything the phone did not change (an RRULE EAS can only approximate above all),
a changed pattern, deleted and moved occurrences (with a wrong ExceptionStartTime),
all-day events from phones at UTC+13 and UTC-10, a series that moves with its
overrides, and what is refused."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from icalendar import Calendar
from lxml import etree

from eas_gateway.items import calendar as cal
from eas_gateway.items import calendar_merge as merge
from eas_gateway.items import timezone as tz
from eas_gateway.xml import E

A, C, B = "{AirSync:}", "{Calendar:}", "{AirSyncBase:}"
BERLIN = ZoneInfo("Europe/Berlin")
NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)
SHOWN = cal.Shown(14.1, BERLIN)


def phone(**values: str | list[str] | etree._Element) -> merge.PhoneEvent:
    data = E(None, A + "ApplicationData")
    for name, value in values.items():
        if name == "Body":
            E(E(data, B + "Body"), B + "Data", value)
        elif isinstance(value, list):
            holder = E(data, C + name)
            for v in value:
                E(holder, C + "Category", v)
        elif isinstance(value, etree._Element):
            data.append(value)
        else:
            E(data, C + name, value)
    return merge.read_phone(data)


def master(text: str) -> object:
    return next(c for c in Calendar.from_ical(text).walk("VEVENT") if "RECURRENCE-ID" not in c)


def shown_back(text: str, shown: cal.Shown = SHOWN) -> etree._Element:
    parent = E(None, A + "ApplicationData")
    cal.application_data(parent, text, shown)
    return parent


BERLIN_BLOB = tz.for_zone("Europe/Berlin", datetime(2026, 3, 10)).to_base64()


def test_a_new_event_from_the_phone() -> None:
    sent = phone(Timezone=BERLIN_BLOB, StartTime="20260310T080000Z", EndTime="20260310T090000Z", Subject="Dentist",
                 Location="Main St", Reminder="30", BusyStatus="3", Sensitivity="2", Categories=["Health"],
                 Body="Bring card", AllDayEvent="0")
    text = merge.merge(None, sent, SHOWN, uid="new-1", now=NOW)
    event = master(text)
    assert event["DTSTART"].dt == datetime(2026, 3, 10, 9, tzinfo=BERLIN)  # 08:00Z is 09:00 in Berlin
    assert str(event["DTSTART"].params["TZID"]) == "Europe/Berlin" and "BEGIN:VTIMEZONE" in text
    assert (str(event["SUMMARY"]), str(event["CLASS"]), str(event["X-MICROSOFT-CDO-BUSYSTATUS"])) == \
        ("Dentist", "PRIVATE", "OOF")
    assert str(event["UID"]) == "new-1"
    back = shown_back(text)
    for name, value in (("Subject", "Dentist"), ("StartTime", "20260310T080000Z"), ("Reminder", "30"),
                        ("BusyStatus", "3"), ("Sensitivity", "2"), ("Location", "Main St")):
        assert back.findtext(C + name) == value, name


STORED = """BEGIN:VCALENDAR\r
VERSION:2.0\r
PRODID:-//other client//EN\r
BEGIN:VEVENT\r
UID:series-1\r
DTSTAMP:20260101T000000Z\r
DTSTART;TZID=Europe/Berlin:20260301T090000\r
DTEND;TZID=Europe/Berlin:20260301T100000\r
RRULE:FREQ=MONTHLY;BYMONTHDAY=1,15\r
EXDATE;TZID=Europe/Berlin:20260315T090000\r
SUMMARY:Payroll\r
X-OTHER-CLIENT-FLAG:keep me\r
ATTACH:https://example.com/agenda.pdf\r
BEGIN:VALARM\r
ACTION:DISPLAY\r
TRIGGER;RELATED=END:PT5M\r
END:VALARM\r
END:VEVENT\r
BEGIN:VEVENT\r
UID:series-1\r
DTSTAMP:20260101T000000Z\r
RECURRENCE-ID;TZID=Europe/Berlin:20260401T090000\r
DTSTART;TZID=Europe/Berlin:20260401T140000\r
DTEND;TZID=Europe/Berlin:20260401T150000\r
SUMMARY:Payroll (afternoon)\r
END:VEVENT\r
END:VCALENDAR\r
"""


def _what_the_phone_was_shown() -> etree._Element:
    return shown_back(STORED)


def test_renaming_keeps_an_approximated_rule_and_everything_else() -> None:
    shown = _what_the_phone_was_shown()
    assert shown.findtext(f"{C}Recurrence/{C}Type") == "2"  # "monthly on the 1st": EAS cannot say "and 15th"
    sent = phone(Subject="Payroll run", StartTime=shown.findtext(C + "StartTime") or "",
                 EndTime=shown.findtext(C + "EndTime") or "", Timezone=shown.findtext(C + "Timezone") or "",
                 Recurrence=shown.find(C + "Recurrence"))
    text = merge.merge(STORED, sent, SHOWN, uid="x", now=NOW)
    event = master(text)
    assert str(event["SUMMARY"]) == "Payroll run"
    assert event["RRULE"].to_ical() == b"FREQ=MONTHLY;BYMONTHDAY=1,15"  # not the approximation
    assert "X-OTHER-CLIENT-FLAG:keep me" in text and "ATTACH:https://example.com/agenda.pdf" in text
    assert "TRIGGER;RELATED=END:PT5M" in text  # an alarm that is no reminder stays
    assert "RECURRENCE-ID;TZID=Europe/Berlin:20260401T090000" in text and "EXDATE;TZID=Europe/Berlin" in text
    assert int(event["SEQUENCE"]) == 1


def test_a_new_pattern_from_the_phone_replaces_the_rule() -> None:
    weekly = etree.Element(C + "Recurrence")
    for name, value in (("Type", "1"), ("DayOfWeek", "2"), ("Occurrences", "4")):
        etree.SubElement(weekly, C + name).text = value
    text = merge.merge(STORED, phone(Recurrence=weekly), SHOWN, uid="x", now=NOW)
    assert master(text)["RRULE"].to_ical() == b"FREQ=WEEKLY;COUNT=4;BYDAY=MO"


def _exceptions(*items: dict[str, str]) -> etree._Element:
    holder = etree.Element(C + "Exceptions")
    for item in items:
        exception = etree.SubElement(holder, C + "Exception")
        for name, value in item.items():
            etree.SubElement(exception, C + name).text = value
    return holder


WEEKLY = STORED.replace("RRULE:FREQ=MONTHLY;BYMONTHDAY=1,15", "RRULE:FREQ=WEEKLY;COUNT=10").replace(
    "EXDATE;TZID=Europe/Berlin:20260315T090000\r\n", "")


def test_deleted_and_moved_occurrences_even_with_a_wrong_exception_start_time() -> None:
    # 8 March 09:00 Berlin is 08:00Z; the phone says 07:00Z (an hour off, as iOS does after a series moved).
    sent = phone(Exceptions=_exceptions({"ExceptionStartTime": "20260308T070000Z", "Deleted": "1"},
                                        {"ExceptionStartTime": "20260315T080000Z", "StartTime": "20260315T100000Z",
                                         "EndTime": "20260315T110000Z", "Subject": "Moved"}))
    text = merge.merge(WEEKLY, sent, SHOWN, uid="x", now=NOW)
    event = master(text)
    exdates = [d.dt for item in (event["EXDATE"] if isinstance(event["EXDATE"], list) else [event["EXDATE"]])
               for d in item.dts]
    assert exdates == [datetime(2026, 3, 8, 9, tzinfo=BERLIN)]
    override = next(c for c in Calendar.from_ical(text).walk("VEVENT")
                    if "RECURRENCE-ID" in c and c["RECURRENCE-ID"].dt == datetime(2026, 3, 15, 9, tzinfo=BERLIN))
    assert str(override["SUMMARY"]) == "Moved"
    assert override["DTSTART"].dt == datetime(2026, 3, 15, 11, tzinfo=BERLIN)


def test_a_series_moved_takes_its_overrides_along() -> None:
    sent = phone(StartTime="20260301T090000Z", EndTime="20260301T100000Z", Timezone=BERLIN_BLOB)  # +1 hour
    text = merge.merge(WEEKLY, sent, SHOWN, uid="x", now=NOW)
    assert "RECURRENCE-ID;TZID=Europe/Berlin:20260401T100000" in text


@pytest.mark.parametrize("zone, start", [("Pacific/Tongatapu", "20260309T110000Z"),
                                         ("Pacific/Honolulu", "20260310T100000Z")])
def test_an_all_day_event_from_phones_far_east_and_west(zone: str, start: str) -> None:
    blob = tz.for_zone(zone, datetime(2026, 3, 10)).to_base64()
    end = (datetime.strptime(start, "%Y%m%dT%H%M%SZ") + timedelta(days=1)).strftime("%Y%m%dT%H%M%SZ")
    sent = phone(AllDayEvent="1", StartTime=start, EndTime=end, Timezone=blob, Subject="Holiday")
    event = master(merge.merge(None, sent, cal.Shown(14.1, ZoneInfo(zone)), uid="d", now=NOW))
    assert (event["DTSTART"].dt, event["DTEND"].dt) == (date(2026, 3, 10), date(2026, 3, 11))
    at16 = phone(AllDayEvent="1", StartTime="20260310T000000Z", EndTime="20260311T000000Z", Subject="Holiday")
    event = master(merge.merge(None, at16, cal.Shown(16.1, ZoneInfo(zone)), uid="d", now=NOW))
    assert event["DTSTART"].dt == date(2026, 3, 10)


@pytest.mark.parametrize("values", [
    {"StartTime": "20260310T100000Z", "EndTime": "20260310T090000Z"},
    {"Sensitivity": "9"}, {"BusyStatus": "x"}, {"StartTime": "yesterday"}, {"Timezone": "not base64"},
])
def test_what_is_refused(values: dict[str, str]) -> None:
    with pytest.raises(merge.EventError):
        merge.merge(None, phone(**values), SHOWN, uid="bad", now=NOW)


def test_another_classes_field_is_refused() -> None:
    data = E(None, A + "ApplicationData")
    E(data, "{Contacts:}FirstName", "x")
    with pytest.raises(merge.EventError):
        merge.read_phone(data)
