"""Fetching from the upstream what rendering an item needs beyond its JMAP
properties: the whole RFC 5322 message, for MIME bodies."""

from __future__ import annotations

import asyncio

from usm.upstream import Credentials, Message, NotFound, Upstream

PARALLEL_DOWNLOADS = 8


async def mime(upstream: Upstream, credentials: Credentials, messages: list[Message]) -> dict[str, bytes]:
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
