"""What a request costs the database: a pooled connection comes back without asyncpg's reset
query (and still without an open transaction); a device seen a moment ago is read, not written
(no WAL flush per request), and comes with its remembered Sync and Ping requests; a Sync's
collections come in one statement with their folders and whether anything is pending (a
no-change Sync: two statements in all). Real database."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from usm import database, devices, folders, sync_state
from usm.sync_state import Generation

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


def test_the_device_comes_with_its_remembered_requests(database_url: str) -> None:
    async def run() -> list[devices.Device]:
        pool = await database.connect(database_url, min_size=1, max_size=1)
        user, device = f"{uuid.uuid4().hex[:8]}@example.com", "DEV" + uuid.uuid4().hex[:8]
        try:
            async with pool.acquire() as conn:
                made = await devices.touch(conn, user, device, "iPhone", None, "16.1")
                await devices.remember_request(conn, user, device, "Sync", {"collections": [{"id": 2}]})
                await devices.remember_request(conn, user, device, "Ping", {"interval": 900})
                read = await devices.touch(conn, user, device, "iPhone", None, "16.1")
                written = await devices.touch(conn, user, device, "iPad", None, "16.1")  # the write path
                return [made, read, written]
        finally:
            await pool.close()

    made, read, written = asyncio.run(run())
    assert made.remembered("Sync") is None and made.remembered("Ping") is None
    for device in (read, written):
        assert device.remembered("Sync") == {"collections": [{"id": 2}]}
        assert device.remembered("Ping") == {"interval": 900}


def test_collection_states_come_with_their_folder_and_pending_list(database_url: str) -> None:
    async def run() -> tuple[dict[int, sync_state.CollectionState], dict[int, sync_state.CollectionState]]:
        pool = await database.connect(database_url, min_size=1, max_size=1)
        user, device = f"{uuid.uuid4().hex[:8]}@example.com", "DEV1"
        try:
            async with pool.acquire() as conn:
                await devices.touch(conn, user, device, "iPhone", None, "16.1")
                ids = await folders.server_ids(conn, user, ["inbox", "sent", "notes"])
                inbox, sent, notes = ids["inbox"], ids["sent"], ids["notes"]
                for cid, waiting in ((inbox, ["m1", "m2"]), (sent, [])):
                    assert await sync_state.commit(conn, user, device, cid, expected_key=0, generation=Generation(
                        new_key=1, upstream_state="s1", filter_type=0, options={}, next_item=1, response=b"r",
                        reset=True, pending_new=waiting))
                before = await sync_state.states(conn, user, device, [inbox, sent, notes, 99])
                assert await sync_state.commit(conn, user, device, inbox, expected_key=1, generation=Generation(
                    new_key=1, upstream_state="s1", filter_type=0, options={}, next_item=1, response=b"r",
                    pending_done=["m1", "m2"]))
                after = await sync_state.states(conn, user, device, [inbox])
                return before, after
        finally:
            await pool.close()

    before, after = asyncio.run(run())
    inbox, sent, notes, unknown = before.values()
    assert (inbox.folder_id, inbox.sync_key, inbox.upstream_state, inbox.pending) == ("inbox", 1, "s1", True)
    assert (sent.folder_id, sent.sync_key, sent.pending) == ("sent", 1, False)
    assert (notes.folder_id, notes.sync_key, notes.pending) == ("notes", 0, False)  # not synced yet
    assert (unknown.folder_id, unknown.sync_key) == (None, 0)  # no folder of the user
    assert not next(iter(after.values())).pending


def test_the_stored_answer_is_read_only_when_the_phone_lost_it(database_url: str) -> None:
    """The states leave the stored answer out (it can be hundreds of KB); a resent key reads
    it, and a generation that keeps the key keeps it (or stores its own where there is none)."""
    async def run() -> list[object]:
        pool = await database.connect(database_url, min_size=1, max_size=1)
        user, device = f"{uuid.uuid4().hex[:8]}@example.com", "DEV1"
        try:
            async with pool.acquire() as conn:
                def generation(key: int, response: bytes, keep: bool = False) -> Generation:
                    return Generation(new_key=key, upstream_state="s", filter_type=0, options={}, next_item=1,
                                      response=response, keep_response=keep)
                await devices.touch(conn, user, device, "iPhone", None, "16.1")
                assert await sync_state.commit(conn, user, device, 2, expected_key=0, generation=Generation(
                    new_key=1, upstream_state="s", filter_type=0, options={}, next_item=1, response=b"one",
                    reset=True))
                assert await sync_state.commit(conn, user, device, 2, expected_key=1, generation=generation(2, b"two"))
                assert await sync_state.commit(conn, user, device, 2, expected_key=2,
                                               generation=generation(2, b"same key", keep=True))
                seen: list[object] = [await sync_state.count_replay(conn, user, device, 2)]
                # A folder the device never synced, given a row by MoveItems: no answer stored.
                await sync_state.move_item(conn, user, device, 2, 1, 3, "m1", "v")
                seen.append(await sync_state.count_replay(conn, user, device, 3))
                assert await sync_state.commit(conn, user, device, 3, expected_key=0,
                                               generation=generation(0, b"its own", keep=True))
                seen.append(await sync_state.count_replay(conn, user, device, 3))
                seen.append(await sync_state.count_replay(conn, user, device, 4))  # no collection
                return seen
        finally:
            await pool.close()

    assert asyncio.run(run()) == [(1, b"two"), (1, None), (1, b"its own"), (0, None)]

