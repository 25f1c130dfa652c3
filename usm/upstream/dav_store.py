"""What the gateway does with CalDAV/CardDAV, apart from how it talks to a server: the
item classes of collections, the data types, and the DavStore protocol that
usm.upstream.dav.DavUpstream speaks to a server and usm.upstream.memory.MemoryDav keeps
in memory."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from usm.upstream import Changes, Credentials, UpstreamError

# Item classes by collection: CardDAV address books hold contacts; a calendar
# collection holds events (VEVENT), tasks (VTODO) and notes (VJOURNAL), each that it
# accepts shown as a folder of its own (Cyrus' Default takes all three).
CONTACTS, CALENDAR, TASKS, NOTES = "contacts", "calendar", "tasks", "notes"
COMPONENTS = {CALENDAR: "VEVENT", TASKS: "VTODO", NOTES: "VJOURNAL"}


class DavNotOffered(UpstreamError):
    """The server answers, but offers no CalDAV/CardDAV to this user (a JMAP-only server):
    the gateway serves mail alone, as opposed to an outage (UpstreamUnavailable)."""


@dataclass(frozen=True)
class Collection:
    """One DAV collection of the user (own or shared)."""

    path: str  # decoded absolute path, ending in "/"
    kind: str  # CONTACTS, CALENDAR, TASKS or NOTES
    name: str
    sync_token: str | None
    ctag: str | None
    components: frozenset[str]  # VEVENT, VTODO, VJOURNAL (calendars only)
    writable: bool  # DAV:write-content (or DAV:write/all) in current-user-privilege-set
    home: str  # the home it was listed from

    @property
    def state(self) -> str:
        """What changes whenever an object of the collection changes."""
        return state_of(self.sync_token, self.ctag)


@dataclass(frozen=True)
class Homes:
    principal: str
    calendars: str | None
    addressbooks: str | None
    outbox: str | None = None  # the schedule outbox (RFC 6638 2.1): free/busy of other users


# A busy period of a free/busy answer: (start, end, FBTYPE), UTC (RFC 5545 3.2.9).
Period = tuple[datetime, datetime, str]


@dataclass(frozen=True)
class DavObject:
    path: str
    etag: str
    data: str


class DavStore(Protocol):
    """The DAV object capability: what the gateway does with collections and their objects.
    DavUpstream speaks it to a server; usm.upstream.memory.MemoryDav keeps it in memory."""

    async def homes(self, credentials: Credentials) -> Homes: ...

    async def collections(self, credentials: Credentials, kinds: frozenset[str] | None = None) -> list[Collection]: ...

    async def state(self, credentials: Credentials, collection: str) -> str: ...

    async def listing(self, credentials: Credentials, collection: str, component: str | None = None,
                      since: datetime | None = None, *, incomplete: bool = False) -> tuple[str, dict[str, str]]: ...

    async def changes(self, credentials: Credentials, collection: str, token: str) -> Changes: ...

    async def etags(self, credentials: Credentials, collection: str, kind: str, paths: list[str]) -> dict[str, str]: ...

    async def multiget(self, credentials: Credentials, collection: str, kind: str,
                       paths: list[str]) -> dict[str, DavObject]: ...

    async def create(self, credentials: Credentials, path: str, data: str, content_type: str) -> tuple[str, bool]: ...

    async def replace(self, credentials: Credentials, path: str, data: str, content_type: str, etag: str) -> str: ...

    async def get(self, credentials: Credentials, path: str) -> DavObject: ...

    async def get_bytes(self, credentials: Credentials, path: str) -> bytes: ...

    async def query_cards(self, credentials: Credentials, collection: str, text: str) -> list[DavObject]: ...

    async def events_between(self, credentials: Credentials, collection: str, start: datetime,
                             end: datetime) -> list[DavObject]: ...

    async def free_busy(self, credentials: Credentials, organizer: str, attendees: list[str], start: datetime,
                        end: datetime) -> dict[str, list[Period] | None]: ...

    async def find_uid(self, credentials: Credentials, collections: list[str], uid: str) -> DavObject | None: ...

    async def delete(self, credentials: Credentials, path: str, etag: str | None = None, *,
                     schedule_reply: bool = True) -> None: ...

    async def move(self, credentials: Credentials, path: str, destination: str) -> str | None: ...

    async def make_collection(self, credentials: Credentials, kind: str, name: str, segment: str) -> str: ...

    async def rename_collection(self, credentials: Credentials, path: str, name: str) -> None: ...

    async def delete_collection(self, credentials: Credentials, path: str) -> None: ...

    async def reachable(self) -> None: ...

    async def aclose(self) -> None: ...


def state_of(sync_token: str | None, ctag: str | None) -> str:
    """A collection's state as the sync engine stores it: ``sync:<token>`` where the
    server offers RFC 6578, else ``ctag:<ctag>`` (changes() then asks for a listing)."""
    if sync_token:
        return "sync:" + sync_token
    return "ctag:" + (ctag or "")


