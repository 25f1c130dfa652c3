"""The ItemSource contract (usm.upstream.ItemSource), one suite for every driver:
JMAP mail on Cyrus, DAV on Cyrus, DAV on Radicale and the in-memory DAV store.

What the sync engine relies on: a listing gives the state it belongs to; changes
since a state name every id added, changed or removed after it (maybe more); the
version of an item changes when it changes and is absent once it is gone; a
state the source cannot continue from raises StateTooOld."""

from __future__ import annotations

import asyncio
import smtplib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from email.message import EmailMessage

import pytest

from tests.conftest import CYRUS_DIRS, ROOT
from usm.upstream import Credentials, ItemSource, StateTooOld
from usm.upstream.composite import Sources
from usm.upstream.dav import DavUpstream
from usm.upstream.dav_store import CONTACTS, DavStore
from usm.upstream.jmap import JMAPUpstream
from usm.upstream.memory import MemoryDav

pytestmark = pytest.mark.upstream

CARD = "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:{uid}\r\nFN:{name}\r\nN:{name};;;;\r\nEND:VCARD\r\n"


@dataclass
class Harness:
    source: ItemSource
    folder: str
    add: Callable[[], Awaitable[str]]
    change: Callable[[str], Awaitable[None]]
    remove: Callable[[str], Awaitable[None]]
    stale: str  # a state the source cannot go on from


def _new_cyrus_user(url: str) -> str:
    import subprocess
    name = "s" + uuid.uuid4().hex[:10]
    subprocess.run(["bash", str(ROOT / "scripts" / "cyrus-upstream.sh"), "adduser", str(CYRUS_DIRS[url]),
                    url.rsplit(":", 1)[1], name], check=True, timeout=60, capture_output=True)
    return name


@asynccontextmanager
async def jmap_harness(url: str) -> AsyncIterator[Harness]:
    name = _new_cyrus_user(url)
    creds = Credentials(f"{name}@example.com", name)
    jmap = JMAPUpstream(url)
    sources = Sources(jmap, None)
    inbox = next(f.id for f in await sources.mailstore.folders(creds) if f.role == "inbox")

    async def add() -> str:
        before = await jmap.mail(creds).state()
        message = EmailMessage()
        message["From"], message["To"], message["Subject"] = "a@example.org", creds.user, uuid.uuid4().hex
        message.set_content("x")
        with smtplib.LMTP(str(CYRUS_DIRS[url] / "socket" / "lmtp")) as lmtp:
            lmtp.send_message(message, "a@example.org", [creds.user])
        [created] = (await jmap.mail(creds).changes(before)).ids  # (Cyrus has no text search here)
        return created

    async def change(uid: str) -> None:
        assert not await jmap.update_messages(creds, {uid: {"keywords/$flagged": True}})

    async def remove(uid: str) -> None:
        assert not await jmap.destroy_messages(creds, [uid])

    try:
        yield Harness(sources.items(creds, inbox), inbox, add, change, remove, stale="not-a-state")
    finally:
        await jmap.aclose()


@asynccontextmanager
async def dav_harness(dav: DavStore, creds: Credentials) -> AsyncIterator[Harness]:
    book = await dav.make_collection(creds, CONTACTS, "Contract", "k" + uuid.uuid4().hex[:12])
    sources = Sources(JMAPUpstream("http://unused.invalid"), dav)
    etags: dict[str, str] = {}

    async def add() -> str:
        uid = uuid.uuid4().hex
        path = f"{book}{uid}.vcf"
        etags[path] = (await dav.create(creds, path, CARD.format(uid=uid, name="A"), "text/vcard"))[0]
        return path

    async def change(path: str) -> None:
        uid = path.rpartition("/")[2].removesuffix(".vcf")  # a card keeps its UID (RFC 6352 no-uid-conflict)
        etags[path] = await dav.replace(creds, path, CARD.format(uid=uid, name="B"), "text/vcard", etags[path])

    async def remove(path: str) -> None:
        await dav.delete(creds, path)

    try:
        yield Harness(sources.items(creds, "carddav:" + book), "carddav:" + book, add, change, remove,
                      stale="sync:" + (await dav.state(creds, book))[5:] + "0")  # a token from the future
    finally:
        await dav.delete_collection(creds, book)
        await dav.aclose()


@pytest.fixture(params=["jmap-cyrus", "dav-cyrus", "dav-radicale", "dav-memory"])
def harness(request: pytest.FixtureRequest) -> Callable[[], AsyncIterator[Harness]]:
    alice = Credentials("alice@example.com", "alice")
    if request.param == "jmap-cyrus":
        url = request.getfixturevalue("cyrus")
        return lambda: jmap_harness(url)  # type: ignore[return-value]
    if request.param == "dav-memory":
        return lambda: dav_harness(MemoryDav(), alice)  # type: ignore[return-value]
    url = request.getfixturevalue(request.param.removeprefix("dav-"))
    return lambda: dav_harness(DavUpstream(url), alice)  # type: ignore[return-value]


def run(coroutine):  # type: ignore[no-untyped-def]
    return asyncio.run(coroutine)


def test_changes_name_what_was_added_changed_and_removed(harness: Callable[[], AsyncIterator[Harness]]) -> None:
    async def go() -> None:
        async with harness() as h:  # type: ignore[attr-defined]
            first = await h.add()
            state, listed = await h.source.listing(h.folder, None)
            assert listed == [first]
            assert await h.source.state() == state
            versions = await h.source.versions(h.folder, [first], None)
            assert set(versions) == {first}
            assert (await h.source.changes(state)).ids == []  # nothing since

            second = await h.add()
            await h.change(first)
            after_change = await h.source.changes(state)
            assert {first, second} <= set(after_change.ids)
            now = await h.source.versions(h.folder, [first, second], None)
            assert set(now) == {first, second} and now[first] != versions[first]

            await h.remove(second)
            after_remove = await h.source.changes(after_change.state)
            assert second in after_remove.ids
            assert set(await h.source.versions(h.folder, [first, second], None)) == {first}
            state, listed = await h.source.listing(h.folder, None)
            assert listed == [first]
    run(go())


def test_a_state_the_source_cannot_go_on_from_is_state_too_old(harness: Callable[[], AsyncIterator[Harness]]) -> None:
    async def go() -> None:
        async with harness() as h:  # type: ignore[attr-defined]
            with pytest.raises(StateTooOld):
                await h.source.changes(h.stale)
    run(go())


def test_a_listing_in_pages_names_every_id_once_when_the_last_listed_is_gone(
        harness: Callable[[], AsyncIterator[Harness]]) -> None:
    """The first sync's listing (ItemSource.listing_page): pages of at most the limit (or all at
    once, a source that cannot page), the state of the first page, and every id once over all
    pages, even when the id the last page ended with was removed before the next."""
    async def go() -> None:
        async with harness() as h:  # type: ignore[attr-defined]
            made = [await h.add() for _ in range(5)]
            first = await h.source.listing_page(h.folder, None, None, 2)
            assert first.state == await h.source.state()
            assert set(first.ids) <= set(made) and (len(first.ids) == 2 or first.cursor is None)
            listed, cursor = list(first.ids), first.cursor
            if cursor is not None:
                await h.remove(listed[-1])
            while cursor is not None:
                page = await h.source.listing_page(h.folder, None, cursor, 2)
                assert page.state is None and len(page.ids) <= 2
                listed += page.ids
                cursor = page.cursor
            assert sorted(listed) == sorted(made)  # each once, the removed one on its page
            # The versions of what was listed (read with the pages: in one request, as of its page).
            gone = {first.ids[-1]} if first.cursor is not None else set()
            assert set(await h.source.versions(h.folder, listed, None)) - gone == set(made) - gone
    run(go())
