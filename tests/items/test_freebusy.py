"""items.freebusy (MergedFreeBusy, MS-ASCMD 2.2.3.107) and usm.upstream.freebusy (the
VFREEBUSY of RFC 6638), pure."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import icalendar

from eas_gateway.items import freebusy
from usm.upstream.freebusy import freebusy_periods, freebusy_request

START = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
BERLIN = ZoneInfo("Europe/Berlin")


def at(minutes: int) -> datetime:
    return START + timedelta(minutes=minutes)


def test_one_digit_per_half_hour_the_highest_wins_and_partial_slots_count() -> None:
    busy = [(at(0), at(60), freebusy.TENTATIVE), (at(45), at(50), freebusy.OOF), (at(100), at(110), freebusy.BUSY),
            (at(-60), at(10), freebusy.BUSY), (at(200), at(300), freebusy.BUSY)]  # before, in, after the span
    assert freebusy.merged(START, at(150), busy) == "23020"
    assert freebusy.merged(START, at(31), []) == "00"  # a part of a slot is a slot
    assert freebusy.slots(START, at(30 * freebusy.MAX_SLOTS)) == freebusy.MAX_SLOTS


def test_fbtypes_map_to_digits() -> None:
    periods = [(at(0), at(30), "BUSY-TENTATIVE"), (at(30), at(60), "busy-unavailable"), (at(60), at(90), "FREE"),
               (at(90), at(120), "X-SOMETHING")]
    assert freebusy.merged(START, at(120), freebusy.from_fbtypes(periods)) == "1302"


def test_events_expanded_floating_and_all_day_in_the_users_zone() -> None:
    floating = ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:x\r\nBEGIN:VEVENT\r\nUID:a\r\nDTSTAMP:20261101T000000Z\r\n"
                "DTSTART:20261130T100000\r\nDTEND:20261130T103000\r\nRRULE:FREQ=DAILY;COUNT=3\r\n"
                "END:VEVENT\r\nEND:VCALENDAR\r\n")  # 10:00 Berlin = 09:00 UTC, daily
    all_day = ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:x\r\nBEGIN:VEVENT\r\nUID:b\r\nDTSTAMP:20261101T000000Z\r\n"
               "DTSTART;VALUE=DATE:20261202\r\nX-MICROSOFT-CDO-BUSYSTATUS:OOF\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n")
    broken = "BEGIN:VCALENDAR\r\nnot a calendar"
    busy = freebusy.from_events([floating, all_day, broken], START, START + timedelta(days=2), BERLIN)
    assert sorted(busy) == [(at(60), at(90), freebusy.BUSY),
                            (datetime(2026, 12, 1, 23, 0, tzinfo=UTC), datetime(2026, 12, 2, 23, 0, tzinfo=UTC),
                             freebusy.OOF),
                            (at(60 + 24 * 60), at(90 + 24 * 60), freebusy.BUSY)]


def test_the_request_and_the_reply() -> None:
    request = icalendar.Calendar.from_ical(freebusy_request("a@example.com", ["b@example.com", "c@example.org"],
                                                            START, at(60)))
    assert request["METHOD"] == "REQUEST"
    (query,) = request.walk("VFREEBUSY")
    assert [str(a) for a in query["ATTENDEE"]] == ["mailto:b@example.com", "mailto:c@example.org"]
    assert str(query["ORGANIZER"]) == "mailto:a@example.com" and query["DTSTART"].dt == START
    reply = ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:x\r\nMETHOD:REPLY\r\nBEGIN:VFREEBUSY\r\nUID:u\r\n"
             "DTSTAMP:20261130T000000Z\r\nFREEBUSY:20261201T080000Z/20261201T090000Z,20261201T100000Z/PT30M\r\n"
             "FREEBUSY;FBTYPE=BUSY-TENTATIVE:20261201T093000Z/20261201T100000Z\r\nEND:VFREEBUSY\r\nEND:VCALENDAR\r\n")
    assert freebusy_periods(reply) == [(at(0), at(60), "BUSY"), (at(120), at(150), "BUSY"),
                                       (at(90), at(120), "BUSY-TENTATIVE")]
    assert freebusy_periods("garbage") == []
