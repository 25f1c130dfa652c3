"""VEVENT -> Calendar ApplicationData without a server: a recurring meeting with an
EXDATE and a moved occurrence, all-day events at 14.1 and 16.1 for phones at UTC+13
and UTC-10, Windows-named and custom VTIMEZONEs, floating times, and Evolution's
calendar test data (../shared/fixtures/eas-corpus)."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from lxml import etree

import wbxml
from eas_gateway.items import calendar as cal
from eas_gateway.items import timezone as tz
from eas_gateway.xml import E

C, B = "{Calendar:}", "{AirSyncBase:}"
EVOLUTION = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures" / "eas-corpus" / \
    "evolution-activesync" / "Cal_Info_Translator" / "_Response"
BERLIN = ZoneInfo("Europe/Berlin")


def ics(*events: str, extra: str = "") -> str:
    body = "".join(f"BEGIN:VEVENT\r\n{e.strip()}\r\nEND:VEVENT\r\n" for e in events)
    return f"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\n{extra}{body}END:VCALENDAR\r\n"


def data(text: str, shown: cal.Shown) -> etree._Element:
    parent = E(None, "{AirSync:}ApplicationData")
    cal.application_data(parent, text, shown)
    return wbxml.decode(wbxml.encode(parent))  # and it encodes: every element is on a code page


MEETING = ics("""
UID:rec-1
DTSTAMP:20260101T000000Z
DTSTART;TZID=Europe/Berlin:20260310T090000
DTEND;TZID=Europe/Berlin:20260310T100000
RRULE:FREQ=WEEKLY;BYDAY=TU;COUNT=10
EXDATE;TZID=Europe/Berlin:20260317T090000
SUMMARY:Weekly
LOCATION:Room 1
CLASS:CONFIDENTIAL
CATEGORIES:Work,Team
ORGANIZER;CN=Boss:mailto:boss@example.com
ATTENDEE;CN=Me;PARTSTAT=NEEDS-ACTION;RSVP=TRUE:mailto:me@example.com
ATTENDEE;CUTYPE=ROOM;PARTSTAT=ACCEPTED:mailto:room@example.com
ATTENDEE;ROLE=OPT-PARTICIPANT;PARTSTAT=DECLINED:mailto:opt@example.com
BEGIN:VALARM
ACTION:DISPLAY
TRIGGER:-PT15M
END:VALARM
""", """
UID:rec-1
DTSTAMP:20260101T000000Z
RECURRENCE-ID;TZID=Europe/Berlin:20260331T090000
DTSTART;TZID=Europe/Berlin:20260331T110000
DTEND;TZID=Europe/Berlin:20260331T120000
SUMMARY:Weekly (moved)
""")


def test_a_recurring_meeting_with_a_deleted_and_a_moved_occurrence() -> None:
    d = data(MEETING, cal.Shown(14.1, BERLIN, frozenset({"me@example.com"})))
    # 09:00 in Berlin is 08:00 UTC in March; the moved occurrence on 31 March is in summer time.
    assert (d.findtext(C + "StartTime"), d.findtext(C + "EndTime")) == ("20260310T080000Z", "20260310T090000Z")
    assert tz.to_zone(tz.Blob.from_base64(d.findtext(C + "Timezone") or ""), 2026) == BERLIN
    assert d.findtext(C + "Subject") == "Weekly" and d.findtext(C + "Location") == "Room 1"
    assert d.findtext(C + "Sensitivity") == "3" and d.findtext(C + "Reminder") == "15"
    assert [c.text for c in d.iter(C + "Category")] == ["Work", "Team"]
    assert (d.findtext(C + "OrganizerName"), d.findtext(C + "OrganizerEmail")) == ("Boss", "boss@example.com")
    assert d.findtext(C + "MeetingStatus") == "3" and d.findtext(C + "ResponseRequested") == "1"
    attendees = [(a.findtext(C + "Email"), a.findtext(C + "AttendeeStatus"), a.findtext(C + "AttendeeType"))
                 for a in d.iter(C + "Attendee")]
    assert attendees == [("me@example.com", "5", "1"), ("room@example.com", "3", "3"), ("opt@example.com", "4", "2")]
    rule = d.find(C + "Recurrence")
    assert (rule.findtext(C + "Type"), rule.findtext(C + "Occurrences"), rule.findtext(C + "DayOfWeek")) == \
        ("1", "10", "4")
    deleted, moved = d.iter(C + "Exception")
    assert (deleted.findtext(C + "Deleted"), deleted.findtext(C + "ExceptionStartTime")) == ("1", "20260317T080000Z")
    assert moved.findtext(C + "ExceptionStartTime") == "20260331T070000Z"  # the original start, UTC
    assert (moved.findtext(C + "StartTime"), moved.findtext(C + "Subject")) == ("20260331T090000Z", "Weekly (moved)")
    # An exception carries what differs from the series only: no AllDayEvent, Location, Reminder.
    assert moved.find(C + "AllDayEvent") is None and moved.find(C + "Location") is None
    assert moved.find(C + "Reminder") is None


def test_at_16_the_location_has_its_own_element() -> None:
    d = data(MEETING, cal.Shown(16.1, BERLIN))
    assert d.find(C + "Location") is None and d.findtext(f"{B}Location/{B}DisplayName") == "Room 1"


ALL_DAY = ics("UID:a\r\nDTSTAMP:20260101T000000Z\r\nDTSTART;VALUE=DATE:20260310\r\nDTEND;VALUE=DATE:20260311\r\n"
              "SUMMARY:Holiday")


@pytest.mark.parametrize("zone", ["Pacific/Tongatapu", "Pacific/Honolulu", "Europe/Berlin"])
def test_an_all_day_event_is_the_same_day_in_every_zone(zone: str) -> None:
    shown = ZoneInfo(zone)
    d = data(ALL_DAY, cal.Shown(14.1, shown))
    assert d.findtext(C + "AllDayEvent") == "1"
    blob = tz.Blob.from_base64(d.findtext(C + "Timezone") or "")
    start = datetime.strptime(d.findtext(C + "StartTime") or "", "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    end = datetime.strptime(d.findtext(C + "EndTime") or "", "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    # The phone turns the UTC time into local time with the blob: local midnight of the 10th.
    assert (start + blob.offset_at(start)).replace(tzinfo=None) == datetime(2026, 3, 10)
    assert end - start == timedelta(days=1)
    # From 16.0: the date at 00:00 and no Timezone.
    d16 = data(ALL_DAY, cal.Shown(16.1, shown))
    assert d16.findtext(C + "StartTime") == "20260310T000000Z" and d16.find(C + "Timezone") is None


def test_windows_named_and_custom_time_zones() -> None:
    windows = ics("UID:w\r\nDTSTAMP:20260101T000000Z\r\nDTSTART;TZID=W. Europe Standard Time:20260710T090000\r\n"
                  "DTEND;TZID=W. Europe Standard Time:20260710T100000")
    assert data(windows, cal.Shown(14.1, UTC)).findtext(C + "StartTime") == "20260710T070000Z"
    custom = ics("UID:c\r\nDTSTAMP:20260101T000000Z\r\nDTSTART;TZID=My Own Zone:20260710T090000\r\n"
                 "DURATION:PT1H", extra=(
                     "BEGIN:VTIMEZONE\r\nTZID:My Own Zone\r\nBEGIN:STANDARD\r\nDTSTART:19701101T020000\r\n"
                     "RRULE:FREQ=YEARLY;BYMONTH=11;BYDAY=1SU\r\nTZOFFSETFROM:-0400\r\nTZOFFSETTO:-0500\r\n"
                     "END:STANDARD\r\nBEGIN:DAYLIGHT\r\nDTSTART:19700308T020000\r\n"
                     "RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=2SU\r\nTZOFFSETFROM:-0500\r\nTZOFFSETTO:-0400\r\n"
                     "END:DAYLIGHT\r\nEND:VTIMEZONE\r\n"))
    d = data(custom, cal.Shown(14.1, UTC))
    assert (d.findtext(C + "StartTime"), d.findtext(C + "EndTime")) == ("20260710T130000Z", "20260710T140000Z")
    blob = tz.Blob.from_base64(d.findtext(C + "Timezone") or "")
    assert (blob.bias, blob.daylight.month, blob.standard.month) == (300, 3, 11)  # type: ignore[union-attr]


def test_a_floating_time_is_the_users() -> None:
    floating = ics("UID:f\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:20260710T090000\r\nDTEND:20260710T100000")
    assert data(floating, cal.Shown(14.1, BERLIN)).findtext(C + "StartTime") == "20260710T070000Z"


@pytest.mark.parametrize("text", ["", "BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n", "not ical at all",
                                  ics("UID:x\r\nSUMMARY:no start")])
def test_data_that_is_no_event_is_refused(text: str) -> None:
    with pytest.raises(cal.CalendarError):
        cal.application_data(E(None, "{AirSync:}ApplicationData"), text, cal.Shown(14.1, UTC))


@pytest.mark.parametrize("case, expected", [
    ("all", {"Subject": "test kalendarza", "Location": "second floor", "StartTime": "20110711T080000Z",
             "EndTime": "20110711T090000Z", "UID": "4ctoibh7jhumaua8ucd44k8luc@google.com", "BusyStatus": "2",
             "AllDayEvent": "0", "DtStamp": "20110711T133147Z"}),
    ("sensitivity", {"Sensitivity": "2"}),
    ("busy", {"BusyStatus": "2"}),
    ("reminder", {"Reminder": "12", "Location": "location"}),
])
def test_evolution_events(case: str, expected: dict[str, str]) -> None:
    """Evolution's translator test data: its vCalendar and the ApplicationData it expects."""
    text = (EVOLUTION / "VCalendar_Data" / f"VCard_cal_info_translator_parse_response_{case}.txt").read_text()
    if "DTSTART" not in text:  # their field-by-field cases carry no start: give them one
        text = text.replace("BEGIN:VEVENT", "BEGIN:VEVENT\r\nDTSTART:20110711T080000Z", 1)
    d = data(text, cal.Shown(14.1, ZoneInfo("Europe/London")))
    assert {name: d.findtext(C + name) for name in expected} == expected


def test_evolution_attendees() -> None:
    text = (EVOLUTION / "VCalendar_Data" / "VCard_cal_info_translator_parse_response_attendee.txt").read_text()
    text = text.replace("BEGIN:VEVENT", "BEGIN:VEVENT\r\nDTSTART:20110711T080000Z", 1)
    d = data(text, cal.Shown(14.1, UTC))
    got = [(a.findtext(C + "Email"), a.findtext(C + "AttendeeStatus"), a.findtext(C + "AttendeeType"))
           for a in d.iter(C + "Attendee")]
    assert got == [("example1@example.com", "2", "1"), ("example2@example.com", "5", "1")]


def test_evolutions_time_zone_blob_is_central_europe() -> None:
    xml = (EVOLUTION / "XML_Data" / "_XML_cal_info_translator_parse_response_timeZone.xml").read_bytes()
    blob = tz.Blob.from_base64(etree.fromstring(xml).findtext("{Calendar:}TimeZone") or "")
    assert len(base64.b64decode(blob.to_base64())) == 172
    zone = tz.to_zone(blob, 2011, prefer=["Europe/Warsaw"])  # the test data's author was in Poland
    assert zone == ZoneInfo("Europe/Warsaw")
