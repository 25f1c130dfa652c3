"""One upstream made of sources: JMAP mail, CalDAV, CardDAV.

Above this module every folder id is source-qualified: ``jmap:<Mailbox id>``,
``carddav:<collection path>``, ``caldav:<collection path>``, ``virtual:outbox``.
``Sources.folders`` merges the hierarchy of every source (one call each); the
item source of a folder is found from its id (``Sources.items``). The JMAP
driver keeps speaking bare Mailbox ids: ``QualifiedMail`` translates at its
boundary (folder ids in Folder, Message.folder_ids, ``mailboxIds/`` patches and
every argument that names a folder), so nothing above sees an unqualified id.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import AsyncIterator, Iterable
from typing import Any

from usm.upstream import (
    Account,
    BodyRequest,
    Changes,
    Credentials,
    Folder,
    FolderRefused,
    Identity,
    ItemSource,
    ListingPage,
    MailQuery,
    MailStore,
    Message,
    NotFound,
    UpstreamError,
    Vacation,
    request_hierarchy,
)
from usm.upstream.dav_items import DavItems
from usm.upstream.dav_store import CALENDAR, CONTACTS, NOTES, TASKS, Collection, DavNotOffered, DavStore

log = logging.getLogger(__name__)

JMAP, CARDDAV, CALDAV, VIRTUAL = "jmap", "carddav", "caldav", "virtual"
# A calendar collection may hold events, tasks and journal entries at once (Cyrus'
# Default does): each component is a folder of its own class, with its own prefix.
CALDAV_TODO, CALDAV_JOURNAL = "caldav-todo", "caldav-journal"
MAIL = "mail"
# The item class of a folder, by the source prefix of its id.
SOURCE_KINDS = {JMAP: MAIL, VIRTUAL: MAIL, CARDDAV: CONTACTS, CALDAV: CALENDAR, CALDAV_TODO: TASKS,
                CALDAV_JOURNAL: NOTES}
# The collection made for a user who has none of a class: (display name, path segment).
DEFAULT_COLLECTIONS = {CONTACTS: ("Contacts", "contacts"), CALENDAR: ("Calendar", "calendar"),
                       TASKS: ("Tasks", "tasks"), NOTES: ("Notes", "notes")}
KIND_SOURCES = {CONTACTS: CARDDAV, CALENDAR: CALDAV, TASKS: CALDAV_TODO, NOTES: CALDAV_JOURNAL}
# The folder segment Cyrus gives each user's own default collections.
CYRUS_DEFAULT = "Default"


def qualify(source: str, local: str) -> str:
    return f"{source}:{local}"


def source_of(folder_id: str) -> str:
    return folder_id.partition(":")[0]


def kind_of(folder_id: str) -> str:
    """The item class of a folder (mail, contacts, calendar, tasks, notes) from its id."""
    return SOURCE_KINDS.get(source_of(folder_id), MAIL)


def local_id(folder_id: str, source: str) -> str:
    """The driver's own id inside a qualified id of ``source``; NotFound for another source's."""
    prefix, _, local = folder_id.partition(":")
    if prefix != source or not local:
        raise NotFound(f"{folder_id!r} is no {source} folder")
    return local


class QualifiedMail:
    """The JMAP mail store with source-qualified folder ids (see the module docstring)."""

    def __init__(self, store: MailStore) -> None:
        self.store = store

    def __getattr__(self, name: str) -> Any:
        # Calls that name no folder: passed through as they are.
        if name in _PASS_THROUGH:
            return getattr(self.store, name)
        raise AttributeError(name)

    async def authenticate(self, credentials: Credentials) -> Account:
        return await self.store.authenticate(credentials)

    async def folders(self, credentials: Credentials) -> list[Folder]:
        cache = request_hierarchy()
        if cache is not None and JMAP in cache:
            return cache[JMAP]
        found = [dataclasses.replace(f, id=_q(f.id), parent_id=_q(f.parent_id) if f.parent_id else None)
                 for f in await self.store.folders(credentials)]
        if cache is not None:
            cache[JMAP] = found
        return found

    def mail(self, credentials: Credentials) -> ItemSource:
        return _QualifiedItems(self.store.mail(credentials))

    async def messages(self, credentials: Credentials, ids: list[str], body: BodyRequest) -> dict[str, Message]:
        found = await self.store.messages(credentials, ids, body)
        return {k: dataclasses.replace(m, folder_ids=frozenset(_q(f) for f in m.folder_ids))
                for k, m in found.items()}

    async def update_messages(self, credentials: Credentials, patches: dict[str, dict[str, Any]]) -> dict[str, str]:
        def local(path: str) -> str:
            head, _, folder = path.partition("/")
            return f"{head}/{_l(folder)}" if head == "mailboxIds" else path
        return await self.store.update_messages(
            credentials, {uid: {local(k): v for k, v in patch.items()} for uid, patch in patches.items()})

    async def import_message(self, credentials: Credentials, raw: bytes, folder_id: str, keywords: set[str]) -> str:
        return await self.store.import_message(credentials, raw, _l(folder_id), keywords)

    async def submit(self, credentials: Credentials, email_id: str, identity_id: str, sender: str,
                     recipients: list[str], *, move: tuple[str, str] | None = None) -> str:
        return await self.store.submit(credentials, email_id, identity_id, sender, recipients,
                                       move=(_l(move[0]), _l(move[1])) if move else None)

    async def create_folder(self, credentials: Credentials, name: str, parent_id: str | None) -> str:
        return _q(await self.store.create_folder(credentials, name, _l(parent_id) if parent_id else None))

    async def update_folder(self, credentials: Credentials, folder_id: str, name: str,
                            parent_id: str | None) -> None:
        await self.store.update_folder(credentials, _l(folder_id), name, _l(parent_id) if parent_id else None)

    async def destroy_folder(self, credentials: Credentials, folder_id: str) -> None:
        await self.store.destroy_folder(credentials, _l(folder_id))

    # Typed pass-throughs (named here so that a type checker sees them).
    async def download(self, credentials: Credentials, blob_id: str, *, type: str = "application/octet-stream",
                       name: str = "blob") -> bytes:
        return await self.store.download(credentials, blob_id, type=type, name=name)

    async def destroy_messages(self, credentials: Credentials, ids: list[str]) -> dict[str, str]:
        return await self.store.destroy_messages(credentials, ids)

    async def find_by_keyword(self, credentials: Credentials, keyword: str) -> list[str]:
        return await self.store.find_by_keyword(credentials, keyword)

    async def search(self, credentials: Credentials, query: MailQuery) -> tuple[list[str], int]:
        local = dataclasses.replace(query, folder_ids=[_l(f) for f in query.folder_ids]) \
            if query.folder_ids is not None else query
        return await self.store.search(credentials, local)

    async def identities(self, credentials: Credentials) -> list[Identity]:
        return await self.store.identities(credentials)

    async def vacation(self, credentials: Credentials) -> Vacation:
        return await self.store.vacation(credentials)

    async def set_vacation(self, credentials: Credentials, vacation: Vacation) -> None:
        await self.store.set_vacation(credentials, vacation)

    async def folder_state(self, credentials: Credentials) -> str:
        return await self.store.folder_state(credentials)

    async def watch_states(self, credentials: Credentials) -> tuple[str, str]:
        return await self.store.watch_states(credentials)

    async def folders_restructured(self, credentials: Credentials, since: str) -> bool:
        return await self.store.folders_restructured(credentials, since)

    async def subscribe(self, credentials: Credentials) -> AsyncIterator[None] | None:
        return await self.store.subscribe(credentials)

    async def reachable(self) -> None:
        await self.store.reachable()

    async def aclose(self) -> None:
        await self.store.aclose()


_PASS_THROUGH = frozenset({"observe", "base_url", "session", "call", "upload"})


def _q(mailbox_id: str) -> str:
    return qualify(JMAP, mailbox_id)


def _l(folder_id: str) -> str:
    return local_id(folder_id, JMAP)


class _QualifiedItems:
    """The JMAP mail ItemSource, taking qualified folder ids."""

    def __init__(self, source: ItemSource) -> None:
        self.source = source

    async def state(self) -> str:
        return await self.source.state()

    async def listing(self, folder_id: str, since: Any) -> tuple[str, list[str]]:
        return await self.source.listing(_l(folder_id), since)

    async def listing_page(self, folder_id: str, since: Any, cursor: str | None, limit: int) -> ListingPage:
        return await self.source.listing_page(_l(folder_id), since, cursor, limit)

    async def changes(self, state: str) -> Changes:
        return await self.source.changes(state)

    async def versions(self, folder_id: str, ids: list[str], since: Any) -> dict[str, str]:
        return await self.source.versions(_l(folder_id), ids, since)


class Sources:
    """The composite upstream: authentication and mail from JMAP, contacts and
    calendars from DAV (when configured), each folder routed by its qualified id.
    ``kinds``: the item classes the gateway serves; other collections are not shown."""

    def __init__(self, mail: MailStore, dav: DavStore | None, *, kinds: Iterable[str] = (MAIL, CONTACTS)) -> None:
        self.mailstore = QualifiedMail(mail)
        self.dav = dav
        self.kinds = frozenset(kinds)

    async def authenticate(self, credentials: Credentials) -> Account:
        return await self.mailstore.authenticate(credentials)

    async def reachable(self) -> None:
        await self.mailstore.reachable()
        if self.dav is not None:
            await self.dav.reachable()

    async def aclose(self) -> None:
        await self.mailstore.aclose()
        if self.dav is not None:
            await self.dav.aclose()

    async def folders(self, credentials: Credentials) -> list[Folder]:
        """Every folder of every source: the mail folders and the DAV collections of
        the served classes, with exactly one default per class."""
        if self.dav is None or not self.kinds - {MAIL}:
            return await self.mailstore.folders(credentials)
        cache = request_hierarchy()
        if cache is not None and "dav" in cache:
            return await self.mailstore.folders(credentials) + cache["dav"]
        mail, collections = await asyncio.gather(self.mailstore.folders(credentials),
                                                 self.collections(credentials))
        dav = collection_folders(collections)
        if cache is not None:
            cache["dav"] = dav
        return mail + dav

    async def collections(self, credentials: Credentials) -> list[Collection]:
        """The DAV collections of the served classes; one is made for each class the
        user has no collection of that they may write to (phones expect a default
        Contacts and Calendar folder and create new items in it; Radicale starts empty;
        a read-only share is no default)."""
        if self.dav is None:
            return []
        try:
            found = [c for c in await self.dav.collections(credentials, self.kinds) if c.kind in self.kinds]
        except DavNotOffered as exc:
            # A JMAP-only upstream: mail alone, not a 503 forever. (An outage is another error.)
            log.warning("no contacts or calendars for %s: %s", credentials.user, exc)
            return []
        missing = [k for k in DEFAULT_COLLECTIONS if k in self.kinds and
                   not any(c.kind == k and c.writable for c in found)]
        for kind in missing:
            name, segment = DEFAULT_COLLECTIONS[kind]
            try:
                await self.dav.make_collection(credentials, kind, name, segment)
            except FolderRefused as exc:  # e.g. a read-only collection already at that path
                log.warning("could not make a default %s collection for %s: %s", kind, credentials.user, exc)
        if missing:
            found = [c for c in await self.dav.collections(credentials, self.kinds) if c.kind in self.kinds]
        return found

    def items(self, credentials: Credentials, folder_id: str) -> ItemSource:
        """The item source of a folder, by its qualified id."""
        source = source_of(folder_id)
        if source == JMAP:
            return self.mailstore.mail(credentials)
        if self.dav is not None and source in KIND_SOURCES.values():
            return DavItems(self.dav, credentials, local_id(folder_id, source), kind_of(folder_id))
        raise UpstreamError(f"no source serves folder {folder_id!r}")

    def dav_path(self, folder_id: str) -> str:
        """The collection path of a DAV folder id; NotFound for any other."""
        source = source_of(folder_id)
        if self.dav is None or source not in KIND_SOURCES.values():
            raise NotFound(f"{folder_id!r} is no DAV folder")
        return local_id(folder_id, source)


def collection_folders(collections: list[Collection]) -> list[Folder]:
    """DAV collections as folders, top level, with one default per class: Cyrus'
    ``Default`` collection or the one the gateway made for the class (so that a new
    collection does not take the default's place), else the first (by path) writable one."""
    out: list[Folder] = []
    defaults: dict[str, str] = {}
    for kind in (CONTACTS, CALENDAR, TASKS, NOTES):
        made = DEFAULT_COLLECTIONS[kind][1]
        mine = sorted((c for c in collections if c.kind == kind), key=lambda c: (
            c.path.rstrip("/").rpartition("/")[2] not in (CYRUS_DEFAULT, made), not c.writable, c.path))
        if mine:
            defaults[kind] = mine[0].path
    for c in sorted(collections, key=lambda c: c.path):
        out.append(Folder(id=qualify(KIND_SOURCES[c.kind], c.path), name=c.name, parent_id=None, role=None, kind=c.kind,
                          default=defaults.get(c.kind) == c.path, writable=c.writable))
    return out
