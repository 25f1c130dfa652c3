"""The EAS time zone blob (MS-ASDTYPE 2.7.6 TimeZone: a Windows TIME_ZONE_INFORMATION) <-> IANA zones.

172 bytes, little-endian, base64 on the wire (Calendar:Timezone, Tasks don't use it):

    LONG       Bias                  minutes; UTC = local standard time + Bias
    WCHAR[32]  StandardName          UTF-16LE, NUL-padded (Windows puts the zone's name here)
    SYSTEMTIME StandardDate          when daylight time ends (in local daylight time)
    LONG       StandardBias          added to Bias in standard time (0 in practice)
    WCHAR[32]  DaylightName
    SYSTEMTIME DaylightDate          when daylight time starts (in local standard time)
    LONG       DaylightBias          added to Bias in daylight time (-60; -30 for Lord Howe)

A SYSTEMTIME is eight WORDs: year, month, day of week (0 = Sunday), day, hour,
minute, second, milliseconds. With year 0 it is a rule: the ``day``-th such
weekday of the month, 5 meaning the last. Month 0 in both: no daylight time.

To the phone (``for_zone``): the rules of the event's own year for its IANA zone,
read from zoneinfo's transitions in that year; a year whose transitions are no
such pair (a zone changing its offset for good, São Paulo's last DST in 2019) gets
the fixed offset in force at the event. From the phone (``to_zone``): the IANA zone
whose transitions in the event's year are the blob's — the user's own zone first,
then the Windows name in the blob (CLDR's mapping, as icalendar ships it), then
every zone; a fixed Etc/GMT offset when nothing matches and the blob has no
daylight time; UTC only as the last resort.
"""

from __future__ import annotations

import base64
import binascii
import calendar
import functools
import logging
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path
from zoneinfo import TZPATH, ZoneInfo, ZoneInfoNotFoundError, available_timezones

from icalendar.timezone.windows_to_olson import WINDOWS_TO_OLSON

log = logging.getLogger(__name__)

SIZE = 172
_LAYOUT = struct.Struct("<l64s8Hl64s8Hl")
assert _LAYOUT.size == SIZE


class BlobError(ValueError):
    """Not a TIME_ZONE_INFORMATION the gateway can read."""


@dataclass(frozen=True)
class Rule:
    """A SYSTEMTIME as a transition rule: the ``week``-th ``weekday`` (0 Sunday) of
    ``month`` at ``hour``:``minute`` local time; week 5 is the last. ``year`` non-zero:
    the absolute date ``year``-``month``-``week`` instead (Windows allows it)."""

    month: int
    weekday: int
    week: int
    hour: int
    minute: int
    year: int = 0

    def local(self, year: int) -> datetime:
        """The local wall time of this transition in ``year``."""
        if self.year:
            return datetime(self.year, self.month, self.week, self.hour, self.minute)
        days = calendar.monthrange(year, self.month)[1]
        first = datetime(year, self.month, 1)
        # Python's weekday(): Monday 0; SYSTEMTIME's: Sunday 0.
        offset = (self.weekday - (first.weekday() + 1) % 7) % 7
        day = 1 + offset + 7 * (self.week - 1)
        while day > days:  # week 5 (or a 5th that does not exist): the last one
            day -= 7
        return first.replace(day=day, hour=self.hour, minute=self.minute)


@dataclass(frozen=True)
class Blob:
    bias: int  # minutes west of UTC in standard time
    standard: Rule | None = None
    daylight: Rule | None = None
    daylight_bias: int = -60
    standard_bias: int = 0
    standard_name: str = ""
    daylight_name: str = ""

    @property
    def standard_offset(self) -> timedelta:
        return timedelta(minutes=-(self.bias + self.standard_bias))

    @property
    def daylight_offset(self) -> timedelta:
        return timedelta(minutes=-(self.bias + self.daylight_bias))

    @property
    def has_daylight(self) -> bool:
        return self.standard is not None and self.daylight is not None

    def transitions(self, year: int) -> list[tuple[datetime, timedelta]]:
        """(UTC instant, offset from then on) of the year's transitions, in order."""
        if not self.has_daylight:
            return []
        assert self.standard is not None and self.daylight is not None
        to_daylight = self.daylight.local(year) - self.standard_offset
        to_standard = self.standard.local(year) - self.daylight_offset
        found = [(to_daylight.replace(tzinfo=UTC), self.daylight_offset),
                 (to_standard.replace(tzinfo=UTC), self.standard_offset)]
        return sorted(found)

    def offset_at(self, moment: datetime) -> timedelta:
        """The UTC offset the blob gives at an aware instant."""
        if not self.has_daylight:
            return self.standard_offset
        moment = moment.astimezone(UTC)
        changes = self.transitions(moment.year)
        # Before the year's first transition, the offset the year's last one set is in force.
        current = changes[-1][1]
        for instant, offset in changes:
            if moment >= instant:
                current = offset
        return current

    def to_bytes(self) -> bytes:
        return _LAYOUT.pack(self.bias, _name(self.standard_name), *_systemtime(self.standard), self.standard_bias,
                            _name(self.daylight_name), *_systemtime(self.daylight), self.daylight_bias)

    def to_base64(self) -> str:
        return base64.b64encode(self.to_bytes()).decode()

    @classmethod
    def from_bytes(cls, data: bytes) -> Blob:
        if len(data) != SIZE:
            raise BlobError(f"a time zone blob is {SIZE} bytes, not {len(data)}")
        fields = _LAYOUT.unpack(data)
        bias, std_name, std, std_bias = fields[0], fields[1], fields[2:10], fields[10]
        dst_name, dst, dst_bias = fields[11], fields[12:20], fields[20]
        standard, daylight = _rule(std), _rule(dst)
        if (standard is None) != (daylight is None):
            standard = daylight = None  # one transition alone is no rule: no daylight time
        if not -24 * 60 <= bias <= 24 * 60 or not -24 * 60 <= dst_bias <= 24 * 60 or abs(std_bias) > 24 * 60:
            raise BlobError(f"time zone blob with bias {bias}/{std_bias}/{dst_bias} minutes")
        return cls(bias, standard, daylight, dst_bias, std_bias, _text(std_name), _text(dst_name))

    @classmethod
    def from_base64(cls, text: str) -> Blob:
        try:
            return cls.from_bytes(base64.b64decode(text.strip(), validate=True))
        except (binascii.Error, ValueError) as exc:
            if isinstance(exc, BlobError):
                raise
            raise BlobError(f"time zone blob is not base64: {exc}") from exc


def _name(text: str) -> bytes:
    return text.encode("utf-16-le")[:62].ljust(64, b"\0")


def _text(raw: bytes) -> str:
    return raw.decode("utf-16-le", "replace").split("\0", 1)[0]


def _systemtime(rule: Rule | None) -> tuple[int, ...]:
    if rule is None:
        return (0,) * 8
    return (rule.year, rule.month, rule.weekday, rule.week, rule.hour, rule.minute, 0, 0)


def _rule(words: tuple[int, ...]) -> Rule | None:
    year, month, weekday, day, hour, minute = words[:6]
    if month == 0:
        return None
    if not 1 <= month <= 12 or weekday > 6 or not 1 <= day <= (31 if year else 5) or hour > 23 or minute > 59:
        raise BlobError(f"time zone blob with a transition {words}")
    return Rule(month, weekday, day, hour, minute, year)


# -- IANA zone -> blob ---------------------------------------------------------------


def zone_transitions(zone: tzinfo, year: int) -> list[tuple[datetime, timedelta, timedelta]]:
    """(UTC instant, offset before, offset after) of each change of a zone's UTC offset in
    ``year``, to the minute: daily samples, then bisection of each day that changed.
    Remembered per (zone, year): a calendar shows thousands of events in a few zones."""
    return list(_transitions(zone, year))


@functools.lru_cache(maxsize=4096)
def _transitions(zone: tzinfo, year: int) -> tuple[tuple[datetime, timedelta, timedelta], ...]:
    start = datetime(year, 1, 1, tzinfo=UTC)
    out: list[tuple[datetime, timedelta, timedelta]] = []
    previous = start.astimezone(zone).utcoffset()
    for day in range(1, (366 if calendar.isleap(year) else 365) + 1):
        moment = start + timedelta(days=day)
        offset = moment.astimezone(zone).utcoffset()
        if offset == previous:
            continue
        low, high = 0, 24 * 60  # minutes after the previous sample: still ``previous`` at low, not at high
        base = moment - timedelta(days=1)
        while high - low > 1:
            middle = (low + high) // 2
            if (base + timedelta(minutes=middle)).astimezone(zone).utcoffset() == previous:
                low = middle
            else:
                high = middle
        instant = base + timedelta(minutes=high)
        if instant.year == year and previous is not None and offset is not None:
            out.append((instant, previous, offset))
        previous = offset
    return tuple(out)


def _as_rule(local: datetime) -> Rule:
    days = calendar.monthrange(local.year, local.month)[1]
    week = 5 if local.day > days - 7 else (local.day - 1) // 7 + 1
    return Rule(local.month, (local.weekday() + 1) % 7, week, local.hour, local.minute)


def for_zone(zone: str | tzinfo, at: datetime) -> Blob:
    """The blob of an IANA zone (a name or a tzinfo) with the rules of ``at``'s year."""
    tz = ZoneInfo(zone) if isinstance(zone, str) else zone
    name = zone if isinstance(zone, str) else str(getattr(zone, "key", "") or "")
    windows = _WINDOWS_NAMES.get(name, "")
    year = at.year
    changes = zone_transitions(tz, year)
    # A yearly rule holds a pair of changes there and back, each at a local time of the year
    # itself (Bangladesh left its 2009 daylight time at 2010-01-01 00:00 local: no rule of 2009).
    if len(changes) == 2 and changes[0][1] == changes[1][2] and changes[0][2] == changes[1][1] and \
            all((instant + before).year == year for instant, before, _ in changes):
        (first, a, b), (second, _, _) = changes
        standard, daylight = (a, b) if b > a else (b, a)
        to_daylight, to_standard = (first, second) if b > a else (second, first)
        bias = -_minutes(standard)
        return Blob(bias, standard=_as_rule((to_standard + daylight).replace(tzinfo=None)),
                    daylight=_as_rule((to_daylight + standard).replace(tzinfo=None)),
                    daylight_bias=-_minutes(daylight) - bias, standard_name=windows, daylight_name=windows)
    if at.tzinfo is None:
        at = at.replace(tzinfo=tz)
    offset = at.astimezone(tz).utcoffset() or timedelta(0)
    return Blob(-_minutes(offset), standard_name=windows, daylight_name=windows)


def _minutes(delta: timedelta) -> int:
    return round(delta.total_seconds() / 60)


_GOLDEN = frozenset(WINDOWS_TO_OLSON.values())
_WINDOWS_NAMES: dict[str, str] = {}
for _windows, _iana in WINDOWS_TO_OLSON.items():
    _WINDOWS_NAMES.setdefault(_iana, _windows)


# -- blob -> IANA zone -------------------------------------------------------------


@functools.cache
def _aliases() -> dict[str, str]:
    """Link names of the tz database (Asia/Calcutta -> Asia/Kolkata), from the system's
    tzdata.zi; empty where there is none (then every name counts as a zone)."""
    for root in TZPATH:
        path = Path(root) / "tzdata.zi"
        if path.exists():
            links = (line.split() for line in path.read_text().splitlines() if line.startswith("L "))
            return {parts[2]: parts[1] for parts in links if len(parts) == 3}
    return {}



def _signature(changes: Iterable[tuple[datetime, timedelta]], standard: timedelta) -> tuple[object, ...]:
    return (standard, tuple((instant.replace(second=0, microsecond=0), offset) for instant, offset in changes))


def _blob_signature(blob: Blob, year: int) -> tuple[object, ...]:
    return _signature(blob.transitions(year), blob.standard_offset)


def _zone_signature(zone: tzinfo, year: int) -> tuple[object, ...]:
    changes = zone_transitions(zone, year)
    if not changes:
        offset = datetime(year, 7, 1, tzinfo=UTC).astimezone(zone).utcoffset() or timedelta(0)
        return _signature([], offset)
    standard = min(o for _, before, after in changes for o in (before, after))
    return _signature(((instant, after) for instant, _, after in changes), standard)


@functools.lru_cache(maxsize=8)
def _index(year: int) -> dict[tuple[object, ...], list[str]]:
    """Every zoneinfo zone by its signature in ``year`` (built once per year)."""
    out: dict[tuple[object, ...], list[str]] = {}
    for name in sorted(available_timezones()):
        if name.startswith(("posix/", "right/")) or name in ("Factory", "localtime"):
            continue
        try:
            out.setdefault(_zone_signature(ZoneInfo(name), year), []).append(name)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            continue
    return out


def to_zone(blob: Blob, year: int, *, prefer: Iterable[str] = ()) -> tzinfo:
    """The IANA zone (else a fixed offset, else UTC) that keeps the blob's time in ``year``."""
    wanted = _blob_signature(blob, year)
    candidates = [*prefer]
    for name in (blob.standard_name, blob.daylight_name):
        if name in WINDOWS_TO_OLSON:
            candidates.append(WINDOWS_TO_OLSON[name])
    for name in candidates:
        try:
            zone = ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            continue
        if _zone_signature(zone, year) == wanted:
            return zone
    matches = _index(year).get(wanted)
    if matches:
        # Prefer the zone CLDR names for a Windows zone (America/New_York over America/Detroit),
        # then Region/City names over Etc/ and legacy aliases.
        aliases = _aliases()
        golden = {aliases.get(g, g) for g in _GOLDEN}  # CLDR still says Asia/Calcutta for Asia/Kolkata
        best = sorted(matches, key=lambda n: (n in aliases, n not in golden, n.startswith("Etc/") or "/" not in n,
                                              n.count("/") != 1, n))
        return ZoneInfo(best[0])
    if not blob.has_daylight:
        minutes = _minutes(blob.standard_offset)
        if minutes % 60 == 0 and abs(minutes) <= 14 * 60:
            # POSIX-style names: Etc/GMT+5 is five hours *west*.
            hours = -minutes // 60
            return ZoneInfo("Etc/GMT" if hours == 0 else f"Etc/GMT{hours:+d}")
    log.warning("no time zone matches the blob %r in %d; using UTC", blob, year)
    return UTC
