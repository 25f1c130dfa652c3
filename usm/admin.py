"""What operators do to devices: list, inspect, reset, remove, wipe.

The resets run the SQL functions of sql/006_admin.sql, the same ones the
psql scripts in sql/admin/ call, so the CLI, the admin page and a psql
session cannot disagree about what a reset is.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

WIPE_KINDS = ("device", "account")


class AdminError(RuntimeError):
    """The request names nothing that exists, or the database refused it (its reason)."""


@dataclass(frozen=True)
class FolderState:
    server_id: int
    name: str
    folder_type: int
    sync_key: int | None  # None: the device has not synced its items
    items: int
    pending: int  # ids waiting for a later Sync
    listing: bool = False  # the folder's first listing is under way: more than ``pending`` waits upstream


async def list_devices(conn: asyncpg.Connection, user: str | None = None) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        "SELECT * FROM eas_devices WHERE $1::text IS NULL OR user_name = $1 ORDER BY user_name, last_seen DESC",
        user)
    return [dict(r) for r in rows]


@dataclass(frozen=True)
class ItemFailure:
    collection_id: int
    upstream_id: str
    failures: int
    skipped: bool
    last_error: str


async def item_failures(conn: asyncpg.Connection, user: str, device_id: str) -> list[ItemFailure]:
    """Items loop protection holds back from the device (sql/008_item_failures.sql)."""
    rows = await conn.fetch(
        "SELECT collection_id, upstream_id, failures, skipped, last_error FROM item_failures"
        " WHERE user_name = $1 AND device_id = $2 ORDER BY collection_id, last_failed", user, device_id)
    return [ItemFailure(**dict(r)) for r in rows]


async def show_device(conn: asyncpg.Connection, user: str, device_id: str) -> tuple[dict[str, Any], list[FolderState]]:
    row = await conn.fetchrow("SELECT * FROM eas_devices WHERE user_name = $1 AND device_id = $2", user, device_id)
    if row is None:
        raise AdminError(f"user {user!r} has no device {device_id!r}")
    folders = await conn.fetch(
        """
        SELECT f.server_id, f.display_name, f.folder_type, c.sync_key, c.listing IS NOT NULL AS listing,
               (SELECT count(*) FROM collection_items i WHERE i.user_name = f.user_name
                   AND i.device_id = f.device_id AND i.collection_id = f.server_id) AS items,
               (SELECT count(*) FROM collection_pending p WHERE p.user_name = f.user_name
                   AND p.device_id = f.device_id AND p.collection_id = f.server_id) AS pending
          FROM device_folders f
          LEFT JOIN collections c ON c.user_name = f.user_name AND c.device_id = f.device_id
                                 AND c.collection_id = f.server_id
         WHERE f.user_name = $1 AND f.device_id = $2
         ORDER BY f.server_id
        """, user, device_id)
    return dict(row), [FolderState(r["server_id"], r["display_name"], r["folder_type"], r["sync_key"],
                                   r["items"], r["pending"], r["listing"]) for r in folders]


async def reset_device(conn: asyncpg.Connection, user: str, device_id: str) -> None:
    await _call(conn, "SELECT eas_reset_device($1, $2)", user, device_id)


async def reset_user(conn: asyncpg.Connection, user: str) -> int:
    """How many devices were reset."""
    return int(await _call(conn, "SELECT eas_reset_user($1)", user))


async def remove_device(conn: asyncpg.Connection, user: str, device_id: str) -> None:
    await _call(conn, "SELECT eas_remove_device($1, $2)", user, device_id)


async def resync_folder(conn: asyncpg.Connection, user: str, folder: str, device_id: str | None = None) -> int:
    """How many devices will sync the folder again."""
    return int(await _call(conn, "SELECT eas_resync_folder($1, $2, $3)", user, folder, device_id))


async def request_wipe(conn: asyncpg.Connection, user: str, device_id: str, kind: str = "device") -> None:
    if kind not in WIPE_KINDS:
        raise AdminError(f"wipe kind {kind!r} is not one of {', '.join(WIPE_KINDS)}")
    await _call(conn, "SELECT eas_request_wipe($1, $2, $3)", user, device_id, kind)


async def cancel_wipe(conn: asyncpg.Connection, user: str, device_id: str) -> None:
    await _call(conn, "SELECT eas_cancel_wipe($1, $2)", user, device_id)


async def _call(conn: asyncpg.Connection, query: str, *args: object) -> Any:
    try:
        return await conn.fetchval(query, *args)
    except asyncpg.RaiseError as exc:  # the functions' RAISE EXCEPTION: a reason for the operator
        raise AdminError(str(exc)) from exc


async def trace(conn: asyncpg.Connection, user: str, device_id: str | None, minutes: float) -> None:
    """Log the user's (or one device's) requests and responses in full for ``minutes``
    (0: stop). Every node follows at once (sql/007_protocol_trace.sql)."""
    if minutes <= 0:
        await conn.execute("DELETE FROM protocol_trace WHERE user_name = $1 AND device_id = $2", user,
                           device_id or "")
        return
    await conn.execute(
        "INSERT INTO protocol_trace (user_name, device_id, until) VALUES ($1, $2, now() + $3 * interval '1 minute')"
        " ON CONFLICT (user_name, device_id) DO UPDATE SET until = EXCLUDED.until", user, device_id or "", minutes)


async def trace_targets(conn: asyncpg.Connection) -> dict[tuple[str, str], Any]:
    """(user lower-cased, device or "" for all) -> until, for the traces in force."""
    rows = await conn.fetch("SELECT user_name, device_id, until FROM protocol_trace WHERE until > now()")
    return {(r["user_name"].lower(), r["device_id"]): r["until"] for r in rows}


async def traces(conn: asyncpg.Connection) -> list[dict[str, Any]]:
    rows = await conn.fetch("SELECT user_name, device_id, until FROM protocol_trace WHERE until > now()"
                            " ORDER BY user_name, device_id")
    return [dict(r) for r in rows]


async def end_session(conn: asyncpg.Connection, session_id: str, expires_at: datetime) -> None:
    """The admin page's session ``session_id`` is over (signed out) on every node."""
    await conn.execute("DELETE FROM admin_sessions_ended WHERE expires_at < now()")
    await conn.execute("INSERT INTO admin_sessions_ended (session_id, expires_at) VALUES ($1, $2)"
                       " ON CONFLICT DO NOTHING", session_id, expires_at)


async def session_ended(conn: asyncpg.Connection, session_id: str) -> bool:
    return bool(await conn.fetchval("SELECT true FROM admin_sessions_ended WHERE session_id = $1", session_id))
