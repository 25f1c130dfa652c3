"""Making the next generation of a collection (ARCHITECTURE.md, "The sync model").

The device has a set of items (usm.sync_state.items: upstream id -> version
sent). The upstream tells which ids may have changed since the state the
collection last saw (``ItemSource.changes``) or, when it cannot tell or the
filter changed, lists the folder again. Those ids join the collection's pending
list. A folder's first sync lists it a page at a time instead, newest first
(``ItemSource.listing_page``): the collection keeps the listing's cursor, and a
Sync with room left in its window takes the next page. ``plan`` walks the
pending list in order, then the ids the upstream says are new, then the listing,
asks the upstream for the current version of each id (cheap: no bodies), and
sorts them:

- in the folder, unknown to the device    -> Add
- known to the device, no longer there    -> Delete
- known, with another version             -> Change
- anything else                           -> nothing to send

until WindowSize commands are found; what is left stays pending and the
device is told MoreAvailable. No database connection is held while the
upstream answers.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg

from usm import sync_state
from usm.sync_state import CollectionState, Generation
from usm.upstream import ItemSource, StateTooOld, UpstreamError

MAX_CHANGE_ROUNDS = 20  # Email/changes pages of 5,000 ids each; beyond that, list the folder again
PENDING_PAGE = 1000  # pending ids read at a time
EVERYTHING_FROM = 100_000  # a window this large means "count them all" (GetItemEstimate): big chunks
WITHOUT_WINDOW = 10**9
# While a first listing is under way the upstream is asked what changed at most this often
# (seconds): a phone takes a page every ~200 ms, and Cyrus 3.6's Email/changes costs in proportion
# to the mailbox (36 ms at 100,000 messages, 9 ms at 1,000), a third of such a page's upstream time.
LISTING_CHANGES_EVERY = 2.0
MAX_LISTING_PAGES = 10  # listing pages one Sync reads at most (its time stays bounded; GetItemEstimate reads all)
LISTING_PAGE = 2000  # ids a page of a first listing asks for (what the window leaves waits on the pending list)


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
    listing: str | None = None  # where the folder's first listing goes on (ItemSource.listing_page)

    def generation(self, state: CollectionState, *, new_key: int, filter_type: int, options: dict[str, Any],
                   response: bytes, added: list[tuple[int, str]]) -> Generation:
        """The Generation to commit once the adds that still exist got item numbers (``added``)."""
        next_item = max([state.next_item] + [n + 1 for n, _ in added])
        return Generation(
            new_key=new_key, upstream_state=self.upstream_state, filter_type=filter_type, options=options,
            next_item=next_item, response=response,
            added=[(n, uid, self.versions[uid]) for n, uid in added],
            changed=[(n, self.versions[uid]) for n, uid in self.changes], deleted=list(self.deletes),
            pending_done=self.pending_done, pending_new=self.pending_new, replace_pending=self.replace_pending,
            listing=self.listing)


async def plan(db: asyncpg.Pool, source: ItemSource, key: tuple[str, str, int], state: CollectionState,
               folder_id: str, since: datetime | None, window: int, *, relist: bool = False,
               known_now: dict[str, tuple[int, str] | None] | None = None, current: str | None = None) -> Plan:
    """Which commands the next generation sends; see the module docstring.

    ``current``: the upstream's state now, where a live event feed tells it (usm.push.PushHub.current):
    a collection that has seen it asks the upstream nothing.

    ``known_now``: items whose state on the device this same request changed
    (the phone's own Change: (item, version it shows); its Delete: None), to
    be used instead of what is stored.

    A page costs what it looks at, not what the folder holds: a folder's first sync lists
    it a page at a time (``ItemSource.listing_page``; the collection keeps the cursor), the
    pending list is read PENDING_PAGE ids at a time, and the item map only for the ids
    looked at (a listing again, after a filter change or a state the upstream forgot,
    still reads all of it: what the device has but the listing lacks is deleted).
    """
    listed: list[str] | None = None
    new_ids: list[str] = []
    upstream_state = state.upstream_state
    cursor = state.listing
    first_page: list[str] | None = None
    paused = False  # the upstream was not asked what changed: the device must ask again
    if relist:
        upstream_state, listed = await source.listing(folder_id, since)
    elif upstream_state is None:
        # The first sync: the newest page now, the rest as the device asks for it.
        start = await source.listing_page(folder_id, since, None, LISTING_PAGE)
        if start.state is None:
            raise UpstreamError("the first page of a listing came without its state")
        upstream_state, first_page, cursor = start.state, start.ids, start.cursor
    elif current is not None and current == upstream_state:
        pass  # nothing moved upstream since this collection's state
    elif cursor is not None and state.age is not None and state.age < LISTING_CHANGES_EVERY:
        paused = True  # the phone is taking a first listing page by page: what changed waits a moment
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
    if listed is not None:
        return await _plan_listing(db, source, key, folder_id, since, window, upstream_state, listed, known_now)

    page: list[tuple[str, int]] = []
    unique_new = list(dict.fromkeys(new_ids))
    already: set[str] = set()
    # (A first sync has no pending list: SyncKey 0 dropped it. The state tells whether one is empty.)
    if first_page is None and state.pending:
        async with db.acquire() as conn:
            page = await sync_state.pending(conn, *key, limit=PENDING_PAGE)
            already = {uid for uid, _ in page}
            if len(page) == PENDING_PAGE and unique_new:
                already |= await sync_state.pending_among(conn, *key, unique_new)
    if first_page is None and not page and not new_ids and cursor is None:
        return Plan(upstream_state)  # nothing changed: the item map is not even read
    complete = len(page) < PENDING_PAGE
    fresh = [uid for uid in unique_new if uid not in already]

    async def known_of(ids: list[str]) -> dict[str, tuple[int, str]]:
        async with db.acquire() as conn:
            found = await sync_state.items_of(conn, *key, ids)
        return _overridden(found, ids, known_now)

    out = Plan(upstream_state, listing=cursor, replace_pending=first_page is not None)
    stored: list[str] = []  # the pending ids read so far, in order
    found = 0
    while page:
        segment = [uid for uid, _ in page]
        stored.extend(segment)
        found += await _sort(out, source, folder_id, since, window - found, segment, known_of)
        if found >= window or complete:
            break
        async with db.acquire() as conn:
            page = await sync_state.pending(conn, *key, limit=PENDING_PAGE, after=page[-1][1])
        complete = len(page) < PENDING_PAGE
    if found < window and fresh:
        found += await _sort(out, source, folder_id, since, window - found, fresh, known_of)
    examined = set(out.pending_done)
    rest: list[str] = []  # listed but not looked at: they join the pending list
    if found < window and (first_page is not None or cursor is not None):
        rest = await _list_on(out, source, folder_id, since, window - found, first_page or [],
                              examined | set(stored) | set(fresh), known_of,
                              max_pages=MAX_LISTING_PAGES if window < EVERYTHING_FROM else 1 << 30)
        examined = set(out.pending_done)
    stored_set = set(stored)
    out.pending_done = [uid for uid in out.pending_done if uid in stored_set]
    out.pending_new = [uid for uid in fresh if uid not in examined] + rest
    out.more = bool(out.pending_new) or not complete or out.listing is not None or paused \
        or any(uid not in examined for uid in stored)
    return out


async def _list_on(out: Plan, source: ItemSource, folder_id: str, since: datetime | None, window: int,
                   ids: list[str], seen: set[str],
                   known_of: Callable[[list[str]], Awaitable[dict[str, tuple[int, str]]]], *,
                   max_pages: int) -> list[str]:
    """Fill the rest of the window from the folder's listing: ``ids`` (a page already read),
    then pages from ``out.listing`` on; ids already looked at (``seen``) are skipped. What was
    listed but not looked at (the window is full), to join the pending list."""
    found = 0
    for _ in range(max_pages):
        candidates = [uid for uid in dict.fromkeys(ids) if uid not in seen]
        found += await _sort(out, source, folder_id, since, window - found, candidates, known_of)
        seen.update(out.pending_done)
        if found >= window:
            return [uid for uid in candidates if uid not in seen]
        if out.listing is None:
            return []
        more = await source.listing_page(folder_id, since, out.listing, LISTING_PAGE)
        out.listing, ids = more.cursor, more.ids
    # Pages that brought nothing new (all sent already through the changes): the next Sync goes on.
    return [uid for uid in dict.fromkeys(ids) if uid not in seen]


async def _plan_listing(db: asyncpg.Pool, source: ItemSource, key: tuple[str, str, int], folder_id: str,
                        since: datetime | None, window: int, upstream_state: str, listed: list[str],
                        known_now: dict[str, tuple[int, str] | None] | None) -> Plan:
    """A listing replaces the pending list; what the device has but the listing lacks is
    looked at too (deleted, or now outside the filter)."""
    async with db.acquire() as conn:
        known = await sync_state.items(conn, *key)
    known = _overridden(known, list(known_now or ()), known_now)
    listed_set = set(listed)
    candidates = listed + [uid for uid in known if uid not in listed_set]

    async def known_of(ids: list[str]) -> dict[str, tuple[int, str]]:
        return {uid: known[uid] for uid in ids if uid in known}

    out = Plan(upstream_state, replace_pending=True)
    await _sort(out, source, folder_id, since, window, candidates, known_of)
    examined = set(out.pending_done)
    out.pending_new = [uid for uid in candidates if uid not in examined]
    out.more = bool(out.pending_new)
    return out


def _overridden(found: dict[str, tuple[int, str]], ids: list[str],
                known_now: dict[str, tuple[int, str] | None] | None) -> dict[str, tuple[int, str]]:
    for uid in ids:
        if known_now and uid in known_now:
            now = known_now[uid]
            if now is None:
                found.pop(uid, None)
            else:
                found[uid] = now
    return found


async def _sort(out: Plan, source: ItemSource, folder_id: str, since: datetime | None, window: int,
                candidates: list[str],
                known_of: Callable[[list[str]], Awaitable[dict[str, tuple[int, str]]]]) -> int:
    """Fill ``out`` from ``candidates`` in order until ``window`` commands; ``pending_done``
    lists every id examined. How many commands it found."""
    found = 0
    position = 0
    while position < len(candidates) and found < window:
        # As many as the window has room for: each an Add in a first sync, so none is read twice.
        chunk = max(50, window - found) if window < EVERYTHING_FROM else 500
        ids = candidates[position:position + chunk]
        versions = await source.versions(folder_id, ids, since)
        known = await known_of(ids)
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
    return found


async def estimate(db: asyncpg.Pool, source: ItemSource, key: tuple[str, str, int], state: CollectionState,
                   folder_id: str, since: datetime | None, *, relist: bool = False) -> int:
    """How many commands the Syncs to come would bring, in all (GetItemEstimate); nothing is kept.

    A folder whose first listing has not begun (the Sync after SyncKey 0: the device has none of
    its items) brings each id of the listing as an Add: they are counted without reading a
    version (100,000 messages: the listing's queries, not 100,000 versions). Otherwise the plan
    of one Sync without a window."""
    if state.upstream_state is None:
        _, listed = await source.listing(folder_id, since)
        return len(set(listed))
    found = await plan(db, source, key, state, folder_id, since, WITHOUT_WINDOW, relist=relist)
    return len(found.adds) + len(found.changes) + len(found.deletes)


async def has_changes(db: asyncpg.Pool, source: ItemSource, key: tuple[str, str, int], state: CollectionState,
                      folder_id: str, since: datetime | None, *, upstream_state: str | None = None) -> bool:
    """Whether the next Sync of the collection would send anything (for Ping and the
    waiting Sync). ``upstream_state``: the user's current state, if known: when the
    collection has seen it and nothing is pending, the upstream is not asked."""
    if state.sync_key == 0 or state.upstream_state is None or state.listing is not None:
        return True  # the device has yet to sync (all of) this folder
    if state.pending:  # (read with the state: sync_state.states)
        return True
    if upstream_state is not None and upstream_state == state.upstream_state:
        return False
    found = await plan(db, source, key, state, folder_id, since, 1)
    return bool(found.adds or found.changes or found.deletes)
