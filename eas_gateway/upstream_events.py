"""The upstream's own change events, pushed to the gateway (issue 16: sub-second push without
JMAP push and without an IMAP connection per user).

``POST /push/upstream-events`` with ``Authorization: Bearer <EAS_UPSTREAM_EVENTS_SECRET>`` and
one JSON event: Cyrus' event notifications (mboxevent JSON, RFC 5423 names: MessageNew,
MailboxCreate, FlagsSet, ..., as notifyd's external notifier passes them on:
scripts/cyrus-upstream.sh) or Dovecot's push_notification "ox" driver. The event names a
mailbox of a user; that user's watchers, on every node, read the state of the store it names
at once (usm.push.PushHub.upstream_changed): Cyrus' calendar and address book mailboxes
(``vnd.cmu.mbtype`` c or a, ``#calendars``/``#addressbooks`` in the uri) are its CalDAV and
CardDAV collections, read with one PROPFIND per home; every other mailbox is mail. 204 when
taken, 400 for an event that names no user, 401 without the secret; 404 while no secret is set (the endpoint is off).
"""

from __future__ import annotations

import hmac
import json
import logging
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from starlette.requests import Request
from starlette.responses import Response

from usm.push import DAV, MAIL

if TYPE_CHECKING:
    from eas_gateway.app import Gateway

log = logging.getLogger(__name__)

MAX_EVENT_BYTES = 64 * 1024


def owner_of(event: dict[str, Any]) -> str | None:
    """The user whose mailbox an event is about. Cyrus: the mailbox of its ``uri``
    (imap://server/user/alice/Sent%40example.com;UIDVALIDITY=... is alice@example.com's; the
    ``user`` field is who acted, maybe someone else). Dovecot "ox": its ``user``."""
    uri = event.get("uri")
    if isinstance(uri, str) and uri.startswith("imap://"):
        path = unquote(urlsplit(uri.split(";", 1)[0]).path).lstrip("/")
        if path.startswith("user/"):
            name = path[len("user/"):]
            local = name.split("/", 1)[0].split("@", 1)[0]
            domain = name.rsplit("@", 1)[1] if "@" in name else ""
            if local:
                return f"{local}@{domain}" if domain else local
    user = event.get("user")
    return user.strip() if isinstance(user, str) and user.strip() else None


DAV_MAILBOX_TYPES = {"c", "a"}  # Cyrus' mbtype letters of calendar and address book mailboxes
DAV_FOLDERS = ("#calendars", "#addressbooks")


def store_of(event: dict[str, Any]) -> str:
    """Which of the user's stores an event is about: DAV for a Cyrus calendar or address book
    mailbox, MAIL for anything else (Dovecot's events are all mail)."""
    if event.get("vnd.cmu.mbtype") in DAV_MAILBOX_TYPES:
        return DAV
    uri = event.get("uri")
    if isinstance(uri, str) and uri.startswith("imap://"):
        path = unquote(urlsplit(uri.split(";", 1)[0]).path)
        if any(f"/{folder}" in path for folder in DAV_FOLDERS):
            return DAV
    return MAIL


async def receive(gateway: Gateway, request: Request) -> Response:
    secret = gateway.settings.upstream_events_secret
    if not secret:
        return Response(status_code=404)
    given = request.headers.get("authorization", "")
    if not hmac.compare_digest(given.encode(), f"Bearer {secret}".encode()):
        log.warning("upstream event refused: no or a wrong secret from %s", request.client.host if request.client
                    else "-")
        return Response("unauthorized\n", status_code=401, headers={"WWW-Authenticate": "Bearer"})
    body = await request.body()
    if len(body) > MAX_EVENT_BYTES:
        return Response("event too large\n", status_code=413)
    try:
        event = json.loads(body)
    except ValueError:
        event = None
    user = owner_of(event) if isinstance(event, dict) else None
    if user is None:
        log.info("upstream event without a user's mailbox: %r", body[:200])
        return Response("the event names no user's mailbox\n", status_code=400)
    assert gateway.push is not None
    await gateway.push.upstream_changed(user, store_of(event))
    return Response(status_code=204)
