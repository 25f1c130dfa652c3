"""Recurrence (MS-ASCAL 2.2.2.37, Type 2.2.2.45; MS-ASTASK 2.2.2.20) <-> RRULE (RFC 5545 3.3.10).

Pure. EAS patterns, by Type:

    0 daily          Interval days (with DayOfWeek: on those days)
    1 weekly         DayOfWeek (bitmask: Sunday 1, Monday 2, ... Saturday 64), Interval weeks
    2 monthly        DayOfMonth
    3 monthly, nth   WeekOfMonth (1-4, 5 = last) + DayOfWeek (127: a day of any kind, i.e. the last day)
    5 yearly         MonthOfYear + DayOfMonth
    6 yearly, nth    MonthOfYear + WeekOfMonth + DayOfWeek

plus Occurrences (COUNT), Until (UNTIL), FirstDayOfWeek (WKST, 14.1), CalendarType
and IsLeapMonth (14.0; only the Gregorian calendar, 1 or 0 = default, is read here).

Both RRULE forms of "the nth weekday" are read: BYDAY=2TU and BYDAY=TU;BYSETPOS=2 (what
Outlook writes, also for "the last weekday": BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-1). A rule
EAS cannot express (several BYMONTHDAY or BYSETPOS values, BYYEARDAY, BYWEEKNO, BYHOUR
and the like, sub-daily frequencies, several ordinal BYDAYs) is sent as the closest
pattern with ``exact`` False: the caller must then keep the upstream rule when the
phone sends that same pattern back (the phone edited another field, not the rule).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from typing import Any

DAILY, WEEKLY, MONTHLY, MONTHLY_NTH, YEARLY, YEARLY_NTH = 0, 1, 2, 3, 5, 6
DAYS = ("SU", "MO", "TU", "WE", "TH", "FR", "SA")  # bit i of DayOfWeek is DAYS[i]
ANY_DAY = 127  # all seven bits: with WeekOfMonth 5, "the last day of the month"
LAST = 5


class RecurrenceError(ValueError):
    """A Recurrence element that describes no pattern (Status 6 for the item)."""


@dataclass(frozen=True)
class Recurrence:
    type: int
    interval: int = 1
    occurrences: int | None = None
    until: datetime | date | None = None
    day_of_week: int | None = None  # bitmask
    day_of_month: int | None = None
    week_of_month: int | None = None  # 1-5, 5 = last
    month_of_year: int | None = None
    first_day_of_week: int | None = None  # 0 Sunday .. 6 Saturday
    calendar_type: int | None = None
    is_leap_month: bool = False


def _days_mask(days: list[str]) -> int:
    mask = 0
    for day in days:
        mask |= 1 << DAYS.index(day)
    return mask


def _mask_days(mask: int) -> list[str]:
    return [DAYS[i] for i in range(7) if mask & (1 << i)]


def _weekday_of(start: date) -> str:
    return DAYS[(start.weekday() + 1) % 7]


def _list(rule: dict[str, Any], key: str) -> list[Any]:
    value = rule.get(key)
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _split_byday(entry: str) -> tuple[int | None, str]:
    entry = entry.strip().upper()
    day = entry[-2:]
    ordinal = entry[:-2]
    return (int(ordinal) if ordinal not in ("", "+") else None), day


def to_eas(rule: dict[str, Any], start: date | datetime) -> tuple[Recurrence, bool]:
    """The EAS pattern of an RRULE (keys upper case, values as icalendar's vRecur holds them:
    lists, or single values), and whether it is exact. ``start``: the event's DTSTART."""
    freq = str(_list(rule, "FREQ")[0]).upper() if _list(rule, "FREQ") else "DAILY"
    interval = int(_list(rule, "INTERVAL")[0]) if _list(rule, "INTERVAL") else 1
    count = int(_list(rule, "COUNT")[0]) if _list(rule, "COUNT") else None
    until = _list(rule, "UNTIL")[0] if _list(rule, "UNTIL") else None
    wkst = DAYS.index(str(_list(rule, "WKST")[0]).upper()) if _list(rule, "WKST") else None
    byday = [_split_byday(str(d)) for d in _list(rule, "BYDAY")]
    bymonthday = [int(d) for d in _list(rule, "BYMONTHDAY")]
    bymonth = [int(m) for m in _list(rule, "BYMONTH")]
    bysetpos = [int(p) for p in _list(rule, "BYSETPOS")]
    exact = not any(_list(rule, k) for k in ("BYYEARDAY", "BYWEEKNO", "BYHOUR", "BYMINUTE", "BYSECOND"))
    exact = exact and freq in ("DAILY", "WEEKLY", "MONTHLY", "YEARLY")
    base = Recurrence(DAILY, interval=max(interval, 1), occurrences=count, until=until, first_day_of_week=wkst)
    ordinals = {o for o, _ in byday if o is not None}
    days = [d for _, d in byday]

    def nth(week: int | None) -> tuple[int | None, bool]:
        """WeekOfMonth of an ordinal (-1 -> 5), and whether EAS says exactly that."""
        if week is None:
            return None, False
        if week == -1:
            return LAST, True
        if 1 <= week <= 4:
            return week, True
        return (LAST if week < 0 else min(week, LAST)), False

    if freq == "DAILY" or freq not in ("WEEKLY", "MONTHLY", "YEARLY"):
        if days and not ordinals:
            if interval == 1:  # "every weekday": what Outlook writes as a weekly pattern
                return replace(base, type=WEEKLY, day_of_week=_days_mask(days)), exact and not bysetpos
            return replace(base, day_of_week=_days_mask(days)), exact and not bysetpos
        return base, exact and not (days or bymonthday or bymonth or bysetpos)
    if freq == "WEEKLY":
        mask = _days_mask(days) if days else _days_mask([_weekday_of(start)])
        return replace(base, type=WEEKLY, day_of_week=mask), exact and not (ordinals or bymonthday or bysetpos
                                                                           or bymonth)
    month = bymonth[0] if bymonth else start.month
    yearly = freq == "YEARLY"
    if yearly and not bymonth and (byday or bymonthday):
        # Without BYMONTH these repeat in every month of the year (RFC 5545 3.3.10's table).
        if bymonthday and not byday and len(bymonthday) == 1 and interval == 1 and bymonthday[0] > 0:
            return replace(base, type=MONTHLY, day_of_month=bymonthday[0]), exact and not bysetpos
        exact = False
    if not yearly and bymonth:
        exact = False  # a monthly rule kept to some months
    if byday:
        # The nth weekday: BYDAY=2TU, or BYDAY=TU;BYSETPOS=2 (and BYDAY=MO,...,FR;BYSETPOS=-1).
        if ordinals:
            week, fine = nth(byday[0][0])
            fine = fine and len(ordinals) == 1 and len({d for _, d in byday}) == len(byday) and not bysetpos
        else:
            week, fine = nth(bysetpos[0] if bysetpos else 1)
            fine = fine and len(bysetpos) == 1
        mask = _days_mask(days)
        recurrence = replace(base, type=YEARLY_NTH if yearly else MONTHLY_NTH, week_of_month=week,
                             day_of_week=mask, month_of_year=month if yearly else None)
        return recurrence, exact and fine and not bymonthday and len(bymonth) <= 1
    if bymonthday == [-1] and not yearly:
        return replace(base, type=MONTHLY_NTH, week_of_month=LAST, day_of_week=ANY_DAY), exact and not bysetpos
    day = bymonthday[0] if bymonthday else start.day
    fine = len(bymonthday) <= 1 and 1 <= day <= 31 and not bysetpos and len(bymonth) <= 1
    return replace(base, type=YEARLY if yearly else MONTHLY, day_of_month=max(1, min(day, 31)),
                   month_of_year=month if yearly else None), exact and fine


def from_eas(recurrence: Recurrence, start: date | datetime) -> dict[str, Any]:
    """The RRULE of an EAS pattern (keys and values as icalendar's vRecur takes them)."""
    r = recurrence
    if r.interval < 1:
        raise RecurrenceError(f"Recurrence Interval {r.interval}")
    rule: dict[str, Any] = {}
    if r.type == DAILY:
        rule["FREQ"] = ["DAILY"]
        if r.day_of_week:
            rule["BYDAY"] = _mask_days(r.day_of_week)
    elif r.type == WEEKLY:
        rule["FREQ"] = ["WEEKLY"]
        rule["BYDAY"] = _mask_days(r.day_of_week or _days_mask([_weekday_of(start)]))
    elif r.type in (MONTHLY, YEARLY):
        rule["FREQ"] = ["MONTHLY" if r.type == MONTHLY else "YEARLY"]
        day = r.day_of_month or start.day
        if not 1 <= day <= 31:
            raise RecurrenceError(f"Recurrence DayOfMonth {day}")
        rule["BYMONTHDAY"] = [day]
        if r.type == YEARLY:
            rule["BYMONTH"] = [_month(r.month_of_year or start.month)]
    elif r.type in (MONTHLY_NTH, YEARLY_NTH):
        rule["FREQ"] = ["MONTHLY" if r.type == MONTHLY_NTH else "YEARLY"]
        week = r.week_of_month or 1
        if not 1 <= week <= LAST or not r.day_of_week:
            raise RecurrenceError(f"Recurrence WeekOfMonth {week} DayOfWeek {r.day_of_week}")
        ordinal = -1 if week == LAST else week
        days = _mask_days(r.day_of_week)
        if r.day_of_week == ANY_DAY and week == LAST:
            rule["BYMONTHDAY"] = [-1]  # the last day of the month
        elif len(days) == 1:
            rule["BYDAY"] = [f"{ordinal}{days[0]}"]
        else:
            rule["BYDAY"] = days
            rule["BYSETPOS"] = [ordinal]
        if r.type == YEARLY_NTH:
            rule["BYMONTH"] = [_month(r.month_of_year or start.month)]
    else:
        raise RecurrenceError(f"Recurrence Type {r.type}")
    if r.interval > 1:
        rule["INTERVAL"] = [r.interval]
    if r.occurrences is not None:
        if r.occurrences < 1:
            raise RecurrenceError(f"Recurrence Occurrences {r.occurrences}")
        rule["COUNT"] = [r.occurrences]
    elif r.until is not None:
        rule["UNTIL"] = [r.until]
    if r.first_day_of_week is not None:
        if not 0 <= r.first_day_of_week <= 6:
            raise RecurrenceError(f"Recurrence FirstDayOfWeek {r.first_day_of_week}")
        rule["WKST"] = [DAYS[r.first_day_of_week]]
    return rule


def _month(month: int) -> int:
    if not 1 <= month <= 12:
        raise RecurrenceError(f"Recurrence MonthOfYear {month}")
    return month


def same_pattern(a: Recurrence, b: Recurrence) -> bool:
    """The same pattern, whatever optional elements the phone repeats or leaves out."""
    def key(r: Recurrence) -> tuple[Any, ...]:
        until = r.until.astimezone(UTC).replace(second=0) if isinstance(r.until, datetime) and r.until.tzinfo \
            else r.until
        return (r.type, r.interval, r.occurrences, until if r.occurrences is None else None, r.day_of_week,
                r.day_of_month, r.week_of_month, r.month_of_year)
    return key(a) == key(b)

