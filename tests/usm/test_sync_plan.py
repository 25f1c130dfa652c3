"""How a window is filled from the pending list (usm.sync), against a fake
ItemSource: the sorting into Add/Change/Delete, the window, what stays pending; and
the estimate of a folder not listed yet."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime

from usm.sync import Plan, _sort, estimate
from usm.sync_state import CollectionState


def lookup(known: dict[str, tuple[int, str]]) -> Callable[[list[str]], Awaitable[dict[str, tuple[int, str]]]]:
    async def known_of(ids: list[str]) -> dict[str, tuple[int, str]]:
        return {uid: known[uid] for uid in ids if uid in known}
    return known_of


class FakeSource:
    def __init__(self, versions: dict[str, str]) -> None:
        self.current = versions
        self.asked: list[list[str]] = []

    async def versions(self, folder_id: str, ids: list[str], since: datetime | None) -> dict[str, str]:
        self.asked.append(ids)
        return {i: self.current[i] for i in ids if i in self.current}

    async def listing(self, folder_id: str, since: datetime | None) -> tuple[str, list[str]]:
        return "s1", list(self.current)


async def test_sorting_into_adds_changes_deletes_and_nothing() -> None:
    source = FakeSource({"new": "", "same": "$seen", "changed": "$flagged"})
    known = {"same": (1, "$seen"), "changed": (2, ""), "gone": (3, "")}
    plan = Plan("s2")
    await _sort(plan, source, "f", None, 10, ["new", "same", "changed", "gone", "elsewhere"],  # type: ignore[arg-type]
                lookup(known))
    assert plan.adds == ["new"] and plan.changes == [(2, "changed")] and plan.deletes == [3]
    assert plan.versions == {"new": "", "changed": "$flagged"}
    assert plan.pending_done == ["new", "same", "changed", "gone", "elsewhere"]


async def test_a_full_window_leaves_the_rest_pending_unexamined() -> None:
    ids = [f"m{i}" for i in range(300)]
    source = FakeSource({i: "" for i in ids})
    plan = Plan("s")
    assert await _sort(plan, source, "f", None, 25, ids, lookup({})) == 25  # type: ignore[arg-type]
    assert plan.adds == ids[:25] and plan.pending_done == ids[:25]
    # The upstream is asked in chunks, not for the whole list.
    assert sum(len(chunk) for chunk in source.asked) == 50


async def test_a_folder_not_listed_yet_is_estimated_from_its_listing_alone() -> None:
    """Before a folder's first Sync every id is an Add: GetItemEstimate counts the listing and
    reads no version (a 100,000-message Inbox: its queries, not 100,000 versions)."""
    source = FakeSource({f"m{i}": "" for i in range(1234)})
    first = CollectionState(1, None, 0, {}, 1)  # SyncKey 1, nothing listed yet
    assert await estimate(None, source, ("u", "d", 1), first, "f", None) == 1234  # type: ignore[arg-type]
    assert source.asked == []
