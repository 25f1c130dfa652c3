"""An in-memory CalDAV/CardDAV store with the interface of usm.upstream.dav.DavUpstream.

For tests that need the gateway's handlers without a DAV server: it keeps the
rules the real servers keep (and the contract suite, tests/usm/test_item_sources.py,
holds it to them): ETags change with every write, ``If-None-Match: *`` finds an
existing object, ``If-Match`` refuses a stale ETag (PreconditionFailed), sync-tokens
list what changed since them and an unknown one is StateTooOld, a read-only
collection refuses writes (WriteRefused). Every write is reported (note_write).
"""

from __future__ import annotations

import hashlib
import itertools
from dataclasses import dataclass, field
from datetime import datetime

from usm.upstream import (
    Changes,
    Credentials,
    FolderRefused,
    NotFound,
    PreconditionFailed,
    StateTooOld,
    WriteRefused,
    calendar_filter,
    note_write,
)
from usm.upstream.dav_store import (
    CALENDAR,
    CONTACTS,
    NOTES,
    TASKS,
    Collection,
    DavNotOffered,
    DavObject,
    Homes,
    Period,
)

COMPONENTS = {CALENDAR: frozenset({"VEVENT"}), TASKS: frozenset({"VTODO"}), NOTES: frozenset({"VJOURNAL"}),
              CONTACTS: frozenset()}


@dataclass
class _Collection:
    kind: str
    name: str
    created: int  # the token the collection started at: older ones are no tokens of it
    writable: bool = True
    objects: dict[str, DavObject] = field(default_factory=dict)
    log: list[tuple[int, str]] = field(default_factory=list)  # (token, path) of every change


class MemoryDav:
    def __init__(self) -> None:
        self._users: dict[str, dict[str, _Collection]] = {}
        self._tokens = itertools.count(1)
        self.observe = None

    def home(self, user: str) -> str:
        return f"/dav/{user}/"

    def _mine(self, credentials: Credentials) -> dict[str, _Collection]:
        return self._users.setdefault(credentials.user, {})

    def _collection(self, credentials: Credentials, path: str) -> _Collection:
        found = self._mine(credentials).get(path)
        if found is None:
            raise NotFound(f"memory DAV: {path}: not found")
        return found

    def _changed(self, collection: _Collection, path: str) -> None:
        collection.log.append((next(self._tokens), path))

    async def aclose(self) -> None:
        return None

    async def reachable(self) -> None:
        return None

    async def homes(self, credentials: Credentials) -> Homes:
        home = self.home(credentials.user)
        return Homes(home, home, home)

    async def collections(self, credentials: Credentials,
                          kinds: frozenset[str] | None = None) -> list[Collection]:
        home = self.home(credentials.user)
        return [Collection(path, c.kind, c.name, await self.state(credentials, path), None, COMPONENTS[c.kind],
                           c.writable, home) for path, c in sorted(self._mine(credentials).items())
                if kinds is None or c.kind in kinds]

    async def state(self, credentials: Credentials, collection: str) -> str:
        c = self._collection(credentials, collection)
        return f"sync:mem-{c.log[-1][0] if c.log else c.created}"

    async def listing(self, credentials: Credentials, collection: str, component: str | None = None,
                      since: datetime | None = None, *, incomplete: bool = False) -> tuple[str, dict[str, str]]:
        c = self._collection(credentials, collection)
        return await self.state(credentials, collection), {
            p: o.etag for p, o in c.objects.items()
            if component is None or (calendar_filter.holds(o.data, component) and
                                     (since is None or calendar_filter.occurs_since(o.data, component, since)) and
                                     not (incomplete and calendar_filter.completed(o.data)))}

    async def changes(self, credentials: Credentials, collection: str, token: str) -> Changes:
        c = self._collection(credentials, collection)
        kind, _, value = token.partition(":")
        number = value.removeprefix("mem-")
        if kind != "sync" or not number.isascii() or not number.isdigit() or \
                not c.created <= int(number) <= (c.log[-1][0] if c.log else c.created):
            raise StateTooOld(f"memory DAV: unknown sync-token {token!r}")
        ids = list(dict.fromkeys(p for t, p in c.log if t > int(number)))
        return Changes(await self.state(credentials, collection), ids,
                       versions={p: c.objects[p].etag if p in c.objects else None for p in ids})

    async def etags(self, credentials: Credentials, collection: str, kind: str, paths: list[str]) -> dict[str, str]:
        c = self._collection(credentials, collection)
        return {p: c.objects[p].etag for p in paths if p in c.objects}

    async def multiget(self, credentials: Credentials, collection: str, kind: str,
                       paths: list[str]) -> dict[str, DavObject]:
        c = self._collection(credentials, collection)
        return {p: c.objects[p] for p in paths if p in c.objects}

    async def get(self, credentials: Credentials, path: str) -> DavObject:
        collection = path.rpartition("/")[0] + "/"
        found = self._collection(credentials, collection).objects.get(path)
        if found is None:
            raise NotFound(f"memory DAV: {path}: not found")
        return found

    async def get_bytes(self, credentials: Credentials, path: str) -> bytes:
        return (await self.get(credentials, path)).data.encode()

    def _writable(self, credentials: Credentials, path: str) -> _Collection:
        c = self._collection(credentials, path.rpartition("/")[0] + "/")
        note_write()
        if not c.writable:
            raise WriteRefused(f"memory DAV: {path}: the collection is read-only")
        return c

    def _store(self, c: _Collection, path: str, data: str) -> str:
        etag = '"' + hashlib.sha256(f"{path}\0{data}\0{next(self._tokens)}".encode()).hexdigest()[:16] + '"'
        c.objects[path] = DavObject(path, etag, data)
        self._changed(c, path)
        return etag

    async def create(self, credentials: Credentials, path: str, data: str, content_type: str) -> tuple[str, bool]:
        c = self._writable(credentials, path)
        if path in c.objects:
            return c.objects[path].etag, False
        return self._store(c, path, data), True

    async def replace(self, credentials: Credentials, path: str, data: str, content_type: str, etag: str) -> str:
        c = self._writable(credentials, path)
        if path not in c.objects:
            raise NotFound(f"memory DAV: {path}: not found")
        if c.objects[path].etag != etag:
            raise PreconditionFailed(f"memory DAV: {path} changed")
        return self._store(c, path, data)

    async def query_cards(self, credentials: Credentials, collection: str, text: str) -> list[DavObject]:
        wanted = text.casefold()
        return [o for o in self._collection(credentials, collection).objects.values()
                if any(line.split(":", 1)[-1].casefold().find(wanted) >= 0 for line in o.data.splitlines()
                       if line.split(":", 1)[0].split(";")[0].upper() in ("FN", "N", "EMAIL", "NICKNAME", "ORG"))]

    async def events_between(self, credentials: Credentials, collection: str, start: datetime,
                             end: datetime) -> list[DavObject]:
        return [o for o in self._collection(credentials, collection).objects.values()
                if calendar_filter.occurs_between(o.data, "VEVENT", start, end)]

    async def free_busy(self, credentials: Credentials, organizer: str, attendees: list[str], start: datetime,
                        end: datetime) -> dict[str, list[Period] | None]:
        raise DavNotOffered("memory DAV: no scheduling (as Radicale)")

    async def find_uid(self, credentials: Credentials, collections: list[str], uid: str) -> DavObject | None:
        for collection in collections:
            for found in self._collection(credentials, collection).objects.values():
                if calendar_filter.uid_of(found.data) == uid:
                    return found
        return None

    async def delete(self, credentials: Credentials, path: str, etag: str | None = None, *,
                     schedule_reply: bool = True) -> None:
        c = self._writable(credentials, path)
        if path not in c.objects:
            return
        if etag is not None and c.objects[path].etag != etag:
            raise PreconditionFailed(f"memory DAV: {path} changed")
        del c.objects[path]
        self._changed(c, path)

    async def move(self, credentials: Credentials, path: str, destination: str) -> str | None:
        source = self._writable(credentials, path)
        target = self._writable(credentials, destination)
        if path not in source.objects:
            return None
        if destination in target.objects:
            raise PreconditionFailed(f"memory DAV: {destination} exists")
        etag = self._store(target, destination, source.objects.pop(path).data)
        self._changed(source, path)
        return etag

    async def make_collection(self, credentials: Credentials, kind: str, name: str, segment: str,
                              *, writable: bool = True) -> str:
        note_write(folders=True)
        path = self.home(credentials.user) + segment + "/"
        if path in self._mine(credentials):
            raise FolderRefused("invalidArguments", f"memory DAV: {path} exists")
        self._mine(credentials)[path] = _Collection(kind, name, next(self._tokens), writable)
        return path

    async def rename_collection(self, credentials: Credentials, path: str, name: str) -> None:
        note_write(folders=True)
        self._collection(credentials, path).name = name

    async def delete_collection(self, credentials: Credentials, path: str) -> None:
        note_write(folders=True)
        self._mine(credentials).pop(path, None)
