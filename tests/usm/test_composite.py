"""The composite upstream without servers: source-qualified ids in and out of the
mail store, one default folder per class, routing by id, and the hierarchy read
once per request (until the request changes it)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest

from usm.upstream import (
    Credentials,
    Folder,
    Message,
    NotFound,
    UpstreamError,
    forget_hierarchy,
    note_write,
    recording_writes,
)
from usm.upstream.composite import QualifiedMail, Sources, collection_folders, kind_of
from usm.upstream.dav import DavUpstream
from usm.upstream.dav_items import DavItems
from usm.upstream.dav_store import CALENDAR, CONTACTS, TASKS, Collection

CREDS = Credentials("u", "p")


class FakeMail:
    """Records what the composite passes down; answers with bare JMAP ids."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    async def folders(self, credentials: Credentials) -> list[Folder]:
        self.calls.append(("folders", None))
        return [Folder("M1", "Inbox", None, "inbox"), Folder("M2", "Sub", "M1", None)]

    async def messages(self, credentials: Credentials, ids: list[str], body: Any) -> dict[str, Message]:
        return {"E1": Message(id="E1", blob_id="B", thread_id=None, folder_ids=frozenset({"M1"}),
                              keywords=frozenset(), received_at=datetime(2026, 1, 1, tzinfo=UTC), size=1,
                              subject=None, sender=[], to=[], cc=[], reply_to=[], message_id=None, importance=None)}

    async def update_messages(self, credentials: Credentials, patches: dict[str, dict[str, Any]]) -> dict[str, str]:
        self.calls.append(("update", patches))
        return {}

    async def import_message(self, credentials: Credentials, raw: bytes, folder_id: str, keywords: set[str]) -> str:
        self.calls.append(("import", folder_id))
        return "E2"

    async def create_folder(self, credentials: Credentials, name: str, parent_id: str | None) -> str:
        self.calls.append(("create", parent_id))
        note_write(folders=True)
        return "M3"


def run(coroutine):  # type: ignore[no-untyped-def]
    return asyncio.run(coroutine)


def test_the_mail_store_speaks_qualified_ids_above_and_bare_ids_below() -> None:
    fake = FakeMail()
    mail = QualifiedMail(fake)  # type: ignore[arg-type]

    async def go() -> None:
        assert [(f.id, f.parent_id) for f in await mail.folders(CREDS)] == [("jmap:M1", None), ("jmap:M2", "jmap:M1")]
        assert (await mail.messages(CREDS, ["E1"], None))["E1"].folder_ids == {"jmap:M1"}  # type: ignore[arg-type]
        await mail.update_messages(CREDS, {"E1": {"mailboxIds/jmap:M1": None, "mailboxIds/jmap:M2": True,
                                                  "keywords/$seen": True}})
        assert fake.calls[-1] == ("update", {"E1": {"mailboxIds/M1": None, "mailboxIds/M2": True,
                                                    "keywords/$seen": True}})
        await mail.import_message(CREDS, b"", "jmap:M2", set())
        assert fake.calls[-1] == ("import", "M2")
        assert await mail.create_folder(CREDS, "New", "jmap:M1") == "jmap:M3"
        with pytest.raises(NotFound):
            await mail.import_message(CREDS, b"", "carddav:/a/", set())  # no mail folder: never sent down
    run(go())


def test_the_hierarchy_is_read_once_per_request_until_it_changes() -> None:
    fake = FakeMail()
    mail = QualifiedMail(fake)  # type: ignore[arg-type]

    async def go() -> None:
        with recording_writes():
            for _ in range(3):
                await mail.folders(CREDS)
            assert sum(1 for c in fake.calls if c[0] == "folders") == 1
            await mail.create_folder(CREDS, "New", None)  # a folder write: read it again
            await mail.folders(CREDS)
            forget_hierarchy()  # a held request woke
            await mail.folders(CREDS)
        assert sum(1 for c in fake.calls if c[0] == "folders") == 3
        await mail.folders(CREDS)  # outside a request: never cached
        await mail.folders(CREDS)
        assert sum(1 for c in fake.calls if c[0] == "folders") == 5
    run(go())


def _collection(path: str, kind: str, *, writable: bool = True) -> Collection:
    return Collection(path, kind, path.strip("/").rpartition("/")[2], "t", None, frozenset(), writable, "/h/")


def test_one_default_per_class() -> None:
    folders = collection_folders([
        _collection("/h/b/", CONTACTS), _collection("/h/Default/", CONTACTS), _collection("/h/a/", CONTACTS),
        _collection("/h/shared/", CALENDAR, writable=False), _collection("/h/mine/", CALENDAR),
        _collection("/h/todo/", TASKS)])
    defaults = {(f.kind, f.id) for f in folders if f.default}
    assert defaults == {(CONTACTS, "carddav:/h/Default/"), (CALENDAR, "caldav:/h/mine/"),
                        (TASKS, "caldav-todo:/h/todo/")}
    assert {kind_of(f.id) for f in folders} == {CONTACTS, CALENDAR, TASKS}
    assert kind_of("jmap:M1") == kind_of("virtual:outbox") == "mail"


def test_folders_are_routed_by_their_source() -> None:
    dav = DavUpstream("http://dav.test")
    sources = Sources(FakeMail(), dav)  # type: ignore[arg-type]
    assert isinstance(sources.items(CREDS, "carddav:/h/a/"), DavItems)
    assert sources.dav_path("carddav:/h/a/") == "/h/a/"
    with pytest.raises(NotFound):
        sources.dav_path("jmap:M1")
    with pytest.raises(UpstreamError):
        sources.items(CREDS, "elsewhere:x")
    run(dav.aclose())


@pytest.mark.parametrize("status", [404, 405, 400, 501])
def test_a_server_without_dav_means_mail_alone_and_an_outage_is_an_error(status: int) -> None:
    import httpx

    from usm.upstream import UpstreamUnavailable
    from usm.upstream.dav_store import DavNotOffered

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, text="no DAV here")

    async def go() -> None:
        dav = DavUpstream("http://jmap-only.test", transport=httpx.MockTransport(handler))
        with pytest.raises(DavNotOffered):
            await dav.collections(CREDS)
        sources = Sources(FakeMail(), dav)  # type: ignore[arg-type]
        assert [f.kind for f in await sources.folders(CREDS)] == ["mail", "mail"]
        await dav.aclose()

        def down(request: httpx.Request) -> httpx.Response:
            return httpx.Response(503)
        broken = Sources(FakeMail(), DavUpstream("http://x.test", transport=httpx.MockTransport(down)))  # type: ignore[arg-type]
        with pytest.raises(UpstreamUnavailable):  # folders must not vanish in an outage
            await broken.folders(CREDS)
    run(go())
