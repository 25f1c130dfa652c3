"""Fetching from the upstream what rendering an item needs: the message with
the bodies the phone's options ask for, the whole RFC 5322 message when it
wants MIME, and the iCalendar part of an invitation. Used by Sync (Add, Fetch)
and ItemOperations alike."""

from __future__ import annotations

import asyncio

from eas_gateway.items import email
from eas_gateway.items.options import Options
from usm.upstream import Credentials, MailStore, Message, NotFound

PARALLEL_DOWNLOADS = 8
CALENDAR_PART_LIMIT = 1024 * 1024  # an iMIP part larger than this is no invitation the gateway reads


async def calendar_parts(upstream: MailStore, credentials: Credentials,
                         messages: list[Message]) -> dict[str, str]:
    """Message id -> its text/calendar part (iMIP, RFC 6047), for the messages that have one."""
    limit = asyncio.Semaphore(PARALLEL_DOWNLOADS)

    async def one(message: Message) -> tuple[str, str] | None:
        part = next((a for a in message.attachments if a.type.lower() == "text/calendar"
                     and a.size <= CALENDAR_PART_LIMIT), None)
        if part is None:
            return None
        async with limit:
            try:
                data = await upstream.download(credentials, part.blob_id, type="text/calendar", name="invite.ics")
            except NotFound:
                return None
        return message.id, data.decode("utf-8", "replace")

    results = await asyncio.gather(*(one(m) for m in messages))
    return dict(r for r in results if r is not None)


async def mime(upstream: MailStore, credentials: Credentials, messages: list[Message]) -> dict[str, bytes]:
    """Message id -> its MIME bytes, for the messages that still exist."""
    limit = asyncio.Semaphore(PARALLEL_DOWNLOADS)

    async def one(message: Message) -> tuple[str, bytes] | None:
        async with limit:
            try:
                data = await upstream.download(credentials, message.blob_id, type="message/rfc822",
                                               name="message.eml")
            except NotFound:
                return None
        return message.id, data

    results = await asyncio.gather(*(one(m) for m in messages))
    return dict(r for r in results if r is not None)


async def for_display(upstream: MailStore, credentials: Credentials, ids: list[str],
                      options: Options) -> tuple[dict[str, Message], dict[str, bytes]]:
    """(id -> message with the bodies ``options`` ask for, id -> MIME if they ask for MIME),
    for the ids that still exist."""
    if not ids:
        return {}, {}
    found = await upstream.messages(credentials, ids, email.body_request(options))
    if not email.wants_mime(options):
        return found, {}
    return found, await mime(upstream, credentials, list(found.values()))
