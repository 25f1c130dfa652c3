"""Contacts handlers on the in-memory DAV store (usm.upstream.memory): the cases
a real server makes hard to stage — a shared address book the user may only read,
a card changed upstream between the phone's look and its edit (the Conflict
option), a card or an event that cannot be converted (loop protection) — fast, with
mail and sign-in still from Cyrus."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import pytest
from lxml import etree

import wbxml
from tests.conftest import RunningGateway, running_gateway
from tests.gateway.helpers import Phone, collection, folder_sync, new_user, password
from tests.gateway.test_admin import cli
from usm.sync_state import MAX_ITEM_FAILURES
from usm.upstream import Credentials
from usm.upstream.dav_store import CALENDAR, CONTACTS
from usm.upstream.memory import MemoryDav

pytestmark = [pytest.mark.postgres, pytest.mark.upstream]

A, C, F = "{AirSync:}", "{Contacts:}", "{FolderHierarchy:}"
CARD = "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:{uid}\r\nFN:{name}\r\nN:{name};;;;\r\nTITLE:{title}\r\nEND:VCARD\r\n"


@pytest.fixture(scope="module")
def memory(cyrus: str, database_url: str) -> Iterator[tuple[RunningGateway, MemoryDav]]:
    store = MemoryDav()
    with running_gateway(cyrus, database_url, poll_seconds=0.5, dav_poll_seconds=0.5, dav=store) as gw:
        yield gw, store


def run(coroutine):  # type: ignore[no-untyped-def]
    return asyncio.run(coroutine)


def _change(server_id: str, **values: str) -> etree._Element:
    commands = etree.Element(A + "Commands")
    change = etree.SubElement(commands, A + "Change")
    etree.SubElement(change, A + "ServerId").text = server_id
    data = etree.SubElement(change, A + "ApplicationData")
    for name, value in values.items():
        etree.SubElement(data, C + name).text = value
    return commands


def _statuses(tree: etree._Element) -> dict[str, str]:
    return {r.findtext(A + "ServerId") or r.findtext(A + "ClientId") or "": r.findtext(A + "Status") or ""
            for r in tree.iter(A + "Change", A + "Add", A + "Delete") if r.find(A + "Status") is not None}


def test_a_shared_address_book_the_user_may_only_read(memory: tuple[RunningGateway, MemoryDav]) -> None:
    gw, store = memory
    user = new_user(gw)
    creds = Credentials(user, password(user))
    shared = run(store.make_collection(creds, CONTACTS, "Team (read only)", "team", writable=False))
    store._mine(creds)[shared].writable = True  # the owner fills it
    run(store.create(creds, shared + "a.vcf", CARD.format(uid="a", name="Ann", title="Lead"), "text/vcard"))
    store._mine(creds)[shared].writable = False
    phone = Phone(gw, user)
    tree = wbxml.decode(phone.post("FolderSync", folder_sync("0")).content)
    types = {a.findtext(F + "DisplayName"): a.findtext(F + "Type") for a in tree.iter(F + "Add")}
    assert types["Team (read only)"] == "14" and types["Contacts"] == "9"  # the writable one is the default
    team = phone.folders["Team (read only)"]
    key, adds = phone.sync_all(team)
    server_id = adds[0].findtext(A + "ServerId")
    answer = phone.sync(collection(team, key, commands=_change(server_id, LastName="Changed")))
    assert _statuses(answer) == {server_id: "6"}  # refused for this item, no 5xx
    assert "Ann" in run(store.multiget(creds, shared, CONTACTS, [shared + "a.vcf"]))[shared + "a.vcf"].data


@pytest.mark.parametrize("conflict, status, title", [(None, "7", "Upstream"), ("1", "7", "Upstream"),
                                                     ("0", None, "Phone")])
def test_the_conflict_option_decides_when_both_changed(memory: tuple[RunningGateway, MemoryDav],
                                                       conflict: str | None, status: str | None, title: str) -> None:
    gw, store = memory
    user = new_user(gw)
    creds = Credentials(user, password(user))
    phone = Phone(gw, user)
    book = next(p for p, c in store._mine(creds).items() if c.kind == CONTACTS)
    path = book + "c.vcf"
    etag, _ = run(store.create(creds, path, CARD.format(uid="c", name="Cy", title="First"), "text/vcard"))
    options = None
    if conflict is not None:
        options = etree.Element(A + "Options")
        etree.SubElement(options, A + "Conflict").text = conflict
    tree = phone.sync(collection(phone.types["9"], "0", options=options))
    tree = phone.sync(collection(phone.types["9"], tree.findtext(f".//{A}SyncKey")))
    key, server_id = tree.findtext(f".//{A}SyncKey"), next(tree.iter(A + "Add")).findtext(A + "ServerId")
    run(store.replace(creds, path, CARD.format(uid="c", name="Cy", title="Upstream"), "text/vcard", etag))
    answer = phone.sync(collection(phone.types["9"], key, commands=_change(server_id, JobTitle="Phone")))
    assert _statuses(answer).get(server_id) == status
    assert f"TITLE:{title}" in run(store.multiget(creds, book, CONTACTS, [path]))[path].data


def test_fields_declared_in_supported_and_left_out_are_cleared(memory: tuple[RunningGateway, MemoryDav]) -> None:
    gw, store = memory
    user = new_user(gw)
    creds = Credentials(user, password(user))
    phone = Phone(gw, user)
    book = next(p for p, c in store._mine(creds).items() if c.kind == CONTACTS)
    path = book + "g.vcf"
    run(store.create(creds, path, CARD.format(uid="g", name="Gil", title="Chief").replace(
        "END:VCARD", "NICKNAME:G\r\nTEL;TYPE=CELL:123\r\nEND:VCARD"), "text/vcard"))
    start = collection(phone.types["9"], "0")
    supported = etree.SubElement(start, A + "Supported")
    for name in ("JobTitle", "LastName", "FirstName"):
        etree.SubElement(supported, C + name)
    tree = phone.sync(start)
    tree = phone.sync(collection(phone.types["9"], tree.findtext(f".//{A}SyncKey")))
    key, server_id = tree.findtext(f".//{A}SyncKey"), next(tree.iter(A + "Add")).findtext(A + "ServerId")
    answer = phone.sync(collection(phone.types["9"], key, commands=_change(server_id, LastName="Gil")))
    assert _statuses(answer).get(server_id) in (None, "1")
    card = run(store.multiget(creds, book, CONTACTS, [path]))[path].data
    assert "TITLE" not in card  # declared, left out: cleared
    assert "NICKNAME:G" in card and "TEL;TYPE=CELL:123" in card  # not declared: kept


def test_a_card_that_fails_to_convert_is_skipped_and_reported(memory: tuple[RunningGateway, MemoryDav]) -> None:
    gw, store = memory
    user = new_user(gw)
    creds = Credentials(user, password(user))
    phone = Phone(gw, user)
    book = next(p for p, c in store._mine(creds).items() if c.kind == CONTACTS)
    run(store.create(creds, book + "ok.vcf", CARD.format(uid="ok", name="Fine", title="x"), "text/vcard"))
    run(store.create(creds, book + "bad.vcf", "this is no vCard at all", "text/vcard"))
    tree = phone.sync(collection(phone.types["9"], "0"))
    key = tree.findtext(f".//{A}SyncKey")
    names = []
    for _ in range(MAX_ITEM_FAILURES + 2):
        tree = phone.sync(collection(phone.types["9"], key))
        assert tree.findtext(f".//{A}Status") == "1"
        key = tree.findtext(f".//{A}SyncKey")
        names += [a.findtext(f".//{C}LastName") for a in tree.iter(A + "Add")]
    assert names == ["Fine"]  # the good card came; the bad one never blocked it
    [failure] = json.loads(cli(gw, "device", user, phone.device, "--json").stdout)["item_failures"]
    assert failure["upstream_id"] == book + "bad.vcf" and failure["skipped"]
    assert "VCardError" in failure["last_error"]


def test_an_event_that_fails_to_convert_is_skipped_and_reported(memory: tuple[RunningGateway, MemoryDav]) -> None:
    gw, store = memory
    user = new_user(gw)
    creds = Credentials(user, password(user))
    phone = Phone(gw, user)
    calendar = next(p for p, c in store._mine(creds).items() if c.kind == CALENDAR)
    good = ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nBEGIN:VEVENT\r\nUID:good\r\n"
            "DTSTAMP:20260101T000000Z\r\nDTSTART:20261201T100000Z\r\nSUMMARY:Fine\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n")
    run(store.create(creds, calendar + "good.ics", good, "text/calendar"))
    run(store.create(creds, calendar + "bad.ics", good.replace("DTSTART:20261201T100000Z\r\n", "").replace(
        "UID:good", "UID:bad"), "text/calendar"))
    tree = phone.sync(collection(phone.types["8"], "0"))
    key = tree.findtext(f".//{A}SyncKey")
    subjects = []
    for _ in range(MAX_ITEM_FAILURES + 2):
        tree = phone.sync(collection(phone.types["8"], key))
        assert tree.findtext(f".//{A}Status") == "1"
        key = tree.findtext(f".//{A}SyncKey")
        subjects += [a.findtext(".//{Calendar:}Subject") for a in tree.iter(A + "Add")]
    assert subjects == ["Fine"]  # the good event came; the bad one never blocked it
    [failure] = json.loads(cli(gw, "device", user, phone.device, "--json").stdout)["item_failures"]
    assert failure["upstream_id"] == calendar + "bad.ics" and failure["skipped"]
    assert "CalendarError" in failure["last_error"]
