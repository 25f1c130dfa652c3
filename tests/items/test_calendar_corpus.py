"""Golden round trips with Horde's calendar documents (../shared/fixtures/eas-corpus):
each ApplicationData a phone could send (an appointment, an all-day event, one across
DST, a recurrence, a recurrence with a deleted occurrence) goes into iCalendar
(items.calendar_merge) and comes back out (items.calendar) with the same times, zone
offsets, pattern and exceptions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from lxml import etree

import wbxml
from eas_gateway.items import calendar, calendar_merge, timezone

CORPUS = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "eas-corpus" / "horde-activesync"
C = "{Calendar:}"
NOW = datetime(2026, 11, 30, tzinfo=UTC)


def _fields(data: etree._Element) -> dict[str, str]:
    return {etree.QName(e).localname: (e.text or "") for e in data if len(e) == 0}


@pytest.mark.parametrize("name", ["appointment", "allday_appointment", "dst", "recurrence", "simpleexception"])
@pytest.mark.parametrize("zone", ["UTC", "America/New_York", "Pacific/Auckland"])
def test_horde_events_round_trip(name: str, zone: str) -> None:
    sent = wbxml.decode((CORPUS / "derived-wrapped" / f"{name}.wbxml").read_bytes())
    shown = calendar.Shown(14.1, ZoneInfo(zone), frozenset({"user@example.com"}))
    stored = calendar_merge.merge(None, calendar_merge.read_phone(sent), shown, uid="golden", now=NOW)
    back = etree.Element("{AirSync:}ApplicationData")
    calendar.application_data(back, stored, shown)
    before, after = _fields(sent), _fields(back)
    all_day = before.get("AllDayEvent") == "1"
    assert after.get("AllDayEvent", "0") == before.get("AllDayEvent", "0")
    for field in ("Subject", "Location", "BusyStatus") + (() if all_day else ("StartTime", "EndTime")):
        if field in before:
            assert after[field] == before[field], (field, stored)
    if all_day:  # local midnight of the blob's zone: the phone sent New York's, we send the user's
        def days(fields: dict[str, str]) -> list[object]:
            blob = timezone.Blob.from_base64(fields["Timezone"])
            return [datetime.strptime(fields[f], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC).astimezone(
                timezone.to_zone(blob, 1970)).date() for f in ("StartTime", "EndTime")]
        assert days(after) == days(before)
    if "Timezone" in before and after.get("AllDayEvent") != "1":
        # The zone the blob named gives the same offsets through the year as the blob sent.
        theirs, ours = (timezone.Blob.from_base64(d[k]) for d, k in ((before, "Timezone"), (after, "Timezone")))
        start = datetime.strptime(before["StartTime"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        for day in range(0, 366, 5):
            moment = start + timedelta(days=day)
            assert timezone.to_zone(ours, moment.year).utcoffset(moment.replace(tzinfo=None)) == \
                timezone.to_zone(theirs, moment.year).utcoffset(moment.replace(tzinfo=None))
    pattern_before, pattern_after = sent.find(C + "Recurrence"), back.find(C + "Recurrence")
    assert (pattern_before is None) == (pattern_after is None)
    if pattern_before is not None:
        assert _fields(pattern_after).items() >= {k: v for k, v in _fields(pattern_before).items()
                                                  if k in ("Type", "Interval", "DayOfWeek", "Occurrences")}.items()
    exceptions_before = [(_fields(e).get("ExceptionStartTime"), _fields(e).get("Deleted"))
                         for e in sent.iter(C + "Exception")]
    exceptions_after = [(_fields(e).get("ExceptionStartTime"), _fields(e).get("Deleted"))
                        for e in back.iter(C + "Exception")]
    assert exceptions_after == exceptions_before
