"""A collection to test the sync engine on, in the real database."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg

from usm import devices, sync_state
from usm.sync_state import Generation


async def new_collection(conn: asyncpg.Connection, **generation: Any) -> tuple[str, str, int]:
    """A new user's phone whose collection 5 is at SyncKey 1, as ``generation`` (the
    Generation fields beyond the key) made it. Its key: (user, device, collection)."""
    key = (f"{uuid.uuid4().hex[:8]}@example.com", "DEV1", 5)
    await devices.touch(conn, key[0], key[1], "Phone", None, "14.1")
    assert await sync_state.commit(conn, *key, expected_key=0, generation=Generation(
        new_key=1, filter_type=0, options={}, response=b"", reset=True, **generation))
    return key
