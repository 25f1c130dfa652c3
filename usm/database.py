"""The PostgreSQL connection: embedded (pgserver) or by URL, and migrations.

Migrations are the numbered files of sql/ (NNN_name.sql), applied in order,
each in its own transaction, recorded in schema_migrations. An advisory lock
keeps two gateway processes from migrating at the same time.
"""

from __future__ import annotations

import functools
import logging
import re
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg

log = logging.getLogger(__name__)

SQL_DIR = Path(__file__).resolve().parents[1] / "sql"
_MIGRATION = re.compile(r"^(\d{3})_[a-z0-9_]+\.sql$")
# An arbitrary constant: the key of the advisory lock taken while migrating.
_MIGRATION_LOCK = 0x3EA5_0001


class DatabaseError(RuntimeError):
    """The database cannot be reached or its schema cannot be brought up to date."""


def embedded_url(state_dir: Path) -> str:
    """Start (or reuse) the embedded PostgreSQL in ``state_dir/pgdata``; its URL. It keeps
    running after this process (tests and the admin CLI share it)."""
    return embedded(state_dir, stop=False).url


class Embedded:
    """An embedded PostgreSQL this process holds (pgserver counts the processes holding it)."""

    def __init__(self, server: Any, url: str) -> None:
        self._server, self.url = server, url

    def release(self) -> None:
        """Let go of it: stopped unless another process still holds it."""
        self._server.cleanup()


def embedded(state_dir: Path, *, stop: bool = True) -> Embedded:
    """Start (or reuse) the embedded PostgreSQL in ``state_dir/pgdata``. With ``stop`` it stops
    when this process releases it (the gateway does so when it stops) or exits."""
    with warnings.catch_warnings():
        # pgserver asks platformdirs for a runtime dir it does not use here;
        # without XDG_RUNTIME_DIR (services, containers) that only warns.
        warnings.simplefilter("ignore")
        import pgserver  # imported here: only the embedded mode needs it

    try:
        state_dir.mkdir(parents=True, exist_ok=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            server = pgserver.get_server(state_dir / "pgdata",  # type: ignore[attr-defined]
                                         cleanup_mode="stop" if stop else None)
    except Exception as exc:  # pgserver raises bare Exceptions with initdb/pg_ctl output
        raise DatabaseError(f"embedded PostgreSQL in {state_dir / 'pgdata'} did not start: {exc}") from exc
    return Embedded(server, str(server.get_uri()))


def migrations(sql_dir: Path = SQL_DIR) -> list[tuple[int, Path]]:
    found = []
    for path in sorted(sql_dir.glob("*.sql")):
        match = _MIGRATION.match(path.name)
        if match:
            found.append((int(match.group(1)), path))
    numbers = [n for n, _ in found]
    if numbers != list(range(1, len(numbers) + 1)):
        raise DatabaseError(f"migrations in {sql_dir} are not numbered 001, 002, ... without gaps: {numbers}")
    return found


async def upgrade(conn: asyncpg.Connection, sql_dir: Path = SQL_DIR) -> list[str]:
    """Apply the migrations not yet applied; return their file names."""
    await conn.execute("SELECT pg_advisory_lock($1)", _MIGRATION_LOCK)
    try:
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {row["version"] for row in await conn.fetch("SELECT version FROM schema_migrations")}
        applied = []
        for number, path in migrations(sql_dir):
            if number in done:
                continue
            async with conn.transaction():
                await conn.execute(path.read_text())
                await conn.execute("INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", number, path.name)
            log.info("database migration applied: %s", path.name)
            applied.append(path.name)
        return applied
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _MIGRATION_LOCK)


async def connect(url: str, *, min_size: int = 2, max_size: int = 20,
                  on_statement: Callable[[Any], None] | None = None) -> asyncpg.Pool:
    """A pool on an up-to-date schema. ``on_statement`` is called (soon after, in the context of
    the task that sent it) for each statement a pool connection sends: what the gateway counts."""
    try:
        pool = await asyncpg.create_pool(url, min_size=min_size, max_size=max_size, reset=_keep_session,
                                         connect=functools.partial(_connect, on_statement=on_statement))
    except (OSError, asyncpg.PostgresError) as exc:
        raise DatabaseError(f"cannot connect to PostgreSQL at {_redact(url)}: {exc}") from exc
    async with pool.acquire() as conn:
        await upgrade(conn)
    return pool


async def _connect(*args: Any, on_statement: Callable[[Any], None] | None = None, **kwargs: Any) -> asyncpg.Connection:
    """A new pool connection. While a PostgreSQL reached over a Unix socket restarts, its socket
    file is gone and connecting raises FileNotFoundError: that is the database being down
    (ConnectionRefusedError, which the gateway answers with 503), not a bug."""
    try:
        conn = await asyncpg.connect(*args, **kwargs)
    except FileNotFoundError as exc:
        raise ConnectionRefusedError(f"the database's socket is not there (restarting?): {exc}") from exc
    if on_statement is not None:
        conn.add_query_logger(on_statement)
    return conn


async def _keep_session(conn: asyncpg.Connection) -> None:
    """What the pool does to a connection that comes back, after asyncpg's own rollback of a
    transaction left open: nothing more. Pooled connections carry no session state to undo —
    no SET, the migrations' advisory lock is unlocked by them, a LISTEN is UNLISTENed by
    usm.listener before its connection goes back — so asyncpg's default reset query (one more
    round trip and transaction per checkout, half of what a no-change Sync cost) is not sent."""


async def check(pool: asyncpg.Pool, timeout: float = 5.0) -> None:
    """Raise DatabaseError unless the database answers within ``timeout`` seconds."""
    try:
        async with pool.acquire(timeout=timeout) as conn:
            await conn.fetchval("SELECT 1", timeout=timeout)
    except (asyncpg.PostgresError, OSError, TimeoutError) as exc:
        raise DatabaseError(f"database unreachable: {exc!r}") from exc


def _redact(url: str) -> str:
    return re.sub(r"://([^:/@]+):[^@]*@", r"://\1:***@", url)
