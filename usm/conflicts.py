"""A phone's change to an item meeting the upstream's: per-field merge.

The device saw an item at some version (for mail: its keyword set). It asks
for some keywords to be set or cleared. Where the upstream did not touch a
keyword since the device's version, the device's wish is applied. Where it
did, the collection's Conflict option (MS-ASCMD 2.2.3.34) decides: 1, the
default, keeps the server's value; 0 lets the client's replace it.

What comes out: the patch for the upstream (only real changes) and the set
the device now shows, which is what the gateway records as the version sent.
When the server won a field, that set differs from the upstream's, so the
next Sync sends the item as a Change and the phone learns the server's value.
"""

from __future__ import annotations

CLIENT_WINS, SERVER_WINS = 0, 1


def merge(seen: frozenset[str], current: frozenset[str], wanted: dict[str, bool],
          categories: frozenset[str] | None = None, *,
          conflict: int = SERVER_WINS) -> tuple[dict[str, bool], frozenset[str]]:
    """(patch for the upstream, keywords the device shows afterwards).

    ``categories``: the device's full set of non-system keywords, if it sent
    one; every other non-system keyword is to be cleared.
    """
    wishes = dict(wanted)
    if categories is not None:
        for keyword in (seen | current | categories):
            if not keyword.startswith("$"):
                wishes[keyword] = keyword in categories
    patch: dict[str, bool] = {}
    shown = set(seen)
    for keyword, value in wishes.items():
        if value:
            shown.add(keyword)
        else:
            shown.discard(keyword)
        upstream_moved = (keyword in seen) != (keyword in current)
        if upstream_moved and conflict != CLIENT_WINS:
            continue
        if (keyword in current) != value:
            patch[keyword] = value
    return patch, frozenset(shown)
