"""Outgoing mail in PostgreSQL: what each device sent, by ClientId.

The upstream write (store the copy, submit it) cannot join a database
transaction, so sending is a small state machine with the upstream as the
judge (ARCHITECTURE.md "Exactly once"):

1. ``begin`` records (client id, marker) as 'sending' before anything is
   written upstream; the marker is a keyword the stored copy will carry.
2. The copy is stored as a $draft with the marker, then submitted; on
   success the upstream drops $draft in the same call.
3. ``finish`` records 'sent'.

A retry finds 'sent' and does nothing. A retry after a crash in between finds
'sending', looks the marker up upstream: a copy without $draft was sent (just
record it), a copy with $draft was not (submit it), no copy at all was never
stored (start at 2).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import timedelta

import asyncpg


@dataclass(frozen=True)
class Outgoing:
    client_id: str
    marker: str
    state: str
    email_id: str | None
    fresh: bool  # recorded by this request: nothing of it can be upstream yet


def marker(user: str, device_id: str, client_id: str) -> str:
    """A keyword unique to one message of one device (RFC 8621 keyword characters)."""
    digest = hashlib.sha256(f"{user}\0{device_id}\0{client_id}".encode()).hexdigest()[:32]
    return f"$eas-out-{digest}"


async def begin(conn: asyncpg.Connection, user: str, device_id: str, client_id: str) -> Outgoing:
    """The record of this message, made 'sending' if it is new."""
    row = await conn.fetchrow(
        "INSERT INTO outgoing_mail (user_name, device_id, client_id, marker, state) VALUES ($1, $2, $3, $4,"
        " 'sending') ON CONFLICT (user_name, device_id, client_id) DO UPDATE SET client_id = EXCLUDED.client_id"
        " RETURNING client_id, marker, state, email_id, (xmax = 0) AS fresh",
        user, device_id, client_id, marker(user, device_id, client_id))
    return Outgoing(row["client_id"], row["marker"], row["state"], row["email_id"], row["fresh"])


async def stored(conn: asyncpg.Connection, user: str, device_id: str, client_id: str, email_id: str) -> None:
    await conn.execute(
        "UPDATE outgoing_mail SET email_id = $4 WHERE user_name = $1 AND device_id = $2 AND client_id = $3",
        user, device_id, client_id, email_id)


# How long a message's record answers a retry. Phones retry within minutes;
# the table's comment (sql/004_outgoing.sql) promises a month.
KEEP_RECORDS = timedelta(days=30)


async def finish(conn: asyncpg.Connection, user: str, device_id: str, client_id: str) -> None:
    await conn.execute(
        "UPDATE outgoing_mail SET state = 'sent', sent_at = now() WHERE user_name = $1 AND device_id = $2"
        " AND client_id = $3", user, device_id, client_id)
    # The device's records of mail sent long ago go; so do attempts that died and were
    # never retried within that time (their stored copy stays in Drafts, for the user to see).
    await conn.execute(
        "DELETE FROM outgoing_mail WHERE user_name = $1 AND device_id = $2"
        " AND coalesce(sent_at, created_at) < now() - $3::interval", user, device_id, KEEP_RECORDS)
