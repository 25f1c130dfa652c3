"""A page of a big folder costs what the page looks at (usm.sync.plan on the real database):
the pending list is read a page at a time, the item map only for the ids looked at, and the
order (stored pending first, then what the upstream says is new) and the bookkeeping
(what is done, what joins the list, MoreAvailable) are those of reading it whole."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime

import pytest

from usm import database, devices, sync, sync_state
from usm.sync_state import CollectionState, Generation
from usm.upstream import Changes

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
        key = (f"{uuid.uuid4().hex[:8]}@example.com", "DEV1", 5)
        try:
            async with pool.acquire() as conn:
                await devices.touch(conn, key[0], key[1], "Phone", None, "14.1")
                # The device has k1 and k2 (k2 in an old version); 30 ids are pending.
                assert await sync_state.commit(conn, *key, expected_key=0, generation=Generation(
                    new_key=1, upstream_state="s1", filter_type=0, options={}, next_item=3, response=b"",
                    added=[(1, "k1", "v"), (2, "k2", "old")], pending_new=stored, reset=True))
            state = CollectionState(1, "s1", 0, {}, 3, None)
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
