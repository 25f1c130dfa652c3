"""Contacts end to end, on Cyrus' CardDAV and on Radicale: cards made upstream
arrive with their fields, the phone creates (exactly once), edits (merged, never
rebuilt) and deletes cards, an upstream edit wakes a Ping on the contacts
folder, and a second address book appears as a folder of Type 14."""

from __future__ import annotations

import asyncio
import concurrent.futures
import time

import pytest
from lxml import etree
from pyactivesync import Contact, ContactChange

import wbxml
from tests.conftest import RunningGateway
from tests.gateway.helpers import (
    Phone,
    collection,
    folder_sync,
    new_device_id,
    new_user,
    password,
    ping_request,
    pyactivesync_client,
)
from usm.upstream import Credentials
from usm.upstream.dav import DavUpstream
from usm.upstream.dav_store import CONTACTS

pytestmark = [pytest.mark.postgres, pytest.mark.upstream]

A, C, F, P = "{AirSync:}", "{Contacts:}", "{FolderHierarchy:}", "{Ping:}"

CARD = ("BEGIN:VCARD\r\nVERSION:3.0\r\nUID:{uid}\r\nFN:Ada Lovelace\r\nN:Lovelace;Ada;;;\r\n"
        "ORG:Analytical Engines;Research\r\nTITLE:Countess\r\nEMAIL;TYPE=INTERNET:ada@example.org\r\n"
        "TEL;TYPE=CELL:+44 20 1234\r\nTEL;TYPE=WORK:+44 20 1111\r\nTEL;TYPE=WORK:+44 20 2222\r\n"
        "TEL;TYPE=WORK:+44 20 3333 third work number\r\nBDAY:1815-12-10\r\n"
        "ADR;TYPE=HOME:;;12 St James's Square;London;;SW1;UK\r\nX-CUSTOM-THING:keep me\r\n"
        "URL:https://one.example.org/\r\nURL:https://two.example.org/\r\nNOTE:First programmer\r\nEND:VCARD\r\n")



def dav(gw: RunningGateway, user: str) -> tuple[DavUpstream, Credentials]:
    return DavUpstream(gw.dav_url), Credentials(user, password(user))


def run(coroutine):  # type: ignore[no-untyped-def]
    return asyncio.run(coroutine)


async def _address_book(gw: RunningGateway, user: str) -> str:
    client, creds = dav(gw, user)
    try:
        books = [c for c in await client.collections(creds) if c.kind == CONTACTS]
        return sorted(books, key=lambda c: (not c.path.rstrip("/").endswith("/Default"), c.path))[0].path
    finally:
        await client.aclose()


async def _put(gw: RunningGateway, user: str, path: str, text: str, etag: str | None = None) -> str:
    client, creds = dav(gw, user)
    try:
        if etag is None:
            return (await client.create(creds, path, text, "text/vcard"))[0]
        return await client.replace(creds, path, text, "text/vcard", etag)
    finally:
        await client.aclose()


async def _cards(gw: RunningGateway, user: str, book: str) -> dict[str, str]:
    client, creds = dav(gw, user)
    try:
        _, etags = await client.listing(creds, book)
        return {p: o.data for p, o in (await client.multiget(creds, book, CONTACTS, list(etags))).items()}
    finally:
        await client.aclose()


def contacts_phone(gw: RunningGateway) -> tuple[str, Phone, str, str]:
    """A new user whose address book exists, a phone, its contacts folder, the book's path."""
    user = new_user(gw)
    phone = Phone(gw, user)  # on Radicale the gateway makes the address book at this first FolderSync
    assert "9" in phone.types, f"no default contacts folder in {phone.types}"
    return user, phone, phone.types["9"], run(_address_book(gw, user))


def fields(add: etree._Element) -> dict[str, str]:
    data = add.find(A + "ApplicationData")
    return {etree.QName(e).localname: e.text or "" for e in data.iter() if len(e) == 0 and e is not data}


def test_a_card_made_upstream_arrives_with_its_fields(pim: RunningGateway) -> None:
    user, phone, contacts, book = contacts_phone(pim)
    run(_put(pim, user, book + "ada.vcf", CARD.format(uid="ada-1")))
    _, adds = phone.sync_all(contacts)
    assert len(adds) == 1
    got = fields(adds[0])
    assert got["FirstName"] == "Ada" and got["LastName"] == "Lovelace"
    assert got["CompanyName"] == "Analytical Engines" and got["Department"] == "Research"
    assert got["JobTitle"] == "Countess" and got["Email1Address"] == "ada@example.org"
    assert got["MobilePhoneNumber"] == "+44 20 1234"
    assert (got["BusinessPhoneNumber"], got["Business2PhoneNumber"]) == ("+44 20 1111", "+44 20 2222")
    assert got["Birthday"] == "1815-12-10T00:00:00.000Z"
    assert got["HomeAddressStreet"] == "12 St James's Square" and got["HomeAddressCity"] == "London"
    assert got["WebPage"] == "https://one.example.org/"
    assert got["Data"] == "First programmer"


def test_the_phone_creates_edits_and_deletes_contacts_exactly_once(pim: RunningGateway) -> None:
    user, phone, contacts, book = contacts_phone(pim)
    with pyactivesync_client(pim, new_device_id(), user=user) as client:
        folder = next(f for f in client.list_folders() if f.id == contacts)
        key = client.sync_folder(folder.id).sync_key
        key = client.sync_folder(folder.id, key).sync_key
        made = client.create_contact(folder.id, key, Contact(first_name="Grace", last_name="Hopper",
                                                              email1_address="grace@example.org",
                                                              mobile_phone_number="+1 555 0100"),
                                     client_id="c-1")
        assert made.status == "1" and made.server_id
        cards = run(_cards(pim, user, book))
        assert len(cards) == 1
        [(path, text)] = cards.items()
        assert "Hopper" in text and "grace@example.org" in text
        # Upstream, another client adds what EAS cannot hold; the phone then edits one field.
        run(_put(pim, user, path, text.replace("END:VCARD", "X-CUSTOM-THING:keep me\r\n"
                                                            "TEL;TYPE=CELL:+1 555 0199 second mobile\r\nEND:VCARD"),
                 etag=_etag(pim, user, book, path)))
        key = client.sync_folder(folder.id, made.sync_key).sync_key  # takes the upstream edit
        changed = client.apply_contact_changes(folder.id, key, [
            ContactChange(made.server_id, Contact(first_name="Grace", last_name="Hopper", job_title="Rear Admiral"))])
        assert changed.statuses == {made.server_id: "1"}
        text = run(_cards(pim, user, book))[path]
        assert "TITLE:Rear Admiral" in text
        assert "X-CUSTOM-THING:keep me" in text and "second mobile" in text and "grace@example.org" in text
        gone = client.apply_contact_changes(folder.id, changed.sync_key, [
            ContactChange(made.server_id, delete=True)])
        assert gone.statuses == {made.server_id: "1"}
        assert run(_cards(pim, user, book)) == {}


def _etag(gw: RunningGateway, user: str, book: str, path: str) -> str:
    async def etag() -> str:
        client, creds = dav(gw, user)
        try:
            return (await client.etags(creds, book, CONTACTS, [path]))[path]
        finally:
            await client.aclose()
    return run(etag())


def _add(client_id: str, **values: str) -> etree._Element:
    commands = etree.Element(A + "Commands")
    add = etree.SubElement(commands, A + "Add")
    etree.SubElement(add, A + "ClientId").text = client_id
    data = etree.SubElement(add, A + "ApplicationData")
    for name, value in values.items():
        ns = "{Email:}" if name == "Subject" else C
        etree.SubElement(data, ns + name).text = value
    return commands


def test_a_resent_add_makes_one_card_and_keeps_its_server_id(pim: RunningGateway) -> None:
    user, phone, contacts, book = contacts_phone(pim)
    key, _ = phone.sync_all(contacts)
    first = phone.sync(collection(contacts, key, commands=_add("same-1", FirstName="Alan", LastName="Turing")))
    again = phone.sync(collection(contacts, key, commands=_add("same-1", FirstName="Alan", LastName="Turing")))
    server_id = first.findtext(f".//{A}Responses/{A}Add/{A}ServerId")
    assert server_id and again.findtext(f".//{A}Responses/{A}Add/{A}ServerId") == server_id
    new_key = first.findtext(f".//{A}SyncKey")
    # The resent Add at the new key (the phone lost the answer and its own retry logic kept the command).
    third = phone.sync(collection(contacts, new_key, commands=_add("same-1", FirstName="Alan", LastName="Turing")))
    assert third.findtext(f".//{A}Responses/{A}Add/{A}ServerId") == server_id
    assert len(run(_cards(pim, user, book))) == 1


def test_another_classes_fields_fail_that_item_only(pim: RunningGateway) -> None:
    user, phone, contacts, book = contacts_phone(pim)
    key, _ = phone.sync_all(contacts)
    commands = _add("bad-1", Subject="not a contact field")
    commands.extend(_add("good-1", FirstName="Edsger", LastName="Dijkstra"))
    answer = phone.sync(collection(contacts, key, commands=commands))
    statuses = {a.findtext(A + "ClientId"): a.findtext(A + "Status") for a in answer.iter(A + "Add")}
    assert statuses == {"bad-1": "6", "good-1": "1"}
    assert [t for t in run(_cards(pim, user, book)).values() if "Dijkstra" in t]
    assert len(run(_cards(pim, user, book))) == 1


def test_an_upstream_edit_wakes_a_ping_on_the_contacts_folder_and_arrives_as_a_change(pim: RunningGateway) -> None:
    user, phone, contacts, book = contacts_phone(pim)
    etag = run(_put(pim, user, book + "ada.vcf", CARD.format(uid=f"ada-{user}")))
    key, adds = phone.sync_all(contacts)
    assert len(adds) == 1
    ping = ping_request(contacts, 120, "Contacts")
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        held = pool.submit(phone.post, "Ping", ping)
        time.sleep(2)
        assert not held.done()
        started = time.monotonic()
        run(_put(pim, user, book + "ada.vcf", CARD.format(uid=f"ada-{user}").replace("Countess", "Mathematician"),
                 etag=etag))
        answer = wbxml.decode(held.result(timeout=30).content)
        woke_after = time.monotonic() - started
    assert answer.findtext(P + "Status") == "2", etree.tostring(answer)
    assert [f.text for f in answer.iter(P + "Folder")] == [contacts]
    assert woke_after < 10
    tree = phone.sync(collection(contacts, key))
    changes = list(tree.iter(A + "Change"))
    assert len(changes) == 1 and fields(changes[0])["JobTitle"] == "Mathematician"


def test_a_second_address_book_made_upstream_appears_as_type_14(pim: RunningGateway) -> None:
    user, phone, contacts, book = contacts_phone(pim)
    tree = wbxml.decode(phone.post("FolderSync", folder_sync("0")).content)
    key = tree.findtext(F + "SyncKey")

    async def make() -> None:
        client, creds = dav(pim, user)
        try:
            await client.make_collection(creds, CONTACTS, "Team", "team")
        finally:
            await client.aclose()

    run(make())
    tree = wbxml.decode(phone.post("FolderSync", folder_sync(key)).content)
    added = [(a.findtext(F + "DisplayName"), a.findtext(F + "Type")) for a in tree.iter(F + "Add")]
    assert added == [("Team", "14")]


def test_estimate_fetch_and_move_between_address_books(pim: RunningGateway) -> None:
    user, phone, contacts, book = contacts_phone(pim)
    run(_put(pim, user, book + "ada.vcf", CARD.format(uid=f"ada-{user}")))
    key, _ = phone.sync_all(contacts)
    run(_put(pim, user, book + "bob.vcf", CARD.format(uid=f"bob-{user}").replace("Ada", "Bob")))
    G = "{GetItemEstimate:}"
    estimate = etree.Element(G + "GetItemEstimate")
    c = etree.SubElement(etree.SubElement(estimate, G + "Collections"), G + "Collection")
    etree.SubElement(c, A + "SyncKey").text = key
    etree.SubElement(c, G + "CollectionId").text = contacts
    answer = wbxml.decode(phone.post("GetItemEstimate", estimate).content)
    assert answer.findtext(f".//{G}Estimate") == "1"
    key, adds = phone.sync_all(contacts)
    server_id = next(a.findtext(A + "ServerId") for a in adds if fields(a).get("FirstName") == "Ada")

    I = "{ItemOperations:}"
    fetch = etree.Element(I + "ItemOperations")
    f = etree.SubElement(fetch, I + "Fetch")
    etree.SubElement(f, I + "Store").text = "Mailbox"
    etree.SubElement(f, A + "CollectionId").text = contacts
    etree.SubElement(f, A + "ServerId").text = server_id
    answer = wbxml.decode(phone.post("ItemOperations", fetch).content)
    assert answer.findtext(f".//{I}Fetch/{I}Status") == "1"
    assert answer.findtext(f".//{I}Properties/{C}LastName") == "Lovelace"
    assert answer.findtext(f".//{A}Class") == "Contacts"

    async def make() -> str:
        client, creds = dav(pim, user)
        try:
            return await client.make_collection(creds, CONTACTS, "Archive", "archive")
        finally:
            await client.aclose()
    archive_path = run(make())
    tree = wbxml.decode(phone.post("FolderSync", folder_sync("1")).content)
    archive = next(a.findtext(F + "ServerId") for a in tree.iter(F + "Add")
                   if a.findtext(F + "DisplayName") == "Archive")
    archive_key, _ = phone.sync_all(archive)
    M = "{Move:}"
    move = etree.Element(M + "MoveItems")
    m = etree.SubElement(move, M + "Move")
    etree.SubElement(m, M + "SrcMsgId").text = server_id
    etree.SubElement(m, M + "SrcFldId").text = contacts
    etree.SubElement(m, M + "DstFldId").text = archive
    first = wbxml.decode(phone.post("MoveItems", move).content)
    assert first.findtext(f".//{M}Status") == "3"
    again = wbxml.decode(phone.post("MoveItems", move).content)  # the answer was lost: the same answer
    assert again.findtext(f".//{M}DstMsgId") == first.findtext(f".//{M}DstMsgId")
    assert [p for p in run(_cards(pim, user, archive_path))] == [archive_path + "ada.vcf"]
    assert book + "ada.vcf" not in run(_cards(pim, user, book))
    # Neither folder sends the move back.
    tree = phone.sync(collection(contacts, key))
    assert not list(tree.iter(A + "Delete")) and not list(tree.iter(A + "Add"))
    tree = phone.sync(collection(archive, archive_key))
    assert not list(tree.iter(A + "Add"))
    # A contact cannot move into a mail folder.
    m.find(M + "SrcMsgId").text = first.findtext(f".//{M}DstMsgId")
    m.find(M + "SrcFldId").text = archive
    m.find(M + "DstFldId").text = phone.inbox
    assert wbxml.decode(phone.post("MoveItems", move).content).findtext(f".//{M}Status") == "2"


def test_a_dav_upstream_that_fails_gives_503_and_changes_nothing(cyrus: str, database_url: str) -> None:
    from tests.conftest import running_gateway
    from tests.gateway.helpers import post, provision

    with running_gateway(cyrus, database_url, dav_upstream="http://127.0.0.1:9") as broken:
        user = new_user(broken)
        device = new_device_id()
        key = provision(broken, device, user=user)
        answer = post(broken, "FolderSync", folder_sync("0"), device_id=device, user=user, policy_key=key)
        assert answer.status_code == 503 and 10 <= int(answer.headers["Retry-After"]) <= 60
        again = post(broken, "FolderSync", folder_sync("1"), device_id=device, user=user, policy_key=key)
        # Key 1 was never handed out: nothing was committed (Status 9: start over from 0).
        assert wbxml.decode(again.content).findtext(F + "Status") == "9"


def test_an_address_book_made_upstream_wakes_a_ping_with_status_7(pim: RunningGateway) -> None:
    user, phone, contacts, book = contacts_phone(pim)
    phone.sync_all(contacts)
    ping = ping_request(contacts, 120, "Contacts")

    async def make() -> None:
        client, creds = dav(pim, user)
        try:
            await client.make_collection(creds, CONTACTS, "Friends", "friends")
        finally:
            await client.aclose()

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        held = pool.submit(phone.post, "Ping", ping)
        time.sleep(2)
        assert not held.done()
        run(make())
        answer = wbxml.decode(held.result(timeout=30).content)
    assert answer.findtext(P + "Status") == "7"


def _folder_command(name: str, **values: str) -> etree._Element:
    root = etree.Element(F + name)
    for key, value in values.items():
        etree.SubElement(root, F + key).text = value
    return root


def test_the_phone_makes_renames_and_deletes_an_address_book(pim: RunningGateway) -> None:
    user, phone, contacts, book = contacts_phone(pim)
    created = wbxml.decode(phone.post("FolderCreate", _folder_command(
        "FolderCreate", SyncKey="1", ParentId="0", DisplayName="Clients", Type="14")).content)
    assert created.findtext(F + "Status") == "1"
    server_id, key = created.findtext(F + "ServerId"), created.findtext(F + "SyncKey")
    # The same FolderCreate again (its answer was lost) is refused as existing, and makes nothing twice.
    again = wbxml.decode(phone.post("FolderCreate", _folder_command(
        "FolderCreate", SyncKey=key, ParentId="0", DisplayName="Clients", Type="14")).content)
    assert again.findtext(F + "Status") == "2"

    async def books() -> dict[str, str]:
        client, creds = dav(pim, user)
        try:
            return {c.name: c.path for c in await client.collections(creds) if c.kind == CONTACTS}
        finally:
            await client.aclose()

    assert list(run(books())).count("Clients") == 1
    renamed = wbxml.decode(phone.post("FolderUpdate", _folder_command(
        "FolderUpdate", SyncKey=key, ServerId=server_id, ParentId="0", DisplayName="Customers")).content)
    assert renamed.findtext(F + "Status") == "1"
    key = renamed.findtext(F + "SyncKey")
    assert "Customers" in run(books()) and "Clients" not in run(books())
    # Nothing of it comes back at the next FolderSync: the phone made it.
    tree = wbxml.decode(phone.post("FolderSync", folder_sync(key)).content)
    assert tree.findtext(F + "Status") == "1" and not list(tree.iter(F + "Add")) and not list(tree.iter(F + "Update"))
    key = tree.findtext(F + "SyncKey")
    refused = wbxml.decode(phone.post("FolderDelete", _folder_command(
        "FolderDelete", SyncKey=key, ServerId=contacts)).content)
    assert refused.findtext(F + "Status") == "3"  # the default address book stays
    deleted = wbxml.decode(phone.post("FolderDelete", _folder_command(
        "FolderDelete", SyncKey=key, ServerId=server_id)).content)
    assert deleted.findtext(F + "Status") == "1"
    assert "Customers" not in run(books())
