"""FolderCreate, FolderUpdate, FolderDelete over raw WBXML at 14.1 against the
real Cyrus: the upstream changes once, the hierarchy key moves on and the next
FolderSync does not echo the phone's own change; role folders, duplicates,
unknown parents and stale keys get their Status and change nothing."""

from __future__ import annotations

import pytest
from lxml import etree

import wbxml
from tests.conftest import RunningGateway
from tests.gateway.helpers import Phone, folder_sync, jmap, new_user

pytestmark = [pytest.mark.postgres, pytest.mark.upstream]
F = "{FolderHierarchy:}"


def _request(command: str, **fields: str) -> etree._Element:
    root = etree.Element(F + command)
    for name, value in fields.items():
        etree.SubElement(root, F + name).text = value
    return root


def _send(phone: Phone, command: str, **fields: str) -> etree._Element:
    return wbxml.decode(phone.post(command, _request(command, **fields)).content)


def _mailboxes(gw: RunningGateway, user: str) -> dict[str, dict]:
    [(_, result, _)] = jmap(gw, [["Mailbox/get", {"ids": None}, "0"]], user=user)
    return {m["name"]: m for m in result["list"]}


def _folder_sync(phone: Phone, key: str) -> etree._Element:
    return wbxml.decode(phone.post("FolderSync", folder_sync(key)).content)


def test_create_rename_move_and_delete_a_folder(gateway: RunningGateway) -> None:
    user = new_user(gateway)
    phone = Phone(gateway, user)
    key = "1"
    answer = _send(phone, "FolderCreate", SyncKey=key, ParentId="0", DisplayName="Projekte – 2026", Type="12")
    assert answer.findtext(F + "Status") == "1" and answer.findtext(F + "SyncKey") == "2"
    projects = answer.findtext(F + "ServerId")
    assert "Projekte – 2026" in _mailboxes(gateway, user)
    # No echo: the next FolderSync has nothing new.
    tree = _folder_sync(phone, "2")
    assert tree.findtext(F + "Status") == "1" and tree.findtext(f"{F}Changes/{F}Count") == "0"
    answer = _send(phone, "FolderCreate", SyncKey="2", ParentId=projects, DisplayName="Kunde", Type="12")
    child = answer.findtext(F + "ServerId")
    assert answer.findtext(F + "Status") == "1"
    # Rename and move to the top level.
    answer = _send(phone, "FolderUpdate", SyncKey="3", ServerId=child, ParentId="0", DisplayName="Kunde A")
    assert answer.findtext(F + "Status") == "1" and answer.findtext(F + "SyncKey") == "4"
    boxes = _mailboxes(gateway, user)
    assert "Kunde" not in boxes and boxes["Kunde A"]["parentId"] is None
    # Move it back under Projekte, then delete Projekte: the child goes with it.
    assert _send(phone, "FolderUpdate", SyncKey="4", ServerId=child, ParentId=projects,
                 DisplayName="Kunde A").findtext(F + "Status") == "1"
    answer = _send(phone, "FolderDelete", SyncKey="5", ServerId=projects)
    assert answer.findtext(F + "Status") == "1" and answer.findtext(F + "SyncKey") == "6"
    boxes = _mailboxes(gateway, user)
    assert "Projekte – 2026" not in boxes and "Kunde A" not in boxes
    tree = _folder_sync(phone, "6")
    assert tree.findtext(f"{F}Changes/{F}Count") == "0"
    # Another device learns all of it through FolderSync.
    other = Phone(gateway, user)
    assert "Projekte – 2026" not in other.folders


def test_refusals_change_nothing(gateway: RunningGateway) -> None:
    user = new_user(gateway)
    phone = Phone(gateway, user)
    before = _mailboxes(gateway, user)
    inbox, outbox = phone.types["2"], phone.types["6"]
    cases = [
        ("FolderCreate", dict(SyncKey="1", ParentId="0", DisplayName="Archive", Type="12"), "2"),
        ("FolderCreate", dict(SyncKey="1", ParentId="987654", DisplayName="x", Type="12"), "5"),
        ("FolderCreate", dict(SyncKey="1", ParentId="0", DisplayName="Journal", Type="16"), "10"),  # no class
        ("FolderCreate", dict(SyncKey="7", ParentId="0", DisplayName="x", Type="12"), "9"),
        ("FolderUpdate", dict(SyncKey="1", ServerId=inbox, ParentId="0", DisplayName="Posteingang"), "3"),
        ("FolderUpdate", dict(SyncKey="1", ServerId="987654", ParentId="0", DisplayName="x"), "4"),
        ("FolderDelete", dict(SyncKey="1", ServerId=phone.types["4"]), "3"),
        ("FolderDelete", dict(SyncKey="1", ServerId=outbox), "3"),
        ("FolderDelete", dict(SyncKey="1", ServerId="987654"), "4"),
    ]
    for command, fields, status in cases:
        answer = _send(phone, command, **fields)
        assert answer.findtext(F + "Status") == status, (command, fields)
    assert _mailboxes(gateway, user).keys() == before.keys()
    assert _folder_sync(phone, "1").findtext(F + "Status") == "1"  # the key never moved
