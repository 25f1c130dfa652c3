"""Who may sync: device access rules, blocks, and the sync-loop autoblock (sql/014).

``DeviceAccess.decide`` answers every request from memory: the rules and the current
blocks are read from PostgreSQL at most every ``reload_seconds`` (and at once after a
change through this process), so a change by another node or by SQL counts within that.
Order: a current block; then the user's own rules, then the global ones, each DeviceId
before User-Agent before DeviceType; the first rule whose pattern (case-insensitive glob)
matches decides; else ``default``. Quarantine refuses like block (the phone says it is
blocked) and tells the admin the device waits for a decision: an allow rule for its
DeviceId lets it in.

``DeviceAccess.seen`` counts identical requests (same device, command, query and body;
not Pings, not empty bodies) per minute: past ``loop_limit`` the device is in a loop (a phone resending what fails
the same way forever) and is blocked for ``block_minutes``.
"""

from __future__ import annotations

import asyncio
import fnmatch
import hashlib
import logging
import time
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

log = logging.getLogger(__name__)

ALLOW, BLOCK, QUARANTINE = "allow", "block", "quarantine"
ACCESS_LEVELS = (ALLOW, BLOCK, QUARANTINE)
FIELDS = ("device_id", "user_agent", "device_type")  # most specific first
NOT_COUNTED = frozenset({"Ping"})


@dataclass(frozen=True)
class Rule:
    id: int
    user_name: str | None
    field: str
    pattern: str
    access: str


@dataclass(frozen=True)
class Decision:
    access: str
    why: str


class AccessError(ValueError):
    """A rule that cannot be (an unknown field or access level, an empty pattern)."""


class DeviceAccess:
    def __init__(self, pool: asyncpg.Pool, *, default: str = ALLOW, loop_limit: int = 60,
                 block_minutes: float = 15.0, reload_seconds: float = 10.0) -> None:
        if default not in ACCESS_LEVELS:
            raise AccessError(f"default device access {default!r} is not one of {', '.join(ACCESS_LEVELS)}")
        self.pool = pool
        self.default = default
        self.loop_limit = loop_limit
        self.block_minutes = block_minutes
        self.reload_seconds = reload_seconds
        self._rules: list[Rule] = []
        self._blocks: dict[tuple[str, str], tuple[datetime, str]] = {}
        self._loaded: float | None = None  # monotonic time of the last read; None: never read
        self._loading: asyncio.Future[None] | None = None
        self._recent: dict[tuple[str, str, str], deque[float]] = {}

    def forget(self) -> None:
        """Read the rules and blocks again at the next request (this process changed them)."""
        self._loaded = None

    async def decide(self, user: str, device_id: str, device_type: str, user_agent: str) -> Decision:
        # (None, not 0: the monotonic clock may start near 0, as on a machine booted a minute ago.)
        if self._loaded is None or time.monotonic() - self._loaded > self.reload_seconds:
            # One read for all the requests that find the copy old at once (a busy node's hundreds).
            if self._loading is None or self._loading.done():
                self._loading = asyncio.ensure_future(self._load())
            await asyncio.shield(self._loading)
        user, device_id = user.lower(), device_id.lower()
        block = self._blocks.get((user, device_id))
        if block is not None and block[0] > datetime.now(UTC):
            return Decision(BLOCK, f"blocked until {block[0]:%Y-%m-%d %H:%M:%S} UTC: {block[1]}")
        values = {"device_id": device_id, "user_agent": user_agent.lower(), "device_type": device_type.lower()}
        for scope in (user, None):
            for field in FIELDS:
                for rule in self._rules:
                    if rule.user_name == scope and rule.field == field and \
                            fnmatch.fnmatchcase(values[field], rule.pattern.lower()):
                        return Decision(rule.access, f"rule {rule.id} ({rule.field} {rule.pattern!r}"
                                                     f"{' of ' + rule.user_name if rule.user_name else ''})")
        return Decision(self.default, "the default access")

    async def _load(self) -> None:
        async with self.pool.acquire() as conn:
            rules = await conn.fetch("SELECT id, lower(user_name) AS user_name, field, pattern, access "
                                     "FROM device_rules ORDER BY id")
            blocks = await conn.fetch("SELECT lower(user_name) AS user_name, lower(device_id) AS device_id, until, "
                                      "reason FROM device_blocks WHERE until > now()")
        self._rules = [Rule(**dict(r)) for r in rules]
        self._blocks = {(b["user_name"], b["device_id"]): (b["until"], b["reason"]) for b in blocks}
        self._loaded = time.monotonic()

    async def seen(self, user: str, device_id: str, command: str, query: str, body: bytes) -> Decision | None:
        """Count one request; the block when it made the device one in a loop. Pings
        and requests without a body are not counted: they repeat by design (a Ping under a
        stream of new mail, an empty Sync that means "the same as last time, from where I am")."""
        if self.loop_limit <= 0 or command in NOT_COUNTED or not body:
            return None
        key = (user.lower(), device_id.lower(), hashlib.sha256(f"{command}\0{query}\0".encode() + body).hexdigest())
        now = time.monotonic()
        times = self._recent.setdefault(key, deque())
        times.append(now)
        while times and times[0] < now - 60:
            times.popleft()
        if len(self._recent) > 100_000:  # forget the quiet ones
            self._recent = {k: v for k, v in self._recent.items() if v and v[-1] > now - 60}
        if len(times) <= self.loop_limit:
            return None
        times.clear()
        reason = f"{self.loop_limit + 1} identical {command} requests within a minute (a sync loop)"
        async with self.pool.acquire() as conn:
            await block(conn, user, device_id, minutes=self.block_minutes, reason=reason)
        log.warning("device %s of %s blocked for %g minutes: %s", device_id, user, self.block_minutes, reason)
        self.forget()
        return Decision(BLOCK, reason)


# -- what the admin CLI and page do (each also writes the audit log) ---------------------

async def audit(conn: asyncpg.Connection, actor: str, action: str, detail: str) -> None:
    await conn.execute("INSERT INTO admin_audit (actor, action, detail) VALUES ($1, $2, $3)", actor, action, detail)


async def audit_log(conn: asyncpg.Connection, limit: int = 100) -> list[dict[str, Any]]:
    rows = await conn.fetch("SELECT id, at, actor, action, detail FROM admin_audit ORDER BY id DESC LIMIT $1", limit)
    return [dict(r) for r in rows]


async def add_rule(conn: asyncpg.Connection, field: str, pattern: str, access: str, user: str | None = None) -> int:
    if field not in FIELDS:
        raise AccessError(f"field {field!r} is not one of {', '.join(FIELDS)}")
    if access not in ACCESS_LEVELS:
        raise AccessError(f"access {access!r} is not one of {', '.join(ACCESS_LEVELS)}")
    if not pattern.strip():
        raise AccessError("a rule needs a pattern")
    return int(await conn.fetchval(
        "INSERT INTO device_rules (user_name, field, pattern, access) VALUES ($1, $2, $3, $4) RETURNING id",
        user or None, field, pattern.strip(), access))


async def remove_rule(conn: asyncpg.Connection, rule_id: int) -> None:
    if await conn.fetchval("DELETE FROM device_rules WHERE id = $1 RETURNING id", rule_id) is None:
        raise AccessError(f"no rule {rule_id}")


async def rules(conn: asyncpg.Connection) -> list[dict[str, Any]]:
    rows = await conn.fetch("SELECT id, user_name, field, pattern, access, created_at FROM device_rules ORDER BY id")
    return [dict(r) for r in rows]


async def block(conn: asyncpg.Connection, user: str, device_id: str, *, minutes: float, reason: str) -> None:
    until = datetime.now(UTC) + timedelta(minutes=minutes)
    await conn.execute(
        "INSERT INTO device_blocks (user_name, device_id, until, reason) VALUES ($1, $2, $3, $4) "
        "ON CONFLICT (user_name, device_id) DO UPDATE SET until = EXCLUDED.until, reason = EXCLUDED.reason, "
        "created_at = now()", user.lower(), device_id, until, reason)


async def unblock(conn: asyncpg.Connection, user: str, device_id: str) -> None:
    if await conn.fetchval("DELETE FROM device_blocks WHERE user_name = $1 AND lower(device_id) = lower($2) "
                           "RETURNING 1", user.lower(), device_id) is None:
        raise AccessError(f"device {device_id} of {user} is not blocked")


async def blocks(conn: asyncpg.Connection) -> list[dict[str, Any]]:
    rows = await conn.fetch("SELECT user_name, device_id, until, reason, created_at FROM device_blocks "
                            "WHERE until > now() ORDER BY created_at DESC")
    return [dict(r) for r in rows]
