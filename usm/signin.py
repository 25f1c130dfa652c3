"""Sign-in throttling in PostgreSQL, so that every node sees every failure.

Guessing is slowed, the real user never locked out:
- per (user, client address): the first FREE wrong passwords cost nothing; after them each
  attempt from that address waits 2, 4, 8 ... seconds (at most LONGEST) after the last
  failure — a phone with an old password slows itself down, not the user's other devices;
- per user, across addresses (a spray from many addresses, or many users behind the few
  addresses Outlook mobile comes from): past USER_LIMIT failures within WINDOW, attempts
  from every address wait the same way;
- a right password clears its address's record, and (eas_gateway.auth) a password that
  matches the user's cached login is never throttled and never checked here at all.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import asyncpg

FREE = 5
USER_LIMIT = 30
LONGEST = 300.0
WINDOW = timedelta(minutes=15)


def _delay(over: int) -> float:
    return 0.0 if over < 0 else min(float(2 ** min(over + 1, 16)), LONGEST)


async def wait(conn: asyncpg.Connection, user: str, client: str, *, now: datetime) -> float:
    """Seconds before ``user`` may try a password from ``client`` again (0: now)."""
    rows = await conn.fetch(
        "SELECT client, failures, last_failure FROM sign_in_failures WHERE user_name = $1 AND last_failure > $2",
        user, now - WINDOW)
    if not rows:
        return 0.0
    mine = next((r for r in rows if r["client"] == client), None)
    waits = [0.0]
    if mine is not None:
        waits.append(_delay(mine["failures"] - FREE) - (now - mine["last_failure"]).total_seconds())
    total = sum(r["failures"] for r in rows)
    latest = max(r["last_failure"] for r in rows)
    waits.append(_delay(total - USER_LIMIT) - (now - latest).total_seconds())
    return max(waits)


async def failed(conn: asyncpg.Connection, user: str, client: str, *, now: datetime) -> None:
    """Record a wrong password (a run older than the window starts again at 1)."""
    await conn.execute(
        "INSERT INTO sign_in_failures (user_name, client, failures, last_failure) VALUES ($1, $2, 1, $3)"
        " ON CONFLICT (user_name, client) DO UPDATE SET last_failure = $3, failures ="
        " CASE WHEN sign_in_failures.last_failure > $3 - $4::interval THEN sign_in_failures.failures + 1 ELSE 1 END",
        user, client, now, WINDOW)
    await conn.execute("DELETE FROM sign_in_failures WHERE last_failure < $1", now - 2 * WINDOW)


async def succeeded(conn: asyncpg.Connection, user: str, client: str) -> None:
    await conn.execute("DELETE FROM sign_in_failures WHERE user_name = $1 AND client = $2", user, client)
