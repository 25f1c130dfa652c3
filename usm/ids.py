"""Protocol identifiers as small values, each with one parser.

EAS sends numbers as text. Only ASCII digits are digits here: ``str.isdigit``
also accepts "²" (which ``int`` then refuses) and "١" (which ``int`` reads as 1),
so a phone's "²" must be a bad request, never a crash or another number.
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_DIGITS = 9  # keeps every id inside PostgreSQL's integer


def number(text: str | None, *, digits: int = MAX_DIGITS) -> int | None:
    """The value of a non-negative decimal of 1..``digits`` ASCII digits (surrounding
    white space allowed); None for anything else."""
    if text is None:
        return None
    text = text.strip()
    if not 0 < len(text) <= digits or not text.isascii() or not text.isdigit():
        return None
    return int(text)


@dataclass(frozen=True, order=True)
class SyncKey:
    """A collection's or the hierarchy's SyncKey (MS-ASCMD 2.2.3.166): 0 starts over."""

    value: int

    @classmethod
    def parse(cls, text: str | None) -> SyncKey | None:
        value = number(text)
        return None if value is None else cls(value)

    def __str__(self) -> str:
        return str(self.value)


@dataclass(frozen=True, order=True)
class CollectionId:
    """A folder's ServerId as a Sync/Ping/GetItemEstimate CollectionId (usm.folders)."""

    value: int

    @classmethod
    def parse(cls, text: str | None) -> CollectionId | None:
        value = number(text)
        return None if value is None else cls(value)

    def __str__(self) -> str:
        return str(self.value)


@dataclass(frozen=True, order=True)
class ServerId:
    """An item's ServerId: "<collection>:<item number>", item numbers never reused."""

    collection: int
    item: int

    @classmethod
    def parse(cls, text: str | None) -> ServerId | None:
        prefix, sep, item = (text or "").partition(":")
        collection, number_ = number(prefix), number(item)
        if not sep or collection is None or number_ is None:
            return None
        return cls(collection, number_)

    def __str__(self) -> str:
        return f"{self.collection}:{self.item}"
