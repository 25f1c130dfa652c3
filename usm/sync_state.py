"""Item sync state in PostgreSQL: collections, their items and pending changes.

A collection is one folder on one device. Its SyncKey names a generation;
``commit`` moves it to the next one, together with the response that
announces it, in one transaction (see usm.sync for how a generation is made).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Any

import asyncpg

from usm.ids import ServerId


@dataclass(frozen=True)
class CollectionState:
    sync_key: int  # 0: the device has not started syncing this folder
    upstream_state: str | None
    filter_type: int
    options: dict[str, Any]
    next_item: int
    replays: int = 0  # the previous key resent this often in a row
    suspect: str | None = None  # an item with failures that the current generation sent alone
    listing: str | None = None  # where the folder's first listing goes on (usm.sync); None: listed whole
    age: float | None = None  # seconds since the current generation was made
    folder_id: str | None = None  # the upstream folder of the CollectionId (usm.folders); None: no folder
    pending: bool = True  # False: the pending list is empty (read with the state: no read of its own)


NEW = CollectionState(0, None, 0, {}, 1)


@dataclass
class Generation:
    """What one Sync changes in a collection, committed all at once."""

    new_key: int
    upstream_state: str | None
    filter_type: int
    options: dict[str, Any]
    next_item: int
    response: bytes  # the answer that announces the new key (resent if the phone lost it)
    added: list[tuple[int, str, str]] = field(default_factory=list)  # (item, upstream id, version)
    changed: list[tuple[int, str]] = field(default_factory=list)  # (item, version)
    deleted: list[int] = field(default_factory=list)
    pending_done: list[str] = field(default_factory=list)  # stored pending rows now dealt with
    pending_new: list[str] = field(default_factory=list)  # appended to the pending list, in order
    client_ids: list[tuple[str, int, str]] = field(default_factory=list)  # (ClientId, item, upstream id) added
    # Items now standing for another upstream object (a revised draft): (item, upstream id, version)
    replaced: list[tuple[int, str, str]] = field(default_factory=list)
    replace_pending: bool = False  # drop every stored pending row first (a new listing)
    suspect: str | None = None  # an item with failures sent alone in this generation (loop protection)
    reset: bool = False  # SyncKey 0: forget every item
    listing: str | None = None  # where the folder's first listing goes on after this generation
    keep_response: bool = False  # the key stays: the stored answer stays, ``response`` only if there is none


def server_id(collection_id: int, item_number: int) -> str:
    """The ServerId of an item: "<collection_id>:<item number>" (never reused in a collection)."""
    return str(ServerId(collection_id, item_number))


def item_number(collection_id: int, server_id: str) -> int | None:
    """The item number in ``server_id`` if it names an item of ``collection_id``."""
    parsed = ServerId.parse(server_id)
    return parsed.item if parsed is not None and parsed.collection == collection_id else None


async def states(conn: asyncpg.Connection, user: str, device_id: str,
                 collection_ids: list[int]) -> dict[int, CollectionState]:
    """Each collection's state (NEW if the device has not synced it), with its upstream folder and
    whether its pending list has ids: all a Sync that finds nothing needs, in one statement (not
    the stored answer, which can be large: ``count_replay`` reads it when the phone lost it)."""
    rows = await conn.fetch(
        "SELECT want.id AS collection_id, f.upstream_id, c.sync_key, c.upstream_state, c.filter_type, c.options,"
        " c.next_item, c.replays, c.suspect, c.listing,"
        " extract(epoch FROM now() - c.updated_at)::float8 AS age,"
        " EXISTS (SELECT 1 FROM collection_pending p WHERE p.user_name = $1 AND p.device_id = $2"
        "         AND p.collection_id = want.id) AS pending"
        " FROM unnest($3::integer[]) AS want(id)"
        " LEFT JOIN folder_ids f ON f.user_name = $1 AND f.server_id = want.id"
        " LEFT JOIN collections c ON c.user_name = $1 AND c.device_id = $2 AND c.collection_id = want.id",
        user, device_id, collection_ids)
    found = {}
    for r in rows:
        if r["sync_key"] is None:
            found[r["collection_id"]] = replace(NEW, folder_id=r["upstream_id"], pending=r["pending"])
            continue
        found[r["collection_id"]] = CollectionState(
            r["sync_key"], r["upstream_state"], r["filter_type"], json.loads(r["options"]), r["next_item"],
            r["replays"], r["suspect"], r["listing"], r["age"],
            folder_id=r["upstream_id"], pending=r["pending"])
    return {cid: found[cid] for cid in collection_ids}


async def items(conn: asyncpg.Connection, user: str, device_id: str, collection_id: int) -> dict[str, tuple[int, str]]:
    """upstream id -> (item number, version last sent)."""
    rows = await conn.fetch(
        "SELECT item, upstream_id, version FROM collection_items"
        " WHERE user_name = $1 AND device_id = $2 AND collection_id = $3", user, device_id, collection_id)
    return {r["upstream_id"]: (r["item"], r["version"]) for r in rows}


async def item(conn: asyncpg.Connection, user: str, device_id: str, collection_id: int,
               item_number: int) -> str | None:
    """The upstream id of one item the device has, or None."""
    found: str | None = await conn.fetchval(
        "SELECT upstream_id FROM collection_items WHERE user_name = $1 AND device_id = $2"
        " AND collection_id = $3 AND item = $4", user, device_id, collection_id, item_number)
    return found


async def client_ids(conn: asyncpg.Connection, user: str, device_id: str, collection_id: int,
                     ids: list[str]) -> dict[str, int]:
    """ClientId -> item number of the phone's own Adds that are committed."""
    rows = await conn.fetch(
        "SELECT client_id, item FROM collection_client_ids WHERE user_name = $1 AND device_id = $2"
        " AND collection_id = $3 AND client_id = ANY($4::text[])", user, device_id, collection_id, ids)
    return {r["client_id"]: r["item"] for r in rows}


async def items_of(conn: asyncpg.Connection, user: str, device_id: str, collection_id: int,
                   upstream_ids: list[str]) -> dict[str, tuple[int, str]]:
    """``items`` for these upstream ids only."""
    rows = await conn.fetch(
        "SELECT item, upstream_id, version FROM collection_items WHERE user_name = $1 AND device_id = $2"
        " AND collection_id = $3 AND upstream_id = ANY($4::text[])", user, device_id, collection_id, upstream_ids)
    return {r["upstream_id"]: (r["item"], r["version"]) for r in rows}


async def items_by_number(conn: asyncpg.Connection, user: str, device_id: str, collection_id: int,
                          numbers: list[int]) -> dict[int, tuple[str, str]]:
    """item number -> (upstream id, version last sent), for these items only."""
    rows = await conn.fetch(
        "SELECT item, upstream_id, version FROM collection_items WHERE user_name = $1 AND device_id = $2"
        " AND collection_id = $3 AND item = ANY($4::integer[])", user, device_id, collection_id, numbers)
    return {r["item"]: (r["upstream_id"], r["version"]) for r in rows}


async def pending(conn: asyncpg.Connection, user: str, device_id: str, collection_id: int, *,
                  limit: int | None = None, after: int | None = None) -> list[tuple[str, int]]:
    """The pending list in order, as (upstream id, position): ``limit`` of them after ``after``."""
    rows = await conn.fetch(
        "SELECT upstream_id, position FROM collection_pending WHERE user_name = $1 AND device_id = $2"
        " AND collection_id = $3 AND position > $4 ORDER BY position LIMIT $5",
        user, device_id, collection_id, after if after is not None else -(2**62), limit)
    return [(r["upstream_id"], r["position"]) for r in rows]


async def pending_among(conn: asyncpg.Connection, user: str, device_id: str, collection_id: int,
                        upstream_ids: list[str]) -> set[str]:
    """Which of these ids are on the pending list."""
    rows = await conn.fetch(
        "SELECT upstream_id FROM collection_pending WHERE user_name = $1 AND device_id = $2"
        " AND collection_id = $3 AND upstream_id = ANY($4::text[])", user, device_id, collection_id, upstream_ids)
    return {r["upstream_id"] for r in rows}


async def commit(conn: asyncpg.Connection, user: str, device_id: str, collection_id: int, *,
                 expected_key: int, generation: Generation) -> bool:
    """Move the collection from ``expected_key`` to ``generation.new_key``.

    Atomic; returns False, changing nothing, if the collection is no longer at
    ``expected_key`` (a concurrent request of the same device moved it).
    SyncKey 0 (``generation.reset``) is accepted from any state.
    """
    g = generation
    key = (user, device_id, collection_id)
    async with conn.transaction():
        current = await conn.fetchval(
            "SELECT sync_key FROM collections WHERE user_name = $1 AND device_id = $2 AND collection_id = $3"
            " FOR UPDATE", *key)
        if not g.reset and (current or 0) != expected_key:
            return False
        await conn.execute(
            "INSERT INTO collections (user_name, device_id, collection_id, sync_key, upstream_state, filter_type,"
            " options, next_item, last_response, suspect, listing)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8, $9, $10, $11)"
            " ON CONFLICT (user_name, device_id, collection_id) DO UPDATE SET sync_key = EXCLUDED.sync_key,"
            " upstream_state = EXCLUDED.upstream_state, filter_type = EXCLUDED.filter_type,"
            " options = EXCLUDED.options, next_item = EXCLUDED.next_item,"
            " last_response = CASE WHEN $12 AND octet_length(collections.last_response) > 0"
            "   THEN collections.last_response ELSE EXCLUDED.last_response END,"
            " replays = 0, suspect = EXCLUDED.suspect, listing = EXCLUDED.listing, updated_at = now()",
            *key, g.new_key, g.upstream_state, g.filter_type, json.dumps(g.options), g.next_item, g.response,
            g.suspect, g.listing, g.keep_response)
        if g.reset:
            await conn.execute("DELETE FROM collection_items WHERE user_name = $1 AND device_id = $2"
                               " AND collection_id = $3", *key)
            await conn.execute("DELETE FROM moved_items WHERE user_name = $1 AND device_id = $2"
                               " AND collection_id = $3", *key)
            await conn.execute("DELETE FROM collection_client_ids WHERE user_name = $1 AND device_id = $2"
                               " AND collection_id = $3", *key)
        if g.reset or g.replace_pending:
            await conn.execute("DELETE FROM collection_pending WHERE user_name = $1 AND device_id = $2"
                               " AND collection_id = $3", *key)
        if g.replaced:
            await conn.execute(
                "UPDATE collection_items AS i SET upstream_id = r.upstream_id, version = r.version"
                " FROM unnest($4::integer[], $5::text[], $6::text[]) AS r(item, upstream_id, version)"
                " WHERE i.user_name = $1 AND i.device_id = $2 AND i.collection_id = $3 AND i.item = r.item",
                *key, [r[0] for r in g.replaced], [r[1] for r in g.replaced], [r[2] for r in g.replaced])
        if g.deleted:
            await conn.execute("DELETE FROM collection_items WHERE user_name = $1 AND device_id = $2"
                               " AND collection_id = $3 AND item = ANY($4::integer[])", *key, g.deleted)
        if g.added:
            await conn.execute(
                "INSERT INTO collection_items (user_name, device_id, collection_id, item, upstream_id, version)"
                " SELECT $1, $2, $3, * FROM unnest($4::integer[], $5::text[], $6::text[])",
                *key, [a[0] for a in g.added], [a[1] for a in g.added], [a[2] for a in g.added])
        if g.client_ids:
            await conn.execute(
                "INSERT INTO collection_client_ids (user_name, device_id, collection_id, client_id, item, upstream_id)"
                " SELECT $1, $2, $3, * FROM unnest($4::text[], $5::integer[], $6::text[]) ON CONFLICT DO NOTHING",
                *key, [c[0] for c in g.client_ids], [c[1] for c in g.client_ids], [c[2] for c in g.client_ids])
        if g.changed:
            await conn.execute(
                "UPDATE collection_items AS i SET version = c.version"
                " FROM unnest($4::integer[], $5::text[]) AS c(item, version)"
                " WHERE i.user_name = $1 AND i.device_id = $2 AND i.collection_id = $3 AND i.item = c.item",
                *key, [c[0] for c in g.changed], [c[1] for c in g.changed])
        if g.pending_done and not g.replace_pending:
            await conn.execute("DELETE FROM collection_pending WHERE user_name = $1 AND device_id = $2"
                               " AND collection_id = $3 AND upstream_id = ANY($4::text[])", *key, g.pending_done)
        if g.pending_new:
            await conn.execute(
                "INSERT INTO collection_pending (user_name, device_id, collection_id, upstream_id, position)"
                " SELECT $1, $2, $3, id, base.p + n FROM unnest($4::text[]) WITH ORDINALITY AS u(id, n),"
                " (SELECT coalesce(max(position), 0) AS p FROM collection_pending"
                "  WHERE user_name = $1 AND device_id = $2 AND collection_id = $3) AS base"
                " ON CONFLICT DO NOTHING", *key, g.pending_new)
    return True


async def move_item(conn: asyncpg.Connection, user: str, device_id: str, source: int, item_number: int,
                    destination: int, upstream_id: str, version: str) -> int:
    """Record that the device's item moved to another collection (MoveItems):
    it leaves the source's items and joins the destination's under a new item
    number, so neither folder's next Sync sends it again. The new number."""
    async with conn.transaction():
        await conn.execute(
            "DELETE FROM collection_items WHERE user_name = $1 AND device_id = $2 AND collection_id = $3"
            " AND item = $4", user, device_id, source, item_number)
        # A folder the device never synced gets a row at key 0: its first Sync starts over anyway.
        await conn.execute(
            "INSERT INTO collections (user_name, device_id, collection_id, sync_key, last_response)"
            " VALUES ($1, $2, $3, 0, '') ON CONFLICT DO NOTHING", user, device_id, destination)
        number = await conn.fetchval(
            "UPDATE collections SET next_item = next_item + 1 WHERE user_name = $1 AND device_id = $2"
            " AND collection_id = $3 RETURNING next_item - 1", user, device_id, destination)
        await conn.execute(
            "INSERT INTO collection_items (user_name, device_id, collection_id, item, upstream_id, version)"
            " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (user_name, device_id, collection_id, upstream_id)"
            " DO UPDATE SET version = EXCLUDED.version", user, device_id, destination, number, upstream_id, version)
        moved = await conn.fetchval(
            "SELECT item FROM collection_items WHERE user_name = $1 AND device_id = $2 AND collection_id = $3"
            " AND upstream_id = $4", user, device_id, destination, upstream_id)
        # The tombstone a retried MoveItems finds (sql/009_moved_items.sql); a day is long enough.
        await conn.execute(
            "DELETE FROM moved_items WHERE user_name = $1 AND device_id = $2 AND moved_at < now() - interval '1 day'",
            user, device_id)
        await conn.execute(
            "INSERT INTO moved_items (user_name, device_id, collection_id, item, destination_id, destination_item)"
            " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (user_name, device_id, collection_id, item) DO UPDATE"
            " SET destination_id = EXCLUDED.destination_id, destination_item = EXCLUDED.destination_item,"
            " moved_at = now()", user, device_id, source, item_number, destination, moved)
        return int(moved)


async def moved_to(conn: asyncpg.Connection, user: str, device_id: str, source: int,
                   item_number: int) -> tuple[int, int] | None:
    """(destination collection, item) where the device moved this item within the last day."""
    row = await conn.fetchrow(
        "SELECT destination_id, destination_item FROM moved_items WHERE user_name = $1 AND device_id = $2"
        " AND collection_id = $3 AND item = $4", user, device_id, source, item_number)
    return (row["destination_id"], row["destination_item"]) if row else None


# Loop protection: conversions an item may fail before it is skipped.
MAX_ITEM_FAILURES = 3


async def forget_failures(conn: asyncpg.Connection, user: str, device_id: str, collection_id: int,
                          upstream_id: str) -> None:
    """The phone took the answer that held this item: it is no suspect any more."""
    await conn.execute(
        "DELETE FROM item_failures WHERE user_name = $1 AND device_id = $2 AND collection_id = $3"
        " AND upstream_id = $4", user, device_id, collection_id, upstream_id)


async def count_replay(conn: asyncpg.Connection, user: str, device_id: str,
                       collection_id: int) -> tuple[int, bytes | None]:
    """The phone resent the previous key once more: how often in a row now, and the answer it
    lost (None: there is none to resend)."""
    row = await conn.fetchrow(
        "UPDATE collections SET replays = replays + 1 WHERE user_name = $1 AND device_id = $2"
        " AND collection_id = $3 RETURNING replays, last_response", user, device_id, collection_id)
    if row is None:
        return 0, None
    return int(row["replays"]), bytes(row["last_response"]) or None


async def failures(conn: asyncpg.Connection, user: str, device_id: str, collection_id: int,
                   upstream_ids: list[str]) -> dict[str, bool]:
    """Of these items, the ones that failed before: upstream id -> skipped."""
    rows = await conn.fetch(
        "SELECT upstream_id, skipped FROM item_failures WHERE user_name = $1 AND device_id = $2"
        " AND collection_id = $3 AND upstream_id = ANY($4::text[])", user, device_id, collection_id, upstream_ids)
    return {r["upstream_id"]: r["skipped"] for r in rows}


async def record_failures(conn: asyncpg.Connection, user: str, device_id: str, collection_id: int,
                          errors: dict[str, str]) -> set[str]:
    """Count a failed attempt for each item of ``errors`` (upstream id -> reason);
    the ones that have now failed MAX_ITEM_FAILURES times (to be skipped)."""
    rows = await conn.fetch(
        "INSERT INTO item_failures (user_name, device_id, collection_id, upstream_id, failures, last_error, skipped)"
        " SELECT $1, $2, $3, u.id, 1, u.error, 1 >= $6 FROM unnest($4::text[], $5::text[]) AS u(id, error)"
        " ON CONFLICT (user_name, device_id, collection_id, upstream_id) DO UPDATE"
        " SET failures = item_failures.failures + 1, last_error = EXCLUDED.last_error, last_failed = now(),"
        "     skipped = item_failures.failures + 1 >= $6"
        " RETURNING upstream_id, skipped",
        user, device_id, collection_id, list(errors), list(errors.values()), MAX_ITEM_FAILURES)
    return {r["upstream_id"] for r in rows if r["skipped"]}
