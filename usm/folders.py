"""Folder ServerIds and the per-device FolderSync state in PostgreSQL."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from usm.hierarchy import DeviceFolder


@dataclass(frozen=True)
class FolderSyncState:
    sync_key: int  # 0: the device has no hierarchy yet
    last_response: bytes | None


async def server_ids(conn: asyncpg.Connection, user: str, upstream_ids: list[str]) -> dict[str, int]:
    """ServerIds of the given upstream folders, allocating new ones as needed.

    Ids are per user and never reused, so that every device of the user, and a
    device that starts over from FolderSync key 0, names a folder the same way.
    """
    async with conn.transaction():
        # Serialise allocation per user: two devices of one user may FolderSync at once.
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext('folder_ids:' || $1))", user)
        rows = await conn.fetch(
            "SELECT upstream_id, server_id FROM folder_ids WHERE user_name = $1", user)
        known = {r["upstream_id"]: r["server_id"] for r in rows}
        next_id = max(known.values(), default=0) + 1
        new = []
        for upstream_id in upstream_ids:
            if upstream_id not in known:
                known[upstream_id] = next_id
                new.append((user, next_id, upstream_id))
                next_id += 1
        if new:
            await conn.executemany(
                "INSERT INTO folder_ids (user_name, server_id, upstream_id) VALUES ($1, $2, $3)", new)
    return {uid: known[uid] for uid in upstream_ids}


async def upstream_ids(conn: asyncpg.Connection, user: str, server_ids: list[int]) -> dict[int, str]:
    """The upstream folder of each known ServerId (unknown ones are left out)."""
    rows = await conn.fetch(
        "SELECT server_id, upstream_id FROM folder_ids WHERE user_name = $1 AND server_id = ANY($2::integer[])",
        user, server_ids)
    return {r["server_id"]: r["upstream_id"] for r in rows}


async def state(conn: asyncpg.Connection, user: str, device_id: str) -> FolderSyncState:
    row = await conn.fetchrow(
        "SELECT sync_key, last_response FROM folder_sync WHERE user_name = $1 AND device_id = $2",
        user, device_id)
    if row is None:
        return FolderSyncState(0, None)
    # An empty response: the key came from a folder operation, with no answer to replay.
    return FolderSyncState(row["sync_key"], bytes(row["last_response"]) or None)


async def known_folders(conn: asyncpg.Connection, user: str, device_id: str) -> dict[int, DeviceFolder]:
    rows = await conn.fetch(
        "SELECT server_id, parent_server_id, display_name, folder_type FROM device_folders"
        " WHERE user_name = $1 AND device_id = $2", user, device_id)
    return {r["server_id"]: DeviceFolder(r["server_id"], r["parent_server_id"], r["display_name"],
                                         r["folder_type"]) for r in rows}


async def commit(conn: asyncpg.Connection, user: str, device_id: str, *, expected_key: int, new_key: int,
                 folders: dict[int, DeviceFolder], response: bytes) -> bool:
    """Store the device's new hierarchy and the response that announces it.

    Atomic, and only if the state is still at ``expected_key`` (another request
    of the same device may have moved it): returns False then, changing nothing.
    """
    async with conn.transaction():
        current = await conn.fetchval(
            "SELECT sync_key FROM folder_sync WHERE user_name = $1 AND device_id = $2 FOR UPDATE",
            user, device_id)
        if (current or 0) != expected_key and expected_key != 0:
            return False
        await conn.execute(
            "INSERT INTO folder_sync (user_name, device_id, sync_key, last_response) VALUES ($1, $2, $3, $4)"
            " ON CONFLICT (user_name, device_id) DO UPDATE"
            " SET sync_key = EXCLUDED.sync_key, last_response = EXCLUDED.last_response",
            user, device_id, new_key, response)
        await conn.execute(
            "DELETE FROM device_folders WHERE user_name = $1 AND device_id = $2", user, device_id)
        await conn.executemany(
            "INSERT INTO device_folders (user_name, device_id, server_id, parent_server_id, display_name,"
            " folder_type) VALUES ($1, $2, $3, $4, $5, $6)",
            [(user, device_id, f.server_id, f.parent_server_id, f.display_name, f.folder_type)
             for f in folders.values()])
    return True


async def record_change(conn: asyncpg.Connection, user: str, device_id: str, *, expected_key: int,
                        upsert: DeviceFolder | None = None, delete: tuple[int, ...] | list[int] = ()) -> int | None:
    """A folder the device itself created, renamed or deleted (FolderCreate/
    Update/Delete): its hierarchy moves to the next key with the change in it,
    so the next FolderSync does not send it back. Returns the new key, or None
    (changing nothing) if the key is not ``expected_key``. The key before the
    new one belongs to no FolderSync answer: nothing is replayed for it."""
    async with conn.transaction():
        current = await conn.fetchval(
            "SELECT sync_key FROM folder_sync WHERE user_name = $1 AND device_id = $2 FOR UPDATE",
            user, device_id)
        if current is None or current != expected_key:
            return None
        await conn.execute(
            "UPDATE folder_sync SET sync_key = sync_key + 1, last_response = '' WHERE user_name = $1"
            " AND device_id = $2", user, device_id)
        if delete:
            await conn.execute(
                "DELETE FROM device_folders WHERE user_name = $1 AND device_id = $2"
                " AND server_id = ANY($3::integer[])", user, device_id, list(delete))
        if upsert is not None:
            await conn.execute(
                "INSERT INTO device_folders (user_name, device_id, server_id, parent_server_id, display_name,"
                " folder_type) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (user_name, device_id, server_id)"
                " DO UPDATE SET parent_server_id = EXCLUDED.parent_server_id,"
                " display_name = EXCLUDED.display_name, folder_type = EXCLUDED.folder_type",
                user, device_id, upsert.server_id, upsert.parent_server_id, upsert.display_name,
                upsert.folder_type)
    return expected_key + 1
