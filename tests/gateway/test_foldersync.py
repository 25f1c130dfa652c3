"""FolderSync state: incremental changes from the upstream, the lost-response
replay, stale keys, and restarting from key 0 without losing ServerIds."""

from __future__ import annotations

import uuid

import pytest
from lxml import etree

import wbxml
from tests.conftest import RunningGateway
from tests.gateway.helpers import folder_sync, jmap, new_device_id, post, provision

pytestmark = [pytest.mark.postgres, pytest.mark.upstream]
F = "{FolderHierarchy:}"


class Phone:
    def __init__(self, gw: RunningGateway) -> None:
        self.gw = gw
        self.device = new_device_id()
        self.key = provision(gw, self.device)

    def folder_sync(self, key: str) -> tuple[bytes, etree._Element]:
        answer = post(self.gw, "FolderSync", folder_sync(key), device_id=self.device, policy_key=self.key)
        assert answer.status_code == 200
        return answer.content, wbxml.decode(answer.content)


def _adds(tree: etree._Element) -> dict[str, str]:
    return {a.findtext(F + "DisplayName"): a.findtext(F + "ServerId") for a in tree.iter(F + "Add")}


def _create_mailbox(gw: RunningGateway, name: str, parent: str | None = None) -> str:
    [(_, result, _)] = jmap(gw, [["Mailbox/set", {"create": {"m": {"name": name, "parentId": parent}}}, "0"]])
    assert result.get("created"), f"Mailbox/set create refused: {result.get('notCreated')}"
    return str(result["created"]["m"]["id"])


def _destroy_mailbox(gw: RunningGateway, mailbox_id: str) -> None:
    [(_, result, _)] = jmap(gw, [["Mailbox/set", {"destroy": [mailbox_id]}, "0"]])
    assert result["destroyed"] == [mailbox_id]


def test_changes_arrive_incrementally_and_a_lost_answer_is_replayed(gateway: RunningGateway) -> None:
    phone = Phone(gateway)
    _, first = phone.folder_sync("0")
    key1 = first.findtext(F + "SyncKey")
    name = "Projects " + uuid.uuid4().hex[:6]
    parent = _create_mailbox(gateway, name)
    child = _create_mailbox(gateway, "Q4 – Ünïcödé", parent)
    try:
        raw2, second = phone.folder_sync(key1)
        key2 = second.findtext(F + "SyncKey")
        assert int(key2) == int(key1) + 1
        adds = _adds(second)
        assert set(adds) == {name, "Q4 – Ünïcödé"}
        # The parent is announced before the child, which names it.
        order = [a.findtext(F + "DisplayName") for a in second.iter(F + "Add")]
        assert order == [name, "Q4 – Ünïcödé"]
        child_add = next(a for a in second.iter(F + "Add") if a.findtext(F + "DisplayName") != name)
        assert child_add.findtext(F + "ParentId") == adds[name]
        assert child_add.findtext(F + "Type") == "12"
        # The answer got lost: the phone sends key1 again and gets the same bytes.
        replay, _ = phone.folder_sync(key1)
        assert replay == raw2
        # Nothing changed since key2: same key, no changes.
        _, quiet = phone.folder_sync(key2)
        assert quiet.findtext(F + "SyncKey") == key2
        assert quiet.findtext(f"{F}Changes/{F}Count") == "0"
    finally:
        _destroy_mailbox(gateway, child)
        _destroy_mailbox(gateway, parent)
    _, third = phone.folder_sync(key2)
    assert sorted(el.text for el in third.iter(F + "ServerId")) == sorted(adds.values())
    assert len(list(third.iter(F + "Delete"))) == 2


def test_a_stale_key_is_status_9(gateway: RunningGateway) -> None:
    phone = Phone(gateway)
    _, first = phone.folder_sync("0")
    assert first.findtext(F + "Status") == "1"
    _, stale = phone.folder_sync(str(int(first.findtext(F + "SyncKey")) + 5))
    assert stale.findtext(F + "Status") == "9"
    _, bad = phone.folder_sync("abc")
    assert bad.findtext(F + "Status") == "10"


def test_renamed_folder_is_an_update_with_the_same_server_id(gateway: RunningGateway) -> None:
    phone = Phone(gateway)
    name = "Rename me " + uuid.uuid4().hex[:6]
    mailbox = _create_mailbox(gateway, name)
    try:
        _, first = phone.folder_sync("0")
        server_id = _adds(first)[name]
        jmap(gateway, [["Mailbox/set", {"update": {mailbox: {"name": name + " (done)"}}}, "0"]])
        _, second = phone.folder_sync(first.findtext(F + "SyncKey"))
        [update] = list(second.iter(F + "Update"))
        assert update.findtext(F + "ServerId") == server_id
        assert update.findtext(F + "DisplayName") == name + " (done)"
        # Starting over from key 0 keeps every ServerId.
        _, restart = phone.folder_sync("0")
        assert _adds(restart)[name + " (done)"] == server_id
    finally:
        _destroy_mailbox(gateway, mailbox)
