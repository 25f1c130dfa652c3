"""items.email: parsing a phone's Change, and category names as JMAP keywords."""

from __future__ import annotations

import pytest
from lxml import etree

from eas_gateway.items.email import ItemError, category_keyword, category_name, parse_change

M = "{Email:}"


def _data(xml: str) -> etree._Element:
    return etree.fromstring(f'<A:ApplicationData xmlns:A="AirSync:" xmlns:M="Email:">{xml}</A:ApplicationData>')


def test_read_flag_and_categories() -> None:
    change = parse_change(_data("<M:Read>1</M:Read><M:Flag><M:Status>2</M:Status></M:Flag>"
                                "<M:Categories><M:Category>Blue</M:Category></M:Categories>"))
    assert change.keywords == {"$seen": True, "$flagged": True} and change.categories == {"blue"}


def test_an_empty_flag_clears_it_and_complete_is_no_flag() -> None:
    assert parse_change(_data("<M:Flag/>")).keywords == {"$flagged": False}
    assert parse_change(_data("<M:Flag><M:Status>1</M:Status></M:Flag>")).keywords == {"$flagged": False}
    assert parse_change(_data("<M:Read>0</M:Read>")).categories is None


@pytest.mark.parametrize("xml", ["<M:Read>yes</M:Read>", "<M:Flag><M:Status>7</M:Status></M:Flag>"])
def test_bad_values_are_refused(xml: str) -> None:
    with pytest.raises(ItemError):
        parse_change(_data(xml))


@pytest.mark.parametrize("name", ["Work Items", "$money", "Ünïcode & more", "a(b)c%*\"\\", "x" * 300, "R&D"])
def test_category_keywords_are_atoms_and_come_back(name: str) -> None:
    keyword = category_keyword(name)
    assert all(33 <= ord(c) <= 126 and c not in '(){]%*"\\' for c in keyword)
    assert not keyword.startswith("$")
    if len(keyword) < 255:
        assert category_name(keyword) == name.strip().lower()
