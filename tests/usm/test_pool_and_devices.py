"""What a request costs the database before its command runs: a pooled connection comes
back without asyncpg's reset query (and still without an open transaction), and a device
seen a moment ago is read, not written (no WAL flush per request). Real database."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from usm import database, devices

pytestmark = pytest.mark.postgres


def test_a_connection_comes_back_unreset_but_never_inside_a_transaction(database_url: str) -> None:
    async def run() -> tuple[str, bool]:
        pool = await database.connect(database_url, min_size=1, max_size=1)
        try:
            async with pool.acquire() as conn:
                await conn.execute("SET application_name = 'kept'")
            async with pool.acquire() as conn:
                kept = await conn.fetchval("SHOW application_name")  # no RESET ALL was sent
                await conn.execute("RESET application_name")
            async with pool.acquire() as conn:
                transaction = conn.transaction()
                await transaction.start()
                await conn.execute("CREATE TEMP TABLE left_open (x int)")
                loop = asyncio.get_running_loop()
                loop.set_exception_handler(lambda *_: None)  # asyncpg reports the open transaction
            async with pool.acquire() as conn:
                return kept, conn.is_in_transaction() or \
                    await conn.fetchval("SELECT to_regclass('pg_temp.left_open') IS NOT NULL")
        finally:
            await pool.close()

    kept, still_open = asyncio.run(run())
    assert kept == "kept"
    assert not still_open  # rolled back, as before


def test_a_device_seen_a_moment_ago_is_read_not_written(database_url: str) -> None:
    async def run() -> list[object]:
        pool = await database.connect(database_url, min_size=1, max_size=1)
        user, device = f"{uuid.uuid4().hex[:8]}@example.com", "DEV" + uuid.uuid4().hex[:8]
        try:
            async with pool.acquire() as conn:
                async def version() -> tuple[int, str | None]:
                    row = await conn.fetchrow("SELECT xmin::text::bigint AS v, user_agent FROM devices"
                                              " WHERE user_name = $1 AND device_id = $2", user, device)
                    return int(row["v"]), row["user_agent"]

                seen = []
                made = await devices.touch(conn, user, device, "iPhone", "Apple-iPhone/1", "16.1")
                seen.append(await version())
                again = await devices.touch(conn, user, device, "iPhone", None, "16.1")
                seen.append(await version())  # nothing new: not written
                await devices.touch(conn, user, device, "iPhone", "Apple-iPhone/2", "16.1")
                seen.append(await version())  # a new agent: written
                await conn.execute("UPDATE devices SET last_seen = now() - interval '2 minutes'"
                                   " WHERE user_name = $1 AND device_id = $2", user, device)
                before = await version()
                await devices.touch(conn, user, device, "iPhone", None, "16.1")
                seen.append((before, await version()))  # last seen long enough ago: written
                return [made, again, *seen]
        finally:
            await pool.close()

    made, again, first, second, third, (before, fourth) = asyncio.run(run())
    assert made == again
    assert second == first
    assert third[0] != second[0] and third[1] == "Apple-iPhone/2"
    assert fourth[0] != before[0]


def test_a_database_whose_socket_is_gone_is_down_not_a_bug(tmp_path: object) -> None:
    # While PostgreSQL restarts, its Unix socket file is missing: connecting must look like a
    # refused connection (the gateway's 503), not a FileNotFoundError (a 500).
    async def run() -> None:
        await database._connect(f"postgresql://postgres@/eas?host={tmp_path}")

    with pytest.raises(ConnectionRefusedError):
        asyncio.run(run())
