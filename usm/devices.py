"""Devices and their provisioning state (MS-ASPROV 3.2.5.1).

Provisioning is two phases: the phone asks for the policy and receives a
temporary PolicyKey (pending_policy_key); it acknowledges that key and
receives the final one (policy_key), which it sends with every later
request in X-MS-PolicyKey.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import asyncpg


@dataclass(frozen=True)
class Device:
    user_name: str
    device_id: str
    device_type: str
    policy_key: int | None
    pending_policy_key: int | None
    wipe_kind: str | None = None  # "device" or "account": an admin asked for a remote wipe
    # The parameters of the device's last Sync and Ping requests as stored (JSON text), read with
    # the device so that a Sync or Ping costs no read of its own for them: see ``remembered``.
    sync_request: str | None = None
    ping_request: str | None = None

    def remembered(self, kind: str) -> dict[str, Any] | None:
        """The parameters of the device's last ``kind`` ("Sync" or "Ping") request, as they were
        when this request began (``remember_request`` stores new ones)."""
        value = self.sync_request if kind == "Sync" else self.ping_request
        return json.loads(value) if value else None


_DEVICE_FIELDS = ("user_name", "device_id", "device_type", "policy_key", "pending_policy_key", "wipe_kind",
                  "sync_request", "ping_request")
# How stale devices.last_seen may be (what the admin sees as "last seen").
LAST_SEEN_PRECISION = timedelta(minutes=1)


def new_policy_key() -> int:
    # PolicyKey is an unsigned 32-bit number in text (MS-ASPROV 2.2.2.42); 0
    # means "none", so keys are drawn from 1..2^31-1 (fits PostgreSQL integer
    # comparisons and every client's parser).
    return secrets.randbelow(2**31 - 1) + 1


async def touch(conn: asyncpg.Connection, user: str, device_id: str, device_type: str,
                user_agent: str | None, version: str | None) -> Device:
    """Record that the device made a request; create it on first contact.

    Read first: a device seen within LAST_SEEN_PRECISION whose type, agent and version are
    unchanged costs one read, not a write (a write per request is a WAL flush per request)."""
    row = await conn.fetchrow(
        "SELECT user_name, device_id, device_type, policy_key, pending_policy_key, wipe_kind, user_agent,"
        " protocol_version, sync_request::text, ping_request::text,"
        " last_seen > now() - $3::interval AS recent FROM devices"
        " WHERE user_name = $1 AND device_id = $2", user, device_id, LAST_SEEN_PRECISION)
    if row is not None and row["recent"] and row["device_type"] == device_type and \
            user_agent in (None, row["user_agent"]) and version in (None, row["protocol_version"]):
        return Device(**{k: row[k] for k in _DEVICE_FIELDS})
    row = await conn.fetchrow(
        """
        INSERT INTO devices (user_name, device_id, device_type, user_agent, protocol_version)
        VALUES ($1, $2, $3, $4, $5)
        ON CONFLICT (user_name, device_id) DO UPDATE
           SET device_type = EXCLUDED.device_type,
               user_agent = COALESCE(EXCLUDED.user_agent, devices.user_agent),
               protocol_version = COALESCE(EXCLUDED.protocol_version, devices.protocol_version),
               last_seen = now()
        RETURNING user_name, device_id, device_type, policy_key, pending_policy_key, wipe_kind,
                  sync_request::text, ping_request::text
        """,
        user, device_id, device_type, user_agent, version,
    )
    return Device(**dict(row))


async def store_information(conn: asyncpg.Connection, user: str, device_id: str, info: dict[str, Any]) -> None:
    await conn.execute(
        "UPDATE devices SET device_information = device_information || $3::jsonb"
        " WHERE user_name = $1 AND device_id = $2",
        user, device_id, json.dumps(info),
    )


async def offer_policy(conn: asyncpg.Connection, user: str, device_id: str) -> int:
    """Phase 1: a temporary key for the phone to acknowledge."""
    key = new_policy_key()
    await conn.execute(
        # A new phase 1 voids the old final key: the phone is provisioning again.
        "UPDATE devices SET pending_policy_key = $3, policy_key = NULL WHERE user_name = $1 AND device_id = $2",
        user, device_id, key,
    )
    return key


async def acknowledge_policy(conn: asyncpg.Connection, user: str, device_id: str, temporary: int) -> int | None:
    """Phase 2: the final key if ``temporary`` is the key offered, else None.

    A repeated acknowledgement of the same temporary key (its answer was lost)
    gets the same final key again.
    """
    async with conn.transaction():
        row = await conn.fetchrow(
            "SELECT policy_key, pending_policy_key FROM devices"
            " WHERE user_name = $1 AND device_id = $2 FOR UPDATE",
            user, device_id,
        )
        if row is None or row["pending_policy_key"] != temporary:
            return None
        if row["policy_key"] is not None:
            return int(row["policy_key"])
        final = new_policy_key()
        await conn.execute(
            "UPDATE devices SET policy_key = $3 WHERE user_name = $1 AND device_id = $2",
            user, device_id, final,
        )
        return final


async def acknowledge_wipe(conn: asyncpg.Connection, user: str, device_id: str, status: int) -> None:
    """Record the phone's answer to the wipe directive (MS-ASPROV 3.2.5.1.2.2)."""
    await conn.execute(
        "UPDATE devices SET wipe_status = $3, wipe_acknowledged_at = now()"
        " WHERE user_name = $1 AND device_id = $2 AND wipe_kind IS NOT NULL", user, device_id, status)


# Requests a phone may later send without their parameters, meaning "the same
# again": the empty or Partial Sync (MS-ASCMD 3.1.5.3) and the Ping without
# HeartbeatInterval or Folders (2.2.3.88.1). Kind -> column of ``devices``.
_REMEMBERED = {"Sync": "sync_request", "Ping": "ping_request"}


async def remember_request(conn: asyncpg.Connection, user: str, device_id: str, kind: str,
                           request: dict[str, Any]) -> None:
    await conn.execute(f"UPDATE devices SET {_REMEMBERED[kind]} = $3::jsonb WHERE user_name = $1 AND device_id = $2",
                       user, device_id, json.dumps(request))
