"""The CalDAV/CardDAV driver against both real DAV servers (Cyrus 3.6 and Radicale):
discovery, collections, sync-collection and its invalid token, multiget,
PUT If-None-Match (a second create finds the first), If-Match (412), DELETE,
MKCOL/PROPPATCH/DELETE of collections; and its parsing of hostile answers."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest

from usm.upstream import Credentials, PreconditionFailed, StateTooOld, UpstreamError, recording_writes
from usm.upstream.dav import DavUpstream
from usm.upstream.dav_items import DavItems
from usm.upstream.dav_store import CALENDAR, CONTACTS, NOTES, TASKS

pytestmark = pytest.mark.upstream

ALICE = Credentials("alice@example.com", "alice")
CARD = "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:{uid}\r\nFN:{name}\r\nN:{name};;;;\r\nEND:VCARD\r\n"


@pytest.fixture(params=["cyrus", "radicale"])
def server(request: pytest.FixtureRequest) -> Iterator[str]:
    yield request.getfixturevalue(request.param)


def run(coroutine):  # type: ignore[no-untyped-def]
    return asyncio.run(coroutine)


async def _book(dav: DavUpstream) -> str:
    return await dav.make_collection(ALICE, CONTACTS, "Test " + uuid.uuid4().hex[:6], "t" + uuid.uuid4().hex[:12])


def test_discovery_finds_the_homes_and_collections(server: str) -> None:
    async def go() -> None:
        dav = DavUpstream(server)
        try:
            homes = await dav.homes(ALICE)
            assert homes.addressbooks and homes.calendars
            book = await _book(dav)
            found = {c.path: c for c in await dav.collections(ALICE)}
            assert found[book].kind == CONTACTS and found[book].writable
            assert found[book].state.startswith("sync:")
        finally:
            await dav.aclose()
    run(go())


def test_objects_created_once_changed_with_if_match_and_deleted(server: str) -> None:
    async def go() -> None:
        dav = DavUpstream(server)
        try:
            book = await _book(dav)
            items = DavItems(dav, ALICE, book, CONTACTS)
            state, listed = await items.listing("", None)
            assert listed == []
            path = book + "a.vcf"
            card = CARD.format(uid=uuid.uuid4().hex, name="A")
            with recording_writes() as writes:
                etag, created = await dav.create(ALICE, path, card, "text/vcard")
            assert created and writes.wrote and not writes.folders
            again, created = await dav.create(ALICE, path, card, "text/vcard")  # a retried create
            assert not created and again == etag
            changes = await items.changes(state)
            assert changes.ids == [path]
            assert await items.versions("", [path, book + "missing.vcf"], None) == {path: etag}
            with pytest.raises(PreconditionFailed):
                await dav.replace(ALICE, path, card.replace("FN:A", "FN:B"), "text/vcard", '"not-the-etag"')
            new = await dav.replace(ALICE, path, card.replace("FN:A", "FN:B"), "text/vcard", etag)
            fetched = await dav.multiget(ALICE, book, CONTACTS, [path])
            assert fetched[path].etag == new and "FN:B" in fetched[path].data
            await dav.delete(ALICE, path)
            await dav.delete(ALICE, path)  # gone already: no failure
            assert path in (await items.changes(changes.state)).ids
            assert await items.versions("", [path], None) == {}
        finally:
            await dav.aclose()
    run(go())


def test_an_unknown_sync_token_means_list_again(server: str) -> None:
    async def go() -> None:
        dav = DavUpstream(server)
        try:
            book = await _book(dav)
            with pytest.raises(StateTooOld):
                await dav.changes(ALICE, book, "sync:" + (await dav.state(ALICE, book))[5:] + "0bogus")
            with pytest.raises(StateTooOld):
                await dav.changes(ALICE, book, "ctag:123")
        finally:
            await dav.aclose()
    run(go())


def test_collections_are_made_renamed_and_deleted(server: str) -> None:
    async def go() -> None:
        dav = DavUpstream(server)
        try:
            with recording_writes() as writes:
                book = await _book(dav)
                await dav.rename_collection(ALICE, book, "Renamed")
            assert writes.folders
            tasks = await dav.make_collection(ALICE, TASKS, "Chores", "c" + uuid.uuid4().hex[:12])
            found = {c.path: c for c in await dav.collections(ALICE)}
            assert found[book].name == "Renamed" and found[tasks].kind == TASKS
            await dav.delete_collection(ALICE, book)
            await dav.delete_collection(ALICE, tasks)
            assert book not in {c.path for c in await dav.collections(ALICE)}
        finally:
            await dav.aclose()
    run(go())


def test_a_refused_login_and_a_dead_server() -> None:
    async def go() -> None:
        dav = DavUpstream("http://127.0.0.1:9", timeout=2)
        try:
            with pytest.raises(UpstreamError):
                await dav.homes(ALICE)
        finally:
            await dav.aclose()
    run(go())


def _mock(body: bytes, status: int = 207) -> DavUpstream:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, content=body)
    return DavUpstream("http://dav.test", transport=httpx.MockTransport(handler))


@pytest.mark.parametrize("body", [
    b"<not xml",
    b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
    b'<d:multistatus xmlns:d="DAV:"><d:response><d:href>&x;</d:href></d:response></d:multistatus>',
])
def test_hostile_or_broken_answers_are_upstream_errors(body: bytes) -> None:
    async def go() -> None:
        dav = _mock(body)
        try:
            with pytest.raises(UpstreamError):
                await dav.homes(ALICE)
        finally:
            await dav.aclose()
    run(go())


def test_collection_classes_from_components() -> None:
    from lxml import etree

    from usm.upstream.dav import _collections

    def props(xml: str) -> dict:  # type: ignore[type-arg]
        root = etree.fromstring(f'<p xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav">{xml}</p>')
        return {(etree.QName(e).namespace, etree.QName(e).localname): e for e in root}

    calendar = '<d:resourcetype><d:collection/><c:calendar/></d:resourcetype>'
    comps = '<c:supported-calendar-component-set>{}</c:supported-calendar-component-set>'
    # No component set: every component (RFC 4791 5.2.3), each its own folder class.
    assert [c.kind for c in _collections("/h/a/", props(calendar), "/h/")] == [CALENDAR, TASKS, NOTES]
    todo = props(calendar + comps.format('<c:comp name="VTODO"/>'))
    assert [c.kind for c in _collections("/h/b/", todo, "/h/")] == [TASKS]
    both = props(calendar + comps.format('<c:comp name="VEVENT"/><c:comp name="VTODO"/><c:comp name="VFREEBUSY"/>'))
    assert [c.kind for c in _collections("/h/b/", both, "/h/")] == [CALENDAR, TASKS]
    assert _collections("/h/", todo, "/h/") == []  # the home itself
    read_only = props(calendar + '<d:current-user-privilege-set><d:privilege><d:read/></d:privilege>'
                                 '</d:current-user-privilege-set>')
    assert not any(c.writable for c in _collections("/h/c/", read_only, "/h/"))


EVENT = ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:x\r\nBEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:20261101T000000Z\r\n"
         "DTSTART:{start}\r\nDTEND:{end}\r\n{rule}SUMMARY:x\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n")


@pytest.mark.parametrize("store", ["cyrus", "radicale", "memory"])
def test_events_between_and_free_busy(request: pytest.FixtureRequest, store: str) -> None:
    """events_between is a time-range calendar-query (a series counts by any occurrence); the
    memory store keeps the same rule. free_busy asks Cyrus' schedule outbox; Radicale and
    the memory store have none (DavNotOffered)."""
    from usm.upstream.dav_store import DavNotOffered
    from usm.upstream.memory import MemoryDav

    async def go() -> None:
        dav = MemoryDav() if store == "memory" else DavUpstream(request.getfixturevalue(store))
        try:
            calendar = await dav.make_collection(ALICE, CALENDAR, "FB " + uuid.uuid4().hex[:6],
                                                 "fb" + uuid.uuid4().hex[:12])
            objects = {"in": ("20261201T090000Z", "20261201T100000Z", ""),
                       "before": ("20261130T090000Z", "20261130T100000Z", ""),
                       "series": ("20261125T093000Z", "20261125T094500Z", "RRULE:FREQ=DAILY\r\n")}
            for uid, (start, end, rule) in objects.items():
                await dav.create(ALICE, f"{calendar}{uid}.ics", EVENT.format(uid=uid, start=start, end=end, rule=rule),
                                 "text/calendar")
            window = (datetime(2026, 12, 1, 8, tzinfo=UTC), datetime(2026, 12, 1, 12, tzinfo=UTC))
            found = sorted(o.path.rsplit("/", 1)[1] for o in await dav.events_between(ALICE, calendar, *window))
            assert found == ["in.ics", "series.ics"]
            if store == "cyrus":
                busy = await dav.free_busy(ALICE, ALICE.user, [ALICE.user, "nobody@elsewhere.org"], *window)
                assert (datetime(2026, 12, 1, 9, tzinfo=UTC), datetime(2026, 12, 1, 10, tzinfo=UTC), "BUSY") \
                    in (busy[ALICE.user] or [])
                assert busy["nobody@elsewhere.org"] is None
            else:
                with pytest.raises(DavNotOffered):
                    await dav.free_busy(ALICE, ALICE.user, [ALICE.user], *window)
            await dav.delete_collection(ALICE, calendar)
        finally:
            await dav.aclose()
    run(go())
