"""Table statistics and dead rows where the database does not look after them (autovacuum off).

The hot lookups (items by upstream id among a collection's, the head of a pending list) are
fast only while PostgreSQL's planner knows how many rows a collection has, and while deleted
pending rows are cleared away. Autovacuum does both as tables change. On a server with it
turned off (some CI and hand-tuned set-ups) nothing does: a collection that grew from nothing to
100,000 items is then read whole for every lookup of a page's ids (65 ms at 67,000 items,
measured; 0.1 ms once analyzed). There the gateway does what autovacuum would, for its own
tables only and with autovacuum's default thresholds: ANALYZE after 50 + 10 % of a table's rows
changed, VACUUM after 50 + 20 % died. One node at a time (an advisory lock); a warning says so
once at start. With autovacuum on this does nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

import asyncpg

log = logging.getLogger(__name__)

# The tables requests read and write (sql/): all but the admin's and the schema's own.
TABLES = ("collections", "collection_items", "collection_pending", "collection_client_ids", "item_failures",
          "moved_items", "devices", "device_folders", "folder_ids", "folder_sync", "outgoing_mail",
          "sign_in_failures", "device_blocks")
CHECK_SECONDS = 30.0
LOCK = 0x6561735F63617265  # pg advisory lock key: "eas_care"


@dataclass(frozen=True)
class Care:
    table: str
    analyze: bool
    vacuum: bool


async def needed(conn: asyncpg.Connection) -> list[Care]:
    """The gateway's tables that autovacuum would analyze or vacuum now (its default thresholds)."""
    rows = await conn.fetch(
        "SELECT relname, n_live_tup, n_dead_tup, n_mod_since_analyze, last_analyze, last_autoanalyze"
        " FROM pg_stat_user_tables WHERE schemaname = current_schema() AND relname = ANY($1::text[])",
        list(TABLES))
    found = []
    for r in rows:
        never = r["last_analyze"] is None and r["last_autoanalyze"] is None and r["n_mod_since_analyze"] > 0
        analyze = never or r["n_mod_since_analyze"] > 50 + 0.1 * r["n_live_tup"]
        vacuum = r["n_dead_tup"] > 50 + 0.2 * r["n_live_tup"]
        if analyze or vacuum:
            found.append(Care(r["relname"], analyze, vacuum))
    return found


async def care_once(pool: asyncpg.Pool) -> list[Care]:
    """Analyze and vacuum what needs it, unless another node is at it. What was done."""
    async with pool.acquire() as conn:
        if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", LOCK):
            return []
        try:
            done = await needed(conn)
            for care in done:
                # (VACUUM cannot run in a transaction: asyncpg sends a lone statement outside one.)
                statement = {(True, True): "VACUUM (ANALYZE)", (True, False): "VACUUM",
                             (False, True): "ANALYZE"}[(care.vacuum, care.analyze)]
                await conn.execute(f"{statement} {care.table}")
                log.info("table care: %s %s", statement.lower(), care.table)
            return done
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", LOCK)


class TableCare:
    """The background task: nothing where autovacuum is on."""

    def __init__(self, pool: asyncpg.Pool, *, check_seconds: float = CHECK_SECONDS) -> None:
        self.pool, self.check_seconds = pool, check_seconds
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        async with self.pool.acquire() as conn:
            if await conn.fetchval("SELECT current_setting('autovacuum')") == "on":
                return
        log.warning("the database has autovacuum off: the gateway analyzes and vacuums its own tables"
                    " (every %.0f s, autovacuum's thresholds)", self.check_seconds)
        self._task = asyncio.create_task(self._run(), name="table care")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            try:
                await care_once(self.pool)
            except (asyncpg.PostgresError, OSError) as exc:
                log.warning("table care: %s", exc)
            await asyncio.sleep(self.check_seconds)
