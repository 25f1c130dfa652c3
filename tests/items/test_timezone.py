"""The EAS time zone blob (MS-ASDTYPE TIME_ZONE_INFORMATION) against zoneinfo: golden
blobs from Horde's fixtures, the hard cases (southern hemisphere, no more DST, a
30-minute DST, the last-week rule), and a property test over every zone and year
1970-2037: our blob, expanded for a year, gives zoneinfo's UTC offset every five hours and a minute
either side of each transition, and the zone it resolves to agrees at every hour."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo, available_timezones

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from lxml import etree

from eas_gateway.items import timezone as tz

CORPUS = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures" / "eas-corpus"
HORDE = CORPUS / "horde-activesync" / "derived-wrapped"


def horde_blob(name: str) -> str:
    tree = etree.parse(str(HORDE / name)).getroot()
    return next(tree.iter("{Calendar:}TimeZone")).text or ""


def same_year(zone: str | ZoneInfo, other: object, year: int) -> bool:
    """Two zones give the same UTC offset at every hour of ``year``."""
    a = ZoneInfo(zone) if isinstance(zone, str) else zone
    start = datetime(year, 1, 1, tzinfo=UTC)
    return all((start + timedelta(hours=h)).astimezone(a).utcoffset() ==
               (start + timedelta(hours=h)).astimezone(other).utcoffset()  # type: ignore[arg-type]
               for h in range(0, 366 * 24, 1) if (start + timedelta(hours=h)).year == year)


def test_horde_blobs_are_new_york_as_zoneinfo_says() -> None:
    """Horde's appointment (2011-12-01 15:00 America/New_York) and all-day event (1970)."""
    appointment = tz.Blob.from_base64(horde_blob("appointment.xml"))
    ours = tz.for_zone("America/New_York", datetime(2011, 12, 1))
    assert (ours.bias, ours.standard, ours.daylight, ours.daylight_bias) == \
        (appointment.bias, appointment.standard, appointment.daylight, appointment.daylight_bias)
    # 1970: the US rule was the last Sunday of April to the last Sunday of October.
    allday = tz.Blob.from_base64(horde_blob("allday_appointment.xml"))
    ours = tz.for_zone("America/New_York", datetime(1970, 3, 20))
    assert (ours.standard, ours.daylight) == (allday.standard, allday.daylight)
    assert same_year("America/New_York", tz.to_zone(appointment, 2011), 2011)
    assert tz.to_zone(appointment, 2011, prefer=["America/New_York"]) == ZoneInfo("America/New_York")


def test_bytes_round_trip_and_layout() -> None:
    blob = tz.for_zone("Europe/Berlin", datetime(2026, 7, 1))
    raw = blob.to_bytes()
    assert len(raw) == 172
    assert tz.Blob.from_bytes(raw) == blob
    assert raw[4:4 + 2 * len("W. Europe Standard Time")].decode("utf-16-le") == "W. Europe Standard Time"
    assert tz.Blob.from_base64(base64.b64encode(raw).decode()) == blob


@pytest.mark.parametrize("data", [b"", b"\0" * 171, b"\0" * 173, b"not base64!"])
def test_bad_blobs_are_refused(data: bytes) -> None:
    with pytest.raises(tz.BlobError):
        tz.Blob.from_base64(data.decode(errors="replace")) if data == b"not base64!" else tz.Blob.from_bytes(data)


def test_a_transition_of_month_13_is_refused() -> None:
    raw = bytearray(tz.for_zone("Europe/Berlin", datetime(2026, 1, 1)).to_bytes())
    raw[70] = 13  # StandardDate.wMonth
    with pytest.raises(tz.BlobError):
        tz.Blob.from_bytes(bytes(raw))


def test_the_last_week_rule() -> None:
    """Europe: the last Sunday of March and October (week 5), which falls on the 4th Sunday in some years."""
    for year in (2021, 2026, 2027):
        blob = tz.for_zone("Europe/Berlin", datetime(year, 5, 1))
        assert (blob.daylight.month, blob.daylight.week, blob.standard.month, blob.standard.week) == (3, 5, 10, 5)  # type: ignore[union-attr]
        assert same_year("Europe/Berlin", tz.to_zone(blob, year), year)


def test_the_southern_hemisphere() -> None:
    blob = tz.for_zone("Australia/Sydney", datetime(2026, 1, 15))
    assert blob.bias == -600 and blob.daylight.month == 10 and blob.standard.month == 4  # type: ignore[union-attr]
    assert blob.offset_at(datetime(2026, 1, 15, tzinfo=UTC)) == timedelta(hours=11)
    assert blob.offset_at(datetime(2026, 7, 15, tzinfo=UTC)) == timedelta(hours=10)
    assert tz.to_zone(blob, 2026, prefer=["Australia/Sydney"]) == ZoneInfo("Australia/Sydney")


def test_a_zone_that_stopped_daylight_time() -> None:
    """São Paulo had DST until February 2019 and none since."""
    assert tz.for_zone("America/Sao_Paulo", datetime(2018, 6, 1)).has_daylight
    blob = tz.for_zone("America/Sao_Paulo", datetime(2026, 6, 1))
    assert not blob.has_daylight and blob.bias == 180
    assert tz.to_zone(blob, 2026, prefer=["America/Sao_Paulo"]) == ZoneInfo("America/Sao_Paulo")
    # 2019 itself has one transition only: the event gets the offset in force when it happens.
    assert tz.for_zone("America/Sao_Paulo", datetime(2019, 1, 10, 12, tzinfo=UTC)).bias == 120
    assert tz.for_zone("America/Sao_Paulo", datetime(2019, 6, 10, 12, tzinfo=UTC)).bias == 180


def test_a_thirty_minute_daylight_time() -> None:
    blob = tz.for_zone("Australia/Lord_Howe", datetime(2026, 1, 1))
    assert (blob.bias, blob.daylight_bias) == (-630, -30)
    assert same_year("Australia/Lord_Howe", tz.to_zone(blob, 2026), 2026)


def test_windows_names_and_the_last_resort() -> None:
    pacific = tz.Blob(480, tz.Rule(11, 0, 1, 2, 0), tz.Rule(3, 0, 2, 2, 0), standard_name="Pacific Standard Time")
    assert tz.to_zone(pacific, 2026) == ZoneInfo("America/Los_Angeles")
    india = tz.to_zone(tz.Blob(-330), 2026)  # +05:30 without DST: India or Sri Lanka, a current name
    assert same_year("Asia/Kolkata", india, 2026) and str(india) in ("Asia/Kolkata", "Asia/Colombo")
    assert tz.to_zone(tz.Blob(-330), 2026, prefer=["Asia/Kolkata"]) == ZoneInfo("Asia/Kolkata")
    assert tz.to_zone(tz.Blob(0), 2026).utcoffset(datetime(2026, 1, 1)) == timedelta(0)
    # Daylight time on a date no zone uses: UTC, logged.
    odd = tz.Blob(-60, tz.Rule(2, 3, 2, 5, 0), tz.Rule(1, 3, 2, 5, 0))
    assert tz.to_zone(odd, 2026) is UTC


ZONES = sorted(z for z in available_timezones() if not z.startswith(("posix/", "right/")) and z not in
               ("Factory", "localtime"))


def expressible(zone: ZoneInfo, year: int) -> bool:
    """A year a blob can hold exactly: no change, or one pair there and back at local times
    of that year, whole minutes."""
    changes = tz.zone_transitions(zone, year)
    offsets = {o for _, a, b in changes for o in (a, b)} or \
        {datetime(year, 1, 1, tzinfo=UTC).astimezone(zone).utcoffset()}
    if any(o is None or o.total_seconds() % 60 for o in offsets):
        return False
    return not changes or (len(changes) == 2 and changes[0][1] == changes[1][2] and changes[0][2] == changes[1][1]
                           and all((instant + before).year == year for instant, before, _ in changes))


@settings(max_examples=120, deadline=None)
@given(zone=st.sampled_from(ZONES), year=st.integers(1970, 2037))
@example(zone="Asia/Dacca", year=2009)  # daylight time ended at 2010-01-01 00:00 local
def test_the_blob_of_a_year_keeps_zoneinfos_offsets(zone: str, year: int) -> None:
    z = ZoneInfo(zone)
    blob = tz.for_zone(z, datetime(year, 7, 1))
    assert tz.Blob.from_bytes(blob.to_bytes()) == blob
    if not expressible(z, year):
        return  # the blob holds the offset in force at the event (test_a_zone_that_stopped_daylight_time)
    start = datetime(year, 1, 1, tzinfo=UTC)
    moments = [start + timedelta(hours=h) for h in range(0, 365 * 24, 5)]
    for instant, _, _ in tz.zone_transitions(z, year):  # and a minute either side of each change
        moments += [instant - timedelta(minutes=1), instant, instant + timedelta(minutes=1)]
    for moment in moments:
        assert blob.offset_at(moment) == moment.astimezone(z).utcoffset(), (zone, year, moment)
    # Back from the blob: the zone itself is recognised (every other zone of the year: the next test).
    assert same_year(z, tz.to_zone(blob, year, prefer=[zone]), year)


@pytest.mark.parametrize("year", [1975, 2000, 2026, 2037])
def test_every_zones_blob_finds_a_zone_with_the_same_offsets(year: int) -> None:
    """Without the user's zone: the search over every zone of the year finds an equivalent one."""
    for zone in ZONES[::7]:
        z = ZoneInfo(zone)
        if expressible(z, year):
            blob = tz.for_zone(z, datetime(year, 7, 1))
            assert same_year(z, tz.to_zone(blob, year), year), (zone, year)
