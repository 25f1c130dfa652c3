"""Making the next generation of a collection (ARCHITECTURE.md, "The sync model").

The device has a set of items (usm.sync_state.items: upstream id -> version
sent). The upstream tells which ids may have changed since the state the
collection last saw (``ItemSource.changes``) or, after a reset or when it
cannot tell, lists the folder again. Those ids join the collection's pending
list. ``plan`` walks the pending list in order, asks the upstream for the
current version of each id (cheap: no bodies), and sorts them:

- in the folder, unknown to the device    -> Add
- known to the device, no longer there    -> Delete
- known, with another version             -> Change
- anything else                           -> nothing to send

until WindowSize commands are found; what is left stays pending and the
device is told MoreAvailable. No database connection is held while the
upstream answers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg

from usm import sync_state
from usm.sync_state import CollectionState, Generation
from usm.upstream import ItemSource, StateTooOld

MAX_CHANGE_ROUNDS = 20  # Email/changes pages of 5,000 ids each; beyond that, list the folder again


@dataclass
class Plan:
    upstream_state: str
    adds: list[str] = field(default_factory=list)  # upstream ids
    changes: list[tuple[int, str]] = field(default_factory=list)  # (item, upstream id)
    deletes: list[int] = field(default_factory=list)  # items
    versions: dict[str, str] = field(default_factory=dict)  # new version of each add and change
    pending_done: list[str] = field(default_factory=list)
    pending_new: list[str] = field(default_factory=list)
    replace_pending: bool = False
    more: bool = False

    def generation(self, state: CollectionState, *, new_key: int, filter_type: int, options: dict[str, Any],
                   response: bytes, added: list[tuple[int, str]]) -> Generation:
        """The Generation to commit once the adds that still exist got item numbers (``added``)."""
        next_item = max([state.next_item] + [n + 1 for n, _ in added])
        return Generation(
            new_key=new_key, upstream_state=self.upstream_state, filter_type=filter_type, options=options,
            next_item=next_item, response=response,
            added=[(n, uid, self.versions[uid]) for n, uid in added],
            changed=[(n, self.versions[uid]) for n, uid in self.changes], deleted=list(self.deletes),
            pending_done=self.pending_done, pending_new=self.pending_new, replace_pending=self.replace_pending)


async def plan(db: asyncpg.Pool, source: ItemSource, key: tuple[str, str, int], state: CollectionState,
               folder_id: str, since: datetime | None, window: int, *, relist: bool = False,
               known_now: dict[str, tuple[int, str] | None] | None = None) -> Plan:
    """Which commands the next generation sends; see the module docstring.

    ``known_now``: items whose state on the device this same request changed
    (the phone's own Change: (item, version it shows); its Delete: None), to
    be used instead of what is stored.
    """
    listed: list[str] | None = None
    new_ids: list[str] = []
    upstream_state = state.upstream_state
    if upstream_state is None or relist:
        upstream_state, listed = await source.listing(folder_id, since)
    else:
        try:
            for _ in range(MAX_CHANGE_ROUNDS):
                changes = await source.changes(upstream_state)
                upstream_state = changes.state
                new_ids.extend(changes.ids)
                if not changes.more:
                    break
            else:
                raise StateTooOld("too many changes to page through")
        except StateTooOld:
            upstream_state, listed = await source.listing(folder_id, since)
    async with db.acquire() as conn:
        stored = [] if listed is not None else await sync_state.pending(conn, *key)
        if listed is None and not stored and not new_ids:
            return Plan(upstream_state)  # nothing changed: the item map is not even read
        known = await sync_state.items(conn, *key)
    for uid, now in (known_now or {}).items():
        if now is None:
            known.pop(uid, None)
        else:
            known[uid] = now
    out = Plan(upstream_state)
    if listed is not None:
        # A listing replaces the pending list; what the device has but the
        # listing lacks is looked at too (deleted, or now outside the filter).
        listed_set = set(listed)
        candidates = listed + [uid for uid in known if uid not in listed_set]
        out.replace_pending = True
    else:
        stored_set = set(stored)
        fresh = [uid for uid in dict.fromkeys(new_ids) if uid not in stored_set]
        candidates = stored + fresh
    await _sort(out, source, folder_id, since, window, candidates, known)
    examined = set(out.pending_done)
    remaining = [uid for uid in candidates if uid not in examined]
    out.more = bool(remaining)
    if out.replace_pending:
        out.pending_new = remaining
    else:
        stored_set = set(stored)
        out.pending_done = [uid for uid in out.pending_done if uid in stored_set]
        out.pending_new = [uid for uid in remaining if uid not in stored_set]
    return out


async def _sort(out: Plan, source: ItemSource, folder_id: str, since: datetime | None, window: int,
                candidates: list[str], known: dict[str, tuple[int, str]]) -> None:
    """Fill ``out`` from ``candidates`` in order until ``window`` commands; ``pending_done``
    lists every id examined."""
    found = 0
    chunk = max(50, window * 2)
    position = 0
    while position < len(candidates) and found < window:
        ids = candidates[position:position + chunk]
        versions = await source.versions(folder_id, ids, since)
        for uid in ids:
            position += 1
            version, mine = versions.get(uid), known.get(uid)
            if version is not None and mine is None:
                out.adds.append(uid)
            elif version is None and mine is not None:
                out.deletes.append(mine[0])
            elif version is not None and mine is not None and version != mine[1]:
                out.changes.append((mine[0], uid))
            else:
                out.pending_done.append(uid)
                continue
            if version is not None:
                out.versions[uid] = version
            out.pending_done.append(uid)
            found += 1
            if found >= window:
                break


async def has_changes(db: asyncpg.Pool, source: ItemSource, key: tuple[str, str, int], state: CollectionState,
                      folder_id: str, since: datetime | None, *, upstream_state: str | None = None) -> bool:
    """Whether the next Sync of the collection would send anything (for Ping and the
    waiting Sync). ``upstream_state``: the user's current state, if known: when the
    collection has seen it and nothing is pending, the upstream is not asked."""
    if state.sync_key == 0 or state.upstream_state is None:
        return True  # the device has yet to sync this folder
    async with db.acquire() as conn:
        if await sync_state.pending_count(conn, *key) > 0:
            return True
    if upstream_state is not None and upstream_state == state.upstream_state:
        return False
    found = await plan(db, source, key, state, folder_id, since, 1)
    return bool(found.adds or found.changes or found.deletes)
