"""The directory: Search of the GAL store and ResolveRecipients, with pyactivesync (a real
client) and raw documents, on Cyrus and on Radicale: matches by name, e-mail and company,
Range and the true Total, pictures within MaxSize, hostile query text, an exact address,
an ambiguous and an unknown one, and EAS_DIRECTORY naming the book searched."""

from __future__ import annotations

import asyncio
import base64

import pytest
from lxml import etree

import wbxml
from tests.conftest import RunningGateway, running_gateway
from tests.gateway.helpers import Phone, new_device_id, new_user, password, pyactivesync_client
from usm.upstream import Credentials
from usm.upstream.dav import DavUpstream
from usm.upstream.dav_store import CONTACTS

pytestmark = [pytest.mark.postgres, pytest.mark.upstream]

S, G, R = "{Search:}", "{GAL:}", "{ResolveRecipients:}"
PHOTO = base64.b64encode(b"\x89PNG\r\n\x1a\n" + bytes(range(200))).decode()
PEOPLE = {
    "ada": ("Ada Lovelace", "Lovelace;Ada", "ada@example.org", "Analytical Engines",
            f"PHOTO;ENCODING=b;TYPE=PNG:{PHOTO}\r\n"),
    "alan": ("Alan Turing", "Turing;Alan", "alan@example.org", "Bletchley Park", ""),
    "grace": ("Grace Hopper", "Hopper;Grace", "grace@example.org", "US Navy", ""),
}


def card(key: str) -> str:
    name, n, email, org, extra = PEOPLE[key]
    return (f"BEGIN:VCARD\r\nVERSION:3.0\r\nUID:{key}\r\nFN:{name}\r\nN:{n};;;\r\nEMAIL;TYPE=INTERNET:{email}\r\n"
            f"ORG:{org}\r\nTITLE:Pioneer\r\nTEL;TYPE=CELL:+1 555 {len(key)}\r\n{extra}END:VCARD\r\n")


def fill(gw: RunningGateway, user: str, keys: list[str], name: str | None = None) -> str:
    """Put the cards in the user's first address book (or a new one named ``name``); its path."""
    async def go() -> str:
        client, creds = DavUpstream(gw.dav_url), Credentials(user, password(user))
        try:
            if name is None:
                book = sorted(c.path for c in await client.collections(creds) if c.kind == CONTACTS)[0]
            else:
                book = await client.make_collection(creds, CONTACTS, name, name.lower())
            for key in keys:
                await client.create(creds, f"{book}{key}.vcf", card(key), "text/vcard")
            return book
        finally:
            await client.aclose()
    return asyncio.run(go())


def search(phone: Phone, query: str, *, range_: str | None = None, picture: bool = False) -> etree._Element:
    root = etree.Element(S + "Search")
    store = etree.SubElement(root, S + "Store")
    etree.SubElement(store, S + "Name").text = "GAL"
    etree.SubElement(store, S + "Query").text = query
    options = etree.SubElement(store, S + "Options")
    if range_:
        etree.SubElement(options, S + "Range").text = range_
    if picture:
        holder = etree.SubElement(options, S + "Picture")
        etree.SubElement(holder, S + "MaxSize").text = "100000"
    return wbxml.decode(phone.post("Search", root).content)


def resolve(phone: Phone, *to: str) -> etree._Element:
    root = etree.Element(R + "ResolveRecipients")
    for one in to:
        etree.SubElement(root, R + "To").text = one
    return wbxml.decode(phone.post("ResolveRecipients", root).content)


def test_a_real_client_searches_the_directory_and_resolves_recipients(pim: RunningGateway) -> None:
    user = new_user(pim)
    Phone(pim, user)  # the first FolderSync makes the address book where the server has none
    fill(pim, user, ["ada", "alan", "grace"])
    with pyactivesync_client(pim, new_device_id(), user=user) as client:
        found = client.search_gal("Lovel")
        assert [(e.display_name, e.email_address, e.company, e.first_name, e.last_name, e.title) for e in found] == \
            [("Ada Lovelace", "ada@example.org", "Analytical Engines", "Ada", "Lovelace", "Pioneer")]
        assert [e.display_name for e in client.search_gal("example.org", max_results=2)] == \
            ["Ada Lovelace", "Alan Turing"]
        [recipient] = client.resolve_recipients("grace@example.org")
        assert (recipient.display_name, recipient.email_address) == ("Grace Hopper", "grace@example.org")


def test_range_total_pictures_and_hostile_text(pim: RunningGateway) -> None:
    user = new_user(pim)
    phone = Phone(pim, user)
    fill(pim, user, ["ada", "alan", "grace"])
    page = search(phone, "example.org", range_="1-1")
    assert page.findtext(f"{S}Status") == "1" and page.findtext(f".//{S}Store/{S}Status") == "1"
    assert page.findtext(f".//{S}Range") == "1-1" and page.findtext(f".//{S}Total") == "3"
    assert [r.findtext(f"{S}Properties/{G}DisplayName") for r in page.iter(S + "Result")] == ["Alan Turing"]
    pictured = search(phone, "Ada", picture=True)
    assert pictured.findtext(f".//{G}Picture/{G}Status") == "1"
    assert wbxml.element_bytes(pictured.find(f".//{G}Picture/{G}Data")) == base64.b64decode(PHOTO)
    for hostile in ('<x>&amp;"', "]]></c:text-match>", "%00' OR 1=1"):
        answer = search(phone, hostile)
        assert answer.findtext(f".//{S}Store/{S}Status") == "1" and answer.findtext(f".//{S}Total") == "0"
    assert search(phone, "Ada", range_="9-2").findtext(f".//{S}Store/{S}Status") == "2"


def test_resolve_recipients_exact_ambiguous_external_and_unknown(pim: RunningGateway) -> None:
    user = new_user(pim)
    phone = Phone(pim, user)
    fill(pim, user, ["ada", "alan", "grace"])
    answer = resolve(phone, "Ada Lovelace <ada@example.org>", "A", "someone@elsewhere.net", "zzzz")
    assert answer.findtext(R + "Status") == "1"
    exact, ambiguous, external, unknown = answer.findall(R + "Response")
    assert (exact.findtext(R + "Status"), exact.findtext(f"{R}Recipient/{R}EmailAddress")) == ("1", "ada@example.org")
    assert ambiguous.findtext(R + "Status") == "2"
    assert int(ambiguous.findtext(R + "RecipientCount")) >= 2
    assert (external.findtext(R + "Status"), external.findtext(f"{R}Recipient/{R}EmailAddress")) == \
        ("1", "someone@elsewhere.net")
    assert (unknown.findtext(R + "Status"), unknown.findtext(R + "RecipientCount")) == ("4", "0")


def test_the_directory_is_the_book_eas_directory_names(cyrus: str, database_url: str) -> None:
    with running_gateway(cyrus, database_url) as plain:
        user = new_user(plain)
        Phone(plain, user)
        fill(plain, user, ["ada"])
        company = fill(plain, user, ["grace"], name="Company")
    with running_gateway(cyrus, database_url, directory=company) as gw:
        phone = Phone(gw, user)
        names = [r.findtext(f"{S}Properties/{G}DisplayName") for r in search(phone, "a").iter(S + "Result")]
        assert names == ["Grace Hopper"]  # the directory only, not the user's own book
        contact = resolve(phone, "ada@example.org").find(R + "Response")
        assert contact.findtext(f"{R}Recipient/{R}Type") == "2"  # the user's own contact
