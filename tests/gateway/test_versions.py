"""The version table (eas_gateway/versions.py): its names are the code pages'
own, the app answers exactly the commands it implements in exactly their
versions, and a response never keeps an element its version lacks. (Every
response of the whole suite is walked by tests/conftest.py.)"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from lxml import etree

from eas_gateway import versions
from eas_gateway.commands import COMMANDS
from tests.conftest import RunningGateway
from tests.gateway.helpers import new_device_id, post, provision
from wbxml.codepages import NAMESPACES, TOKENS


def E(tag: str, *content: etree._Element | str) -> etree._Element:
    element = etree.Element(tag)
    for part in content:
        if isinstance(part, str):
            element.text = part
        else:
            element.append(part)
    return element


@pytest.fixture
def dropped_here() -> Iterator[None]:
    """These tests drop elements on purpose: what they drop is not the suite's concern."""
    saved = versions.dropped.copy()
    yield
    versions.dropped.clear()
    versions.dropped.update(saved)


def test_every_named_element_is_a_tag_of_its_code_page() -> None:
    tags = {f"{NAMESPACES[page]}:{name}" for page, table in TOKENS.items() for name in table.values()}
    assert set(versions.ELEMENTS) - tags == set()
    assert set(versions.NAMESPACES) <= set(NAMESPACES.values())


def test_spans_are_versions_in_order() -> None:
    known = ("2.5", *versions.VERSIONS)
    for span in [*versions.ELEMENTS.values(), *versions.NAMESPACES.values(), *versions.COMMANDS.values()]:
        first, last = span
        assert first in known and (last is None or (last in known and known.index(first) <= known.index(last)))


def test_the_app_implements_every_command_the_gateway_speaks_and_nothing_else() -> None:
    spoken = {name for name in versions.COMMANDS if any(versions.offers(name, v) for v in versions.VERSIONS)}
    assert set(COMMANDS) == spoken
    assert not any(versions.offers("GetHierarchy", v) for v in versions.VERSIONS)  # 2.5 only: README says why


def test_offers_follows_the_spans() -> None:
    assert versions.offers("GetAttachment", "14.1") and not versions.offers("GetAttachment", "16.0")
    assert versions.offers("Find", "14.0")  # iOS: answered earlier than its version
    assert not versions.offers("NoSuchCommand", "16.1")


def test_checked_drops_newer_and_older_elements_and_counts_them(dropped_here: None) -> None:
    def sync() -> etree._Element:
        return E("{AirSync:}Sync", E("{AirSync:}Collections", E("{AirSync:}Collection",
                 E("{AirSync:}Status", "1"),
                 E("{AirSync:}Commands", E("{AirSync:}Add", E("{AirSync:}ApplicationData",
                   E("{Email:}Subject", "hi"),
                   E("{AirSyncBase:}Preview", "hi there"),  # 14.0
                   E("{Email2:}ConversationId", "x"),  # 14.0 (the page)
                   E("{Email2:}IsDraft", "0"),  # 16.0
                   E("{Email:}BodySize", "3"),  # 2.5 only
                   E("{Calendar:}ClientUid", "u")))))))  # 16.0

    before = versions.dropped.copy()
    old = versions.checked(sync(), "12.1", "Sync")
    data = old.find(".//{AirSync:}ApplicationData")
    assert [etree.QName(c).localname for c in data] == ["Subject"]
    assert versions.dropped - before == {"AirSyncBase:Preview@12.1": 1, "Email2:ConversationId@12.1": 1,
                                         "Email2:IsDraft@12.1": 1, "Email:BodySize@12.1": 1,
                                         "Calendar:ClientUid@12.1": 1}
    newer = versions.checked(sync(), "16.1", "Sync").find(".//{AirSync:}ApplicationData")
    assert [etree.QName(c).localname for c in newer] == ["Subject", "Preview", "ConversationId", "IsDraft",
                                                         "ClientUid"]


def test_a_dropped_container_takes_its_children_once(dropped_here: None) -> None:
    before = versions.dropped.copy()
    tree = E("{Settings:}Settings", E("{Settings:}UserInformation", E("{Settings:}Get",
             E("{Settings:}Accounts", E("{Settings:}Account", E("{Settings:}AccountId", "1"))))))
    versions.checked(tree, "14.0", "Settings")
    assert tree.find(".//{Settings:}Accounts") is None
    assert versions.dropped - before == {"Settings:Accounts@14.0": 1}


def test_find_answered_at_14_keeps_its_own_tags(dropped_here: None) -> None:
    before = versions.dropped.copy()
    tree = E("{Find:}Find", E("{Find:}Status", "1"), E("{Find:}Response", E("{Find:}Total", "0")))
    versions.checked(tree, "14.0", "Find")
    assert tree.find(".//{Find:}Total") is not None and versions.dropped == before



@pytest.mark.postgres
@pytest.mark.upstream
def test_options_advertises_exactly_the_implemented_commands_and_none_answers_501(
        gateway: RunningGateway) -> None:
    answer = httpx.options(gateway.endpoint, auth=("alice@example.com", "alice"))
    advertised = answer.headers["MS-ASProtocolCommands"].split(",")
    assert sorted(advertised) == sorted(COMMANDS)
    device = new_device_id()
    key = provision(gateway, device, version="16.1")
    for command in advertised:
        version = "14.1" if command == "GetAttachment" else "16.1"
        status = post(gateway, command, None, device_id=device, version=version, policy_key=key).status_code
        assert status != 501, command


@pytest.mark.postgres
@pytest.mark.upstream
def test_a_command_outside_its_versions_is_400_with_the_reason(gateway: RunningGateway) -> None:
    device = new_device_id()
    key = provision(gateway, device, version="16.1")
    gone = post(gateway, "GetAttachment", None, device_id=device, version="16.1", policy_key=key,
                params={"AttachmentName": "x"})
    assert gone.status_code == 400 and "14.1" in gone.text
    old = post(gateway, "GetHierarchy", None, device_id=device, version="12.0")
    assert old.status_code == 400 and "2.5" in old.text
