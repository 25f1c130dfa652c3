"""Free/busy of the people a phone resolves (ResolveRecipients Availability, MS-ASCMD 2.2.3.16).

The user's own address: the events of their own calendars over the span (a calendar-query,
any CalDAV server). Anyone else: the server's scheduling (RFC 6638: a VFREEBUSY query to the
user's schedule outbox), which knows the server's users and nobody outside; a server without
scheduling (Radicale) has free/busy for nobody but the user. Each address gets its
MergedFreeBusy digits (items.freebusy) or the Availability Status saying why there are none.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from eas_gateway.items import freebusy
from usm.upstream import UpstreamError, UpstreamUnavailable
from usm.upstream.dav_store import CALENDAR, DavNotOffered

if TYPE_CHECKING:
    from eas_gateway.context import Context

log = logging.getLogger(__name__)

# MS-ASCMD 2.2.3.177.12 Status of an Availability element.
OK = 1
TRANSIENT = 162  # the free/busy could not be had now: the client may ask again
NOT_AVAILABLE = 163  # there is no free/busy to be had for this recipient


async def merged(ctx: Context, addresses: list[str], start: datetime, end: datetime) -> dict[str, str | int]:
    """address -> its MergedFreeBusy digits, or the Availability Status instead."""
    own = {ctx.user.lower(), ctx.credentials.user.lower()}
    mine = [a for a in addresses if a.lower() in own]
    others = [a for a in addresses if a.lower() not in own]
    out: dict[str, str | int] = {}
    if mine:
        digits = await _own(ctx, start, end)
        out.update({a: digits for a in mine})
    if others:
        out.update(await _scheduling(ctx, others, start, end))
    return out


async def _own(ctx: Context, start: datetime, end: datetime) -> str | int:
    dav = ctx.upstream.dav
    if dav is None:
        return NOT_AVAILABLE
    try:
        paths = dict.fromkeys(c.path for c in await dav.collections(ctx.credentials, frozenset({CALENDAR}))
                              if c.kind == CALENDAR)
        texts = [o.data for path in paths for o in await dav.events_between(ctx.credentials, path, start, end)]
    except DavNotOffered:
        return NOT_AVAILABLE
    except UpstreamUnavailable as exc:
        log.warning("availability: %s's calendars unreadable for now: %s", ctx.user, exc)
        return TRANSIENT
    except UpstreamError as exc:
        log.warning("availability: %s's calendars unreadable: %s", ctx.user, exc)
        return NOT_AVAILABLE
    busy = freebusy.from_events(texts, start, end, ZoneInfo(ctx.settings.time_zone))
    return freebusy.merged(start, end, busy)


async def _scheduling(ctx: Context, addresses: list[str], start: datetime, end: datetime) -> dict[str, str | int]:
    dav = ctx.upstream.dav
    if dav is None:
        return {a: NOT_AVAILABLE for a in addresses}
    try:
        found = await dav.free_busy(ctx.credentials, ctx.user, addresses, start, end)
    except DavNotOffered:
        return {a: NOT_AVAILABLE for a in addresses}
    except UpstreamUnavailable as exc:
        log.warning("availability: free/busy query of %s failed for now: %s", ctx.user, exc)
        return {a: TRANSIENT for a in addresses}
    except UpstreamError as exc:
        log.warning("availability: free/busy query of %s refused: %s", ctx.user, exc)
        return {a: NOT_AVAILABLE for a in addresses}
    out: dict[str, str | int] = {}
    for address in addresses:
        periods = found.get(address)
        out[address] = NOT_AVAILABLE if periods is None else \
            freebusy.merged(start, end, freebusy.from_fbtypes(periods))
    return out
