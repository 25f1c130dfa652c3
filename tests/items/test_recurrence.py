"""Recurrence <-> RRULE without a server: every EAS pattern both ways, Outlook's
BYSETPOS form, the last week, Horde's fixture, rules EAS cannot hold flagged as
approximations, and property tests: an EAS pattern survives RRULE and back, and an
exact RRULE's occurrences are the same after EAS and back (python-dateutil expands)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from dateutil.rrule import rrulestr
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from icalendar import vRecur
from lxml import etree

from eas_gateway.items import recurrence as rec

START = datetime(2026, 3, 10, 9, 0)  # a Tuesday
CORPUS = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures" / "eas-corpus"


def rule(text: str) -> dict[str, object]:
    return dict(vRecur.from_ical(text))


def text(rule_: dict[str, object]) -> str:
    return vRecur(rule_).to_ical().decode()


def occurrences(rule_text: str, start: datetime = START, count: int = 60) -> list[datetime]:
    found = []
    for moment in rrulestr(rule_text, dtstart=start):
        found.append(moment)
        if len(found) >= count or moment > start + timedelta(days=3 * 366):
            break
    return found


@pytest.mark.parametrize("rrule, expected", [
    ("FREQ=DAILY", rec.Recurrence(rec.DAILY)),
    ("FREQ=DAILY;INTERVAL=3;COUNT=10", rec.Recurrence(rec.DAILY, interval=3, occurrences=10)),
    ("FREQ=WEEKLY", rec.Recurrence(rec.WEEKLY, day_of_week=4)),
    ("FREQ=WEEKLY;INTERVAL=2;BYDAY=MO,WE,FR;WKST=MO",
     rec.Recurrence(rec.WEEKLY, interval=2, day_of_week=2 | 8 | 32, first_day_of_week=1)),
    ("FREQ=DAILY;BYDAY=MO,TU,WE,TH,FR", rec.Recurrence(rec.WEEKLY, day_of_week=62)),  # every weekday
    ("FREQ=MONTHLY", rec.Recurrence(rec.MONTHLY, day_of_month=10)),
    ("FREQ=MONTHLY;BYMONTHDAY=31", rec.Recurrence(rec.MONTHLY, day_of_month=31)),
    ("FREQ=MONTHLY;BYDAY=2TU", rec.Recurrence(rec.MONTHLY_NTH, week_of_month=2, day_of_week=4)),
    ("FREQ=MONTHLY;BYDAY=TU;BYSETPOS=2", rec.Recurrence(rec.MONTHLY_NTH, week_of_month=2, day_of_week=4)),
    ("FREQ=MONTHLY;BYDAY=-1FR", rec.Recurrence(rec.MONTHLY_NTH, week_of_month=5, day_of_week=32)),
    ("FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-1",
     rec.Recurrence(rec.MONTHLY_NTH, week_of_month=5, day_of_week=62)),
    ("FREQ=MONTHLY;BYMONTHDAY=-1", rec.Recurrence(rec.MONTHLY_NTH, week_of_month=5, day_of_week=127)),
    ("FREQ=YEARLY", rec.Recurrence(rec.YEARLY, day_of_month=10, month_of_year=3)),
    ("FREQ=YEARLY;BYMONTH=11;BYDAY=4TH", rec.Recurrence(rec.YEARLY_NTH, week_of_month=4, day_of_week=16,
                                                        month_of_year=11)),
])
def test_every_pattern_eas_expresses(rrule: str, expected: rec.Recurrence) -> None:
    got, exact = rec.to_eas(rule(rrule), START)
    assert exact and got == expected
    # And back: the same occurrences (the RRULE may be spelled differently).
    assert occurrences(text(rec.from_eas(got, START))) == occurrences(rrule)


def test_until_and_count() -> None:
    until = datetime(2026, 6, 30, 23, 59, 59, tzinfo=UTC)
    got, exact = rec.to_eas(rule("FREQ=WEEKLY;UNTIL=20260630T235959Z"), START)
    assert exact and got.until == until
    assert rec.from_eas(got, START)["UNTIL"] == [until]
    assert rec.from_eas(rec.Recurrence(rec.DAILY, occurrences=5, until=until), START)["COUNT"] == [5]


@pytest.mark.parametrize("rrule", [
    "FREQ=MONTHLY;BYMONTHDAY=1,15",  # several days of the month
    "FREQ=YEARLY;BYYEARDAY=100",
    "FREQ=HOURLY;INTERVAL=4",  # sub-daily
    "FREQ=MONTHLY;BYDAY=1MO,3MO",  # several ordinal weekdays
    "FREQ=MONTHLY;BYDAY=TU;BYSETPOS=1,3",
    "FREQ=WEEKLY;BYMONTH=6,7",
    "FREQ=MONTHLY;BYDAY=TU;BYSETPOS=3;BYMONTHDAY=10,11,12,13,14,15,16",
])
def test_rules_eas_cannot_hold_are_approximations(rrule: str) -> None:
    got, exact = rec.to_eas(rule(rrule), START)
    assert not exact
    rec.from_eas(got, START)  # still a pattern the phone can show


def test_horde_weekly_every_other_thursday() -> None:
    tree = etree.parse(str(CORPUS / "horde-activesync" / "derived-wrapped" / "recurrence.xml")).getroot()
    element = next(tree.iter("{Calendar:}Recurrence"))
    values = {etree.QName(e).localname.removeprefix("Recurrence_"): int(e.text or 0) for e in element}
    got = rec.Recurrence(values["Type"], interval=values["Interval"], day_of_week=values["DayOfWeek"])
    assert text(rec.from_eas(got, datetime(2011, 12, 1, 15))) == "FREQ=WEEKLY;INTERVAL=2;BYDAY=TH"


@pytest.mark.parametrize("bad", [
    rec.Recurrence(9), rec.Recurrence(rec.DAILY, interval=0), rec.Recurrence(rec.MONTHLY, day_of_month=32),
    rec.Recurrence(rec.MONTHLY_NTH, week_of_month=6, day_of_week=2), rec.Recurrence(rec.MONTHLY_NTH, week_of_month=1),
    rec.Recurrence(rec.YEARLY, month_of_year=13, day_of_month=1), rec.Recurrence(rec.DAILY, occurrences=0),
    rec.Recurrence(rec.DAILY, first_day_of_week=7),
])
def test_patterns_that_mean_nothing_are_refused(bad: rec.Recurrence) -> None:
    with pytest.raises(rec.RecurrenceError):
        rec.from_eas(bad, START)


masks = st.integers(1, 127)
patterns = st.one_of(
    st.builds(rec.Recurrence, st.just(rec.DAILY), interval=st.integers(1, 30)),
    st.builds(rec.Recurrence, st.just(rec.WEEKLY), interval=st.integers(1, 5), day_of_week=masks),
    st.builds(rec.Recurrence, st.just(rec.MONTHLY), interval=st.integers(1, 12), day_of_month=st.integers(1, 31)),
    st.builds(rec.Recurrence, st.just(rec.MONTHLY_NTH), interval=st.integers(1, 12), week_of_month=st.integers(1, 5),
              day_of_week=masks),
    st.builds(rec.Recurrence, st.just(rec.YEARLY), month_of_year=st.integers(1, 12), day_of_month=st.integers(1, 28)),
    st.builds(rec.Recurrence, st.just(rec.YEARLY_NTH), month_of_year=st.integers(1, 12),
              week_of_month=st.integers(1, 5), day_of_week=st.sampled_from([1, 2, 4, 8, 16, 32, 64])),
)


@settings(max_examples=300, deadline=None)
@given(pattern=patterns, count=st.one_of(st.none(), st.integers(1, 50)), wkst=st.one_of(st.none(), st.integers(0, 6)))
def test_an_eas_pattern_survives_rrule_and_back(pattern: rec.Recurrence, count: int | None, wkst: int | None) -> None:
    from dataclasses import replace
    pattern = replace(pattern, occurrences=count, first_day_of_week=wkst)
    rrule = rec.from_eas(pattern, START)
    back, exact = rec.to_eas(rrule, START)
    assert exact
    assert occurrences(text(rec.from_eas(back, START))) == occurrences(text(rrule))


@settings(max_examples=200, deadline=None)
@given(freq=st.sampled_from(["DAILY", "WEEKLY", "MONTHLY", "YEARLY"]), interval=st.integers(1, 4),
       days=st.lists(st.sampled_from(rec.DAYS), min_size=0, max_size=3, unique=True),
       ordinal=st.sampled_from([None, 1, 2, 3, 4, -1]), monthday=st.one_of(st.none(), st.integers(1, 28)),
       month=st.one_of(st.none(), st.integers(1, 12)))
def test_an_exact_rrules_occurrences_survive_eas_and_back(freq: str, interval: int, days: list[str],
                                                          ordinal: int | None, monthday: int | None,
                                                          month: int | None) -> None:
    parts = [f"FREQ={freq}", f"INTERVAL={interval}", "COUNT=30"]
    if days:
        parts.append("BYDAY=" + ",".join(f"{ordinal}{d}" if ordinal and freq in ("MONTHLY", "YEARLY") and
                                         len(days) == 1 else d for d in days))
    if monthday and not days:
        parts.append(f"BYMONTHDAY={monthday}")
    if month and freq == "YEARLY":
        parts.append(f"BYMONTH={month}")
    rrule = ";".join(parts)
    got, exact = rec.to_eas(rule(rrule), START)
    assume(exact)
    assert occurrences(text(rec.from_eas(got, START))) == occurrences(rrule), (rrule, got)
