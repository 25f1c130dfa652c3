"""The Calendar class (MS-ASCAL): VEVENTs in CalDAV calendars.

Everything a DAV class does is classes.dav.DavClass's; this says how an event is
shown to a phone (items.calendar: UTC times and the blob of the event's zone, all-day
events by protocol version, recurrence, exceptions, attendees) and how the phone's
fields go into the stored VCALENDAR (items.calendar_merge: merged, never rebuilt; an
approximated RRULE kept; who mails the attendees decided by the protocol version).

The users' zone (``EAS_TIME_ZONE``) is the zone all-day events are shown in below
16.0 and the zone preferred when a phone's blob fits several.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from lxml import etree

from eas_gateway.classes.base import A
from eas_gateway.classes.dav import DavClass
from eas_gateway.items import calendar, calendar_merge
from eas_gateway.items.options import PLAIN, Options
from eas_gateway.xml import E
from usm.upstream.dav_store import CALENDAR, DavObject

if TYPE_CHECKING:
    from eas_gateway.context import Context


@cache
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def shown(ctx: Context, options: Options) -> calendar.Shown:
    """How this phone shows events."""
    plain = next((b for b in options.body if b.type == PLAIN), None)
    return calendar.Shown(float(ctx.version), _zone(ctx.settings.time_zone), frozenset({ctx.user.lower()}),
                          plain.truncation if plain else None)


class CalendarClass(DavClass):
    kind = CALENDAR
    name = "Calendar"
    content_type = "text/calendar; charset=utf-8"
    extension = "ics"
    conversion_errors = (calendar.CalendarError, calendar_merge.EventError)

    def to_phone(self, ctx: Context, text: str, options: Options, path: str | None = None) -> etree._Element:
        data = E(None, A + "ApplicationData")
        calendar.application_data(data, text, shown(ctx, options), path=path)
        return data

    def _data(self, ctx: Context, obj: DavObject, options: Options) -> etree._Element:
        return self.to_phone(ctx, obj.data, options, obj.path)  # attachments name their object

    def from_phone(self, ctx: Context, stored: str | None, data: etree._Element | None, options: Options, *,
                   uid: str) -> str:
        return calendar_merge.merge(stored, calendar_merge.read_phone(data), shown(ctx, options), uid=uid,
                                    now=datetime.now(UTC))

    def from_phone_instance(self, ctx: Context, stored: str, data: etree._Element | None, options: Options,
                            instance: str, *, deleted: bool) -> str:
        """16.0: a Change or Delete naming one occurrence (InstanceId, its original start)
        is an Exception of the series: an override, or an EXDATE."""
        return calendar_merge.merge_instance(stored, None if deleted else calendar_merge.read_phone(data),
                                             shown(ctx, options), instance=instance, now=datetime.now(UTC))
