"""A page of a big folder costs what the page looks at (usm.sync.plan on the real database):
the pending list is read a page at a time, the item map only for the ids looked at, and the
order (stored pending first, then what the upstream says is new) and the bookkeeping
(what is done, what joins the list, MoreAvailable) are those of reading it whole."""

from __future__ import annotations

import asyncio
import json
import random
from collections import Counter
from datetime import datetime

import pytest

from tests.usm.collections import new_collection
from usm import database, sync, sync_state
from usm.sync_state import CollectionState
from usm.upstream import Changes, ListingPage

pytestmark = pytest.mark.postgres


class Source:
    """Every id exists upstream with version "v"; ``new`` is what /changes reports."""

    def __init__(self, new: list[str]) -> None:
        self.new, self.asked = new, 0

    async def changes(self, state: str) -> Changes:
        return Changes(state="s2", ids=list(self.new), more=False)

    async def versions(self, folder_id: str, ids: list[str], since: datetime | None) -> dict[str, str]:
        self.asked += len(ids)
        return {uid: "v" for uid in ids}


def test_pages_read_the_pending_list_a_page_at_a_time(database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sync, "PENDING_PAGE", 7)
    stored = [f"p{n:03}" for n in range(30)]

    async def run() -> list[object]:
        pool = await database.connect(database_url, min_size=1, max_size=2)
        try:
            async with pool.acquire() as conn:
                # The device has k1 and k2 (k2 in an old version); 30 ids are pending.
                key = await new_collection(conn, upstream_state="s1", next_item=3,
                                           added=[(1, "k1", "v"), (2, "k2", "old")], pending_new=stored)
            state = CollectionState(1, "s1", 0, {}, 3)
            # /changes names a pending id far down the list (p025), a known one (k2) and a new one.
            source = Source(["p025", "k2", "n1"])
            small = await sync.plan(pool, source, key, state, "f", None, 10)  # type: ignore[arg-type]
            asked_small = source.asked
            whole = await sync.plan(pool, Source(["p025", "k2", "n1"]), key, state, "f", None, 100)  # type: ignore[arg-type]
            return [small, asked_small, whole]
        finally:
            await pool.close()

    small, asked_small, whole = asyncio.run(run())
    assert small.adds == stored[:10] and small.more
    assert asked_small <= 14  # two pages of 7, not 30 ids
    assert small.pending_done == stored[:10] and small.pending_new == ["k2", "n1"]  # p025 is pending already
    # A window beyond the list: every page, then the new ids; nothing twice.
    assert whole.adds == stored + ["n1"]
    assert whole.changes == [(2, "k2")]
    assert whole.pending_done == stored and whole.pending_new == [] and not whole.more


class Folder:
    """A folder upstream for the first-sync listing: ids newest first (by when they came),
    versions, a log of changes, and pages that go on after the last listed id still there
    (what the JMAP driver does with Email/query anchors)."""

    def __init__(self, count: int) -> None:
        self.came = {f"m{n:04}": n for n in range(count)}
        self.version = {uid: "v0" for uid in self.came}
        self.log: list[tuple[int, str]] = []
        self.pages = 0

    def order(self) -> list[str]:
        return sorted(self.came, key=lambda uid: -self.came[uid])

    def state(self) -> str:
        return str(len(self.log))

    def touch(self, uid: str) -> None:
        self.log.append((len(self.log) + 1, uid))

    async def listing(self, folder_id: str, since: datetime | None) -> tuple[str, list[str]]:
        return self.state(), self.order()

    async def listing_page(self, folder_id: str, since: datetime | None, cursor: str | None,
                           limit: int) -> ListingPage:
        self.pages += 1
        order = self.order()
        anchors = json.loads(cursor) if cursor else []
        start = 0
        for anchor in reversed(anchors):
            if anchor in self.came:
                start = order.index(anchor) + 1
                break
        ids = order[start:start + limit]
        more = start + limit < len(order)
        return ListingPage(self.state() if cursor is None else None, ids,
                           json.dumps((anchors + ids)[-3:]) if more else None)

    async def changes(self, state: str) -> Changes:
        return Changes(self.state(), list(dict.fromkeys(uid for n, uid in self.log if n > int(state))))

    async def versions(self, folder_id: str, ids: list[str], since: datetime | None) -> dict[str, str]:
        return {uid: self.version[uid] for uid in ids if uid in self.came}


@pytest.mark.parametrize("changes_every", [0.0, 60.0], ids=["changes-every-page", "changes-after-the-listing"])
def test_a_first_sync_lists_the_folder_a_page_at_a_time_and_loses_nothing(
        database_url: str, monkeypatch: pytest.MonkeyPatch, changes_every: float) -> None:
    """Window 7 over a folder of 60 that changes between every two pages: the last message
    sent deleted (the listing's anchor; three in a row at times), a new one on top, an old one
    flagged, one moved in among the old ones. At the end the device has exactly the folder,
    each message added once, and the pending list never held more than a listing page (10
    here) and the changes not yet looked at."""
    monkeypatch.setattr(sync, "LISTING_PAGE", 10)
    monkeypatch.setattr(sync, "LISTING_CHANGES_EVERY", changes_every)  # 60: not while the listing is under way
    folder = Folder(60)
    rng = random.Random(7)

    async def run() -> tuple[dict[str, tuple[int, str]], Counter[str], int, int]:
        pool = await database.connect(database_url, min_size=1, max_size=2)
        adds: Counter[str] = Counter()
        most_pending = 0
        rounds = 0
        try:
            async with pool.acquire() as conn:
                key = await new_collection(conn, upstream_state=None, next_item=1)
            fresh = 1000
            while True:
                rounds += 1
                assert rounds < 60
                async with pool.acquire() as conn:
                    [state] = (await sync_state.states(conn, key[0], key[1], [key[2]])).values()
                plan = await sync.plan(pool, folder, key, state, "f", None, 7)  # type: ignore[arg-type]
                adds.update(plan.adds)
                added = [(state.next_item + i, uid) for i, uid in enumerate(plan.adds)]
                async with pool.acquire() as conn:
                    assert await sync_state.commit(conn, *key, expected_key=state.sync_key, generation=plan.generation(
                        state, new_key=state.sync_key + 1, filter_type=0, options={}, response=b"", added=added))
                    most_pending = max(most_pending, len(await sync_state.pending(conn, *key)))
                if not plan.more:  # the device stops asking: it must have everything now
                    break
                if rounds < 12:  # the folder changes while the device takes it
                    for uid in plan.adds[-(3 if rounds % 4 == 0 else 1):]:
                        if uid in folder.came:
                            del folder.came[uid]
                            folder.touch(uid)
                    fresh += 1
                    folder.came[f"n{fresh}"], folder.version[f"n{fresh}"] = fresh, "v0"
                    folder.touch(f"n{fresh}")
                    old = rng.choice(folder.order()[-20:])
                    folder.version[old] = "flagged"
                    folder.touch(old)
                    moved = f"moved{rounds}"
                    folder.came[moved], folder.version[moved] = rng.randrange(0, 30) + 0.5, "v0"
                    folder.touch(moved)
            async with pool.acquire() as conn:
                has = await sync_state.items(conn, *key)
            return has, adds, most_pending, rounds
        finally:
            await pool.close()

    has, adds, most_pending, rounds = asyncio.run(run())
    assert {uid: version for uid, (_, version) in has.items()} == {uid: folder.version[uid] for uid in folder.came}
    assert max(adds.values()) == 1
    # A listing page and the changes of a round (of all 11 rounds, when they wait for the listing's end).
    assert 0 < most_pending <= 10 + 6 * (1 if changes_every == 0 else 11)


def test_a_listing_that_never_ends_costs_one_sync_a_bounded_number_of_pages(database_url: str) -> None:
    """An upstream whose listing keeps naming ids the device has (and never says it ended):
    one Sync reads MAX_LISTING_PAGES pages at most and says MoreAvailable."""
    class Endless(Folder):
        async def listing_page(self, folder_id: str, since: datetime | None, cursor: str | None,
                               limit: int) -> ListingPage:
            self.pages += 1
            return ListingPage(self.state() if cursor is None else None, ["m0000", "m0001"], "again")

    folder = Endless(2)

    async def run() -> sync.Plan:
        pool = await database.connect(database_url, min_size=1, max_size=2)
        try:
            async with pool.acquire() as conn:
                key = await new_collection(conn, upstream_state="0", next_item=3,
                                           added=[(1, "m0000", "v0"), (2, "m0001", "v0")], listing="again")
                [state] = (await sync_state.states(conn, key[0], key[1], [key[2]])).values()
            return await sync.plan(pool, folder, key, state, "f", None, 10)  # type: ignore[arg-type]
        finally:
            await pool.close()

    plan = asyncio.run(run())
    assert not plan.adds and plan.more and plan.listing == "again"
    assert folder.pages == sync.MAX_LISTING_PAGES
