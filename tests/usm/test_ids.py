"""Protocol identifiers: one parser each, ASCII digits only."""

from __future__ import annotations

import pytest

from usm.ids import CollectionId, ServerId, SyncKey, number


@pytest.mark.parametrize("text, value", [("0", 0), ("17", 17), (" 42 ", 42), ("999999999", 999999999)])
def test_numbers(text: str, value: int) -> None:
    assert number(text) == value


@pytest.mark.parametrize("text", [None, "", " ", "²", "١", "1²", "-1", "+1", "1.0", "1e3", "0x1", "1000000000",
                                  "１２"])
def test_what_is_no_number(text: str | None) -> None:
    """'²' passes str.isdigit and then int() refuses it; '١' and '１２' int() reads as digits."""
    assert number(text) is None


def test_values_and_their_text() -> None:
    assert SyncKey.parse("3") == SyncKey(3) and str(SyncKey(3)) == "3" and SyncKey.parse("x") is None
    assert CollectionId.parse("12") == CollectionId(12) and CollectionId.parse("١٢") is None
    assert ServerId.parse("12:34") == ServerId(12, 34) and str(ServerId(12, 34)) == "12:34"
    for bad in ("12", "12:", ":34", "12:3:4", "a:1", "1:²", "1234567890:1"):
        assert ServerId.parse(bad) is None, bad
