"""Wake-ups from IMAP IDLE (RFC 2177), for an upstream whose JMAP has no push (Debian's
Cyrus 3.6 answers the EventSource with 204): the user's INBOX is watched on the upstream's
IMAP service, and every untagged EXISTS, EXPUNGE or FETCH it sends while idling is a change
the push hub then reads the JMAP state for. IDLE is renewed before the 29 minutes after
which servers may drop it. One connection per user with held requests on this node (the
hub's watcher), at most ``max_connections`` of them: beyond that the hub polls.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import aioimaplib

from usm.upstream import AuthenticationFailed, Credentials, UpstreamError, UpstreamUnavailable

log = logging.getLogger(__name__)

RENEW_SECONDS = 25 * 60  # below RFC 2177's 29 minutes
CHANGES = (b"EXISTS", b"EXPUNGE", b"FETCH")


class ImapIdle:
    def __init__(self, url: str, *, max_connections: int = 5000, renew_seconds: float = RENEW_SECONDS,
                 timeout: float = 10.0) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("imap", "imaps") or not parts.hostname:
            raise ValueError(f"IMAP IDLE URL {url!r} is not imap://host[:port] or imaps://host[:port]")
        self.host = parts.hostname
        self.tls = parts.scheme == "imaps"
        self.port = parts.port or (993 if self.tls else 143)
        self.max_connections = max_connections
        self.renew_seconds = renew_seconds
        self.timeout = timeout
        self.open = 0

    async def events(self, credentials: Credentials) -> AsyncIterator[None]:
        """Yield once when idling has begun, then once per change of the user's INBOX, until the connection breaks
        (UpstreamUnavailable) or the caller stops iterating. UpstreamUnavailable at once when
        this node already holds ``max_connections``; AuthenticationFailed for a refused login."""
        if credentials.auth is not None:
            raise AuthenticationFailed(f"IMAP IDLE: {credentials.user} signed in with OAuth: no password to log in")
        if self.open >= self.max_connections:
            raise UpstreamUnavailable(f"IMAP IDLE: {self.open} connections open, the most allowed")
        self.open += 1
        lost = asyncio.Event()
        client = aioimaplib.IMAP4(self.host, self.port, timeout=self.timeout, conn_lost_cb=lambda _: lost.set(),
                                  ssl_context=ssl.create_default_context() if self.tls else None)
        try:
            await client.wait_hello_from_server()
            if (await client.login(credentials.user, credentials.password)).result != "OK":
                raise AuthenticationFailed(f"IMAP upstream refused the credentials of {credentials.user}")
            if (await client.select("INBOX")).result != "OK":
                raise UpstreamError(f"IMAP upstream: {credentials.user} has no INBOX to watch")
            first = True
            while True:
                idle = await client.idle_start(timeout=self.renew_seconds)
                if first:  # a change between the caller's last look and now was told nobody
                    first = False
                    yield None
                while client.has_pending_idle():
                    push = await self._next(client, lost)
                    if push == aioimaplib.STOP_WAIT_SERVER_PUSH:
                        break  # time to renew
                    if any(word in line for line in push for word in CHANGES if isinstance(line, bytes)):
                        yield None
                client.idle_done()
                await asyncio.wait_for(idle, self.timeout)
        except (OSError, TimeoutError, aioimaplib.AioImapException) as exc:
            raise UpstreamUnavailable(f"IMAP IDLE of {credentials.user} at {self.host}:{self.port}: {exc!r}") from exc
        finally:
            self.open -= 1
            try:
                if not lost.is_set():
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(client.logout(), 2)
            finally:  # cancelled (the watcher stops) or not, the socket is closed now
                transport = getattr(getattr(client, "protocol", None), "transport", None)
                if transport is not None:
                    transport.close()

    async def _next(self, client: aioimaplib.IMAP4, lost: asyncio.Event) -> list[bytes]:
        """The next untagged lines while idling; UpstreamUnavailable when the connection is gone."""
        push = asyncio.ensure_future(client.wait_server_push(timeout=self.renew_seconds + 60))
        gone = asyncio.ensure_future(lost.wait())
        try:
            await asyncio.wait({push, gone}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            gone.cancel()
        if not push.done():
            push.cancel()
            raise UpstreamUnavailable("the IMAP connection closed")
        result = push.result()
        return list(result) if isinstance(result, list) else [result]
