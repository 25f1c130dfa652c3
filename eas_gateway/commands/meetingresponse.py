"""MeetingResponse (MS-ASCMD 2.2.1.11): the user accepts, tentatively accepts or declines
a meeting, named by an invitation in a mail folder or by the event in a calendar.

The answer goes into the user's calendar through CalDAV as their PARTSTAT
(items.meeting.respond): an accepted or tentative meeting is created in the default
calendar (or updated where it is: a server such as Cyrus delivers invitations of its
own users into their calendar), a declined one is removed. Who mails the organizer:
below EAS 16.0 the phone (it sends the reply with SendMail), so the stored copy's
ORGANIZER says SCHEDULE-AGENT=CLIENT and a removal carries ``Schedule-Reply: F``; from
16.0 the CalDAV server's scheduling (RFC 6638) when the phone asks with SendResponse;
a new time proposed with it goes to the organizer as an iMIP COUNTER, sent by the
gateway once (CalDAV scheduling has no counter-proposals).
A retried request finds the answer stored and changes nothing, so the server mails
nothing twice.

At 16.x an InstanceId answers one occurrence of a series: its override takes the
PARTSTAT (a declined occurrence stays, declined).

Per Request, Status (MS-ASCMD 2.2.3.177.8): 1 done, 2 no such meeting (or not one the
user is invited to), 3 the upstream refused. CalendarId is given when this device
already has the event in its calendar folder.
"""

from __future__ import annotations

import hashlib
import logging
from datetime import UTC, datetime

from lxml import etree

from eas_gateway import classes
from eas_gateway.commands import sendmail
from eas_gateway.context import Context
from eas_gateway.errors import CommandStatus
from eas_gateway.items import fetch, meeting
from eas_gateway.items.calendar import CalendarError
from eas_gateway.xml import E, child_text
from usm import folders, ids, sync_state
from usm.upstream import BodyRequest, NotFound, PreconditionFailed, WriteRefused
from usm.upstream.dav_store import CALENDAR, DavObject

log = logging.getLogger(__name__)

MR = "{MeetingResponse:}"
OK, INVALID, MAILBOX_ERROR = 1, 2, 3
MAX_REQUESTS = 100
INVALID_XML = 103
CONTENT_TYPE = "text/calendar; charset=utf-8"


class _Refused(Exception):
    """A Request answered with a Status other than 1."""

    def __init__(self, status: int, why: str) -> None:
        super().__init__(why)
        self.status = status


async def handle(ctx: Context, tree: etree._Element | None) -> etree._Element:
    if tree is None or tree.tag != MR + "MeetingResponse":
        raise CommandStatus(INVALID_XML, "MeetingResponse request without a MeetingResponse element")
    requests = tree.findall(MR + "Request")
    if not requests or len(requests) > MAX_REQUESTS:
        raise CommandStatus(INVALID_XML, f"MeetingResponse with {len(requests)} Request elements")
    root = E(None, MR + "MeetingResponse")
    for request in requests:
        result = E(root, MR + "Result")
        request_id = child_text(request, MR + "RequestId")
        if request_id is not None:
            E(result, MR + "RequestId", request_id)
        try:
            calendar_id = await _respond(ctx, request)
        except _Refused as exc:
            log.info("MeetingResponse: device %s, request %r: %s", ctx.line.device_id, request_id, exc)
            E(result, MR + "Status", exc.status)
            continue
        E(result, MR + "Status", OK)
        if calendar_id is not None:
            E(result, MR + "CalendarId", calendar_id)
    return root


async def _respond(ctx: Context, request: etree._Element) -> str | None:
    response = ids.number(child_text(request, MR + "UserResponse"))
    if response not in meeting.PARTSTAT:
        raise _Refused(INVALID, f"UserResponse {child_text(request, MR + 'UserResponse')!r}")
    if request.find("{Search:}LongId") is not None:
        raise _Refused(INVALID, "a LongId (a Search result) names no item this gateway keeps")
    collection = ids.number(child_text(request, MR + "CollectionId"))
    request_id = child_text(request, MR + "RequestId") or ""
    number = sync_state.item_number(collection, request_id) if collection is not None else None
    if collection is None or number is None:
        raise _Refused(INVALID, f"no item {request_id!r} in collection {collection}")
    async with ctx.db.acquire() as conn:
        folder_id = (await folders.upstream_ids(conn, ctx.user, [collection])).get(collection)
        item = await sync_state.item(conn, ctx.user, ctx.line.device_id, collection, number)
    cls = classes.of_folder(folder_id) if folder_id else None
    if item is None or cls is None or cls.kind not in ("mail", CALENDAR):
        raise _Refused(INVALID, f"{request_id!r} is no invitation or event of this device")
    dav = ctx.upstream.dav
    if dav is None:
        raise _Refused(MAILBOX_ERROR, "the gateway has no calendar upstream")
    calendars = [c.path for c in await ctx.upstream.collections(ctx.credentials) if c.kind == CALENDAR and c.writable]
    if cls.kind == "mail":
        invitation = await _invitation(ctx, item)
        existing = await dav.find_uid(ctx.credentials, calendars, invitation.uid)
        text = existing.data if existing is not None else invitation.text
    else:
        existing = (await dav.multiget(ctx.credentials, ctx.upstream.dav_path(folder_id or ""), CALENDAR,
                                       [item])).get(item)
        if existing is None:
            raise _Refused(INVALID, f"the event {item} is gone")
        text = existing.data
    instance = _instance(child_text(request, MR + "InstanceId"))
    send = float(ctx.version) >= 16.0 and request.find(MR + "SendResponse") is not None
    proposed = _proposed(request.find(MR + "SendResponse"))
    addresses = frozenset({ctx.user.lower()})
    try:
        answered, uid = meeting.respond(text, addresses, response, server_replies=send, proposed=proposed,
                                        instance=instance)
    except (meeting.MeetingError, CalendarError) as exc:
        raise _Refused(INVALID, str(exc)) from exc
    if send and proposed is not None:
        await _counter(ctx, text, uid, proposed)
    try:
        # A whole meeting declined goes; one occurrence declined stays in the series, declined.
        path = await _store(ctx, calendars, existing, answered, uid,
                            remove=response == meeting.DECLINE and instance is None, send=send)
    except (WriteRefused, PreconditionFailed, NotFound) as exc:
        raise _Refused(MAILBOX_ERROR, f"the upstream refused the answer: {exc}") from exc
    return await _calendar_id(ctx, path) if path else None


async def _invitation(ctx: Context, message_id: str) -> meeting.Invitation:
    found = await ctx.upstream.mailstore.messages(ctx.credentials, [message_id], BodyRequest())
    message = found.get(message_id)
    if message is None:
        raise _Refused(INVALID, f"the message {message_id} is gone")
    parts = await fetch.calendar_parts(ctx.upstream.mailstore, ctx.credentials, [message])
    try:
        invitation = meeting.read(parts[message_id]) if message_id in parts else None
    except meeting.MeetingError as exc:
        raise _Refused(INVALID, str(exc)) from exc
    if invitation is None or invitation.method != "REQUEST":
        raise _Refused(INVALID, f"the message {message_id} is no meeting request")
    return invitation


async def _counter(ctx: Context, text: str, uid: str, proposed: tuple[datetime, datetime]) -> None:
    """A new time the user proposes (16.x SendResponse with ProposedStartTime/EndTime) goes to
    the organizer as an iMIP COUNTER, sent once: the same proposal again is the same ClientId."""
    try:
        found = meeting.counter(text, ctx.user, proposed, now=datetime.now(UTC))
    except (ValueError, CalendarError) as exc:
        raise _Refused(INVALID, f"no counter-proposal can be made: {exc}") from exc
    if found is None:
        return
    raw, organizer = found
    client_id = "counter:" + hashlib.sha256(f"{uid}\0{proposed[0]:%s}\0{proposed[1]:%s}".encode()).hexdigest()[:40]
    try:
        await sendmail.send(ctx, sendmail.Request("SendMail", raw, client_id, save_in_sent=True))
    except CommandStatus as exc:
        raise _Refused(MAILBOX_ERROR, f"the counter-proposal to {organizer} was refused: {exc}") from exc
    log.info("MeetingResponse: device %s proposed a new time for %s to %s", ctx.line.device_id, uid, organizer)


def _instance(text: str | None) -> datetime | None:
    """MeetingResponse InstanceId (MS-ASCMD 2.2.3.88.2): the occurrence's start, a dateTime."""
    if text is None:
        return None
    for layout in ("%Y-%m-%dT%H:%M:%S.%fZ", "%Y-%m-%dT%H:%M:%SZ", "%Y%m%dT%H%M%SZ"):
        try:
            return datetime.strptime(text.strip(), layout).replace(tzinfo=UTC)
        except ValueError:
            continue
    raise _Refused(INVALID, f"InstanceId {text!r} is no date-time")


def _proposed(send: etree._Element | None) -> tuple[datetime, datetime] | None:
    if send is None:
        return None
    start, end = child_text(send, MR + "ProposedStartTime"), child_text(send, MR + "ProposedEndTime")
    if not start or not end:
        return None
    try:
        begin, finish = (datetime.strptime(t.strip(), "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC) for t in (start, end))
    except ValueError as exc:
        raise _Refused(INVALID, f"a proposed time is no date-time: {exc}") from exc
    return begin, finish


async def _store(ctx: Context, calendars: list[str], existing: DavObject | None, text: str, uid: str, *,
                 remove: bool, send: bool) -> str | None:
    """Write the answer; the path of the event in the calendar (None: declined, removed)."""
    dav = ctx.upstream.dav
    assert dav is not None
    if remove:
        if existing is None and send:
            # An invitation not in the calendar: the server mails the decline from the answer
            # stored for a moment; the declined meeting does not stay in the calendar.
            if not calendars:
                raise _Refused(MAILBOX_ERROR, "the user has no calendar to answer from")
            path = calendars[0] + _object_name(uid)
            await dav.create(ctx.credentials, path, text, CONTENT_TYPE)
            await dav.delete(ctx.credentials, path, schedule_reply=False)
        elif existing is not None:
            if send:
                existing_etag = await dav.replace(ctx.credentials, existing.path, text, CONTENT_TYPE, existing.etag)
                await dav.delete(ctx.credentials, existing.path, existing_etag, schedule_reply=False)
            else:
                await dav.delete(ctx.credentials, existing.path, existing.etag, schedule_reply=False)
        return None
    if existing is not None:
        if existing.data != text:
            await dav.replace(ctx.credentials, existing.path, text, CONTENT_TYPE, existing.etag)
        return existing.path
    default = await _default_calendar(ctx)
    path = default + _object_name(uid)
    await dav.create(ctx.credentials, path, text, CONTENT_TYPE)
    return path


async def _default_calendar(ctx: Context) -> str:
    found = next((f for f in await ctx.upstream.folders(ctx.credentials) if f.kind == CALENDAR and f.default), None)
    if found is None:
        raise _Refused(MAILBOX_ERROR, "the user has no default calendar")
    return ctx.upstream.dav_path(found.id)


def _object_name(uid: str) -> str:
    """The name of an answered meeting's object: from its UID, so a retry finds it."""
    return "eas-meeting-" + hashlib.sha256(uid.encode()).hexdigest()[:32] + ".ics"


async def _calendar_id(ctx: Context, path: str) -> str | None:
    """The ServerId this device knows the event by, if it has it already."""
    folder = next((f for f in await ctx.upstream.folders(ctx.credentials)
                   if f.kind == CALENDAR and path.startswith(ctx.upstream.dav_path(f.id))), None)
    if folder is None:
        return None
    async with ctx.db.acquire() as conn:
        collection = (await folders.server_ids(conn, ctx.user, [folder.id])).get(folder.id)
        if collection is None:
            return None
        known = await sync_state.items_of(conn, ctx.user, ctx.line.device_id, collection, [path])
    return sync_state.server_id(collection, known[path][0]) if path in known else None
