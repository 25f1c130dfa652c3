"""Upstream drivers: the groupware servers the gateway translates EAS to.

Every source implements ``Upstream`` (sign-in, health) and its capability:
``MailStore`` (jmap.py) or ``dav.DavStore`` (dav.py; memory.py in tests);
composite.py makes one upstream of them. What the sync engine reads of any of
them is an ``ItemSource``, and every ItemSource passes the same contract suite
(tests/usm/test_item_sources.py: JMAP on Cyrus, DAV on Cyrus and Radicale, the
memory store). Errors from a driver are ``UpstreamError`` subclasses; foreign
exceptions (httpx, JSON, XML) are wrapped where they occur, with ``raise ... from``.
A driver reports every write it sends (``note_write``), so that a request that
changed the user's data wakes the user's held requests, whatever it called.
"""

from __future__ import annotations

import contextvars
import hashlib
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import httpx


class UpstreamError(RuntimeError):
    """The upstream failed or answered something the driver cannot use."""


class AuthenticationFailed(UpstreamError):
    """The upstream refused the user's credentials."""


class UpstreamUnavailable(UpstreamError):
    """The upstream could not be reached or answered with a server error."""


class StateTooOld(UpstreamError):
    """The upstream cannot tell the changes since this state any more: list again."""


class NotFound(UpstreamError):
    """The item or blob does not exist (any more) upstream."""


class PreconditionFailed(UpstreamError):
    """The object changed upstream since the version the write was based on (HTTP 412)."""


class WriteRefused(UpstreamError):
    """The upstream refused a write to an item (no write right on a shared
    collection, an object it does not accept): a per-item failure, not an outage."""


class FolderRefused(UpstreamError):
    """The upstream refused a folder operation (name taken or invalid, a
    role folder, a folder with children); ``kind`` is the upstream's reason."""

    def __init__(self, kind: str, description: str) -> None:
        super().__init__(f"folder operation refused: {kind}: {description}")
        self.kind = kind
        self.description = description


class SubmissionRefused(UpstreamError):
    """The upstream refused to send a message (bad recipients, too big, ...)."""


@dataclass
class WriteLog:
    """What one request wrote upstream (set by the caller around a command), and what
    it read that stays true until it writes: the folder hierarchy, read once per
    request however many role look-ups the command makes."""

    wrote: bool = False
    folders: bool = False
    hierarchy: dict[str, list[Folder]] = field(default_factory=dict)


_WRITES: contextvars.ContextVar[WriteLog | None] = contextvars.ContextVar("eas_upstream_writes", default=None)


class recording_writes:
    """Record in a WriteLog every upstream write made inside the block, by any driver
    and whatever its method is called: the drivers report each HTTP write they send
    (note_write), so that the user's held requests are woken afterwards. (A class, not a
    generator: it stays on the stack of every held Ping.)"""

    __slots__ = ("log", "token")

    def __init__(self) -> None:
        self.log = WriteLog()

    def __enter__(self) -> WriteLog:
        self.token = _WRITES.set(self.log)
        return self.log

    def __exit__(self, *exc: object) -> None:
        _WRITES.reset(self.token)


def note_write(*, folders: bool = False) -> None:
    """Called by a driver before it sends a request that may change the user's data."""
    log = _WRITES.get()
    if log is not None:
        log.wrote = True
        log.folders = log.folders or folders
        if folders:
            log.hierarchy.clear()


_SHARING: contextvars.ContextVar[str | None] = contextvars.ContextVar("eas_upstream_sharing", default=None)


@contextmanager
def sharing(as_of: str | None) -> Iterator[None]:
    """Inside the block, a driver may answer a read with the answer to the same read that
    another request, which also knew the user's upstream state to be ``as_of``, has in
    flight (Ping's checks after a wake-up: several folders, several devices of one user,
    the same Email/changes). Keyed by ``as_of`` so that a read started before the change
    that woke a request is never its answer; None: no sharing."""
    token = _SHARING.set(as_of)
    try:
        yield
    finally:
        _SHARING.reset(token)


def shared_as_of() -> str | None:
    return _SHARING.get()


def forget_hierarchy() -> None:
    """The hierarchy may have changed since this request read it (a held request woke)."""
    log = _WRITES.get()
    if log is not None:
        log.hierarchy.clear()


def request_hierarchy() -> dict[str, list[Folder]] | None:
    """This request's cache of folder listings (by source), or None outside a request."""
    log = _WRITES.get()
    return log.hierarchy if log is not None else None


@dataclass(frozen=True)
class Credentials:
    """Whom the upstream is asked as: the user's name and password (Basic), or, for a user
    signed in with OAuth (eas_gateway.oauth), ``auth``, which sets each request's
    Authorization (the phone's token, or one the gateway signs) and there is no password."""

    user: str
    password: str = ""
    auth: httpx.Auth | None = field(default=None, compare=False, repr=False)

    def http_auth(self) -> httpx.Auth | tuple[str, str]:
        return self.auth if self.auth is not None else (self.user, self.password)


@dataclass(frozen=True)
class Folder:
    """An upstream folder: a JMAP Mailbox, or a DAV collection. Above the drivers
    ``id`` and ``parent_id`` are source-qualified (usm.upstream.composite)."""

    id: str
    name: str
    parent_id: str | None
    role: str | None  # RFC 8621 2: inbox, drafts, sent, trash, junk, archive, ...
    kind: str = "mail"  # the item class: mail, contacts, calendar, tasks, notes
    default: bool = False  # the class's default folder (one per class; mail has its roles)
    writable: bool = True  # the user may change its items (a share may not allow it)


@dataclass(frozen=True)
class Account:
    """A user the upstream authenticated, and what the driver learned about it."""

    user: str
    account_id: str


@dataclass(frozen=True)
class Address:
    name: str | None
    email: str


@dataclass(frozen=True)
class Attachment:
    blob_id: str
    name: str | None
    type: str
    size: int
    content_id: str | None
    inline: bool


@dataclass(frozen=True)
class MailQuery:
    """A mailbox search (Search, Find): text in any part, folders (None: all), dates, one
    conversation (its ``conversation_id``), a page."""

    text: str | None = None
    folder_ids: list[str] | None = None
    after: datetime | None = None
    before: datetime | None = None
    conversation: bytes | None = None
    position: int = 0
    limit: int = 100


def conversation_id(thread_id: str) -> bytes:
    """The 16 bytes a thread of the upstream is shown as (Email2:ConversationId): fixed
    length whatever the server's thread ids look like; a search by it finds the thread by
    computing this of the threads in scope."""
    return hashlib.md5(thread_id.encode()).digest()


@dataclass(frozen=True)
class BodyText:
    """A body in one representation, as the upstream gave it (maybe cut short)."""

    text: str
    size: int  # octets of the whole body, as the upstream counts them
    truncated: bool


@dataclass(frozen=True)
class Message:
    """An e-mail as the gateway needs it (JMAP Email, RFC 8621 4.1)."""

    id: str
    blob_id: str  # the whole RFC 5322 message
    thread_id: str | None
    folder_ids: frozenset[str]
    keywords: frozenset[str]
    received_at: datetime
    size: int
    subject: str | None
    sender: list[Address]
    to: list[Address]
    cc: list[Address]
    reply_to: list[Address]
    message_id: str | None
    importance: str | None  # the Importance header, or X-Priority mapped to low/normal/high
    text: BodyText | None = None
    html: BodyText | None = None
    html_is_text: bool = False  # the message has no HTML part: ``html`` is plain text
    text_is_html: bool = False  # the message has no plain part: ``text`` is HTML
    attachments: list[Attachment] = field(default_factory=list)
    references: list[str] = field(default_factory=list)  # message ids of the References header


@dataclass(frozen=True)
class Identity:
    """An address the user may send from (JMAP Identity, RFC 8621 6)."""

    id: str
    name: str | None
    email: str


@dataclass(frozen=True)
class Vacation:
    """The automatic reply (JMAP VacationResponse, RFC 8621 8)."""

    enabled: bool
    start: datetime | None = None
    end: datetime | None = None
    subject: str | None = None
    text: str | None = None
    html: str | None = None


@dataclass(frozen=True)
class BodyRequest:
    """Which representations of a body to fetch, and how much of each."""

    text: bool = False
    html: bool = False
    max_bytes: int | None = None  # None: all of it


@dataclass(frozen=True)
class Changes:
    """Items that may have changed since a state; ``more`` when the list is cut."""

    state: str
    ids: list[str]
    more: bool = False
    # Versions the source told with the changes (DAV sync-collection gives ETags; None: gone).
    versions: dict[str, str | None] = field(default_factory=dict)


@dataclass(frozen=True)
class ListingPage:
    """One page of a folder's listing (ItemSource.listing_page), newest first."""

    state: str | None  # the first page's: the state the listing starts from; later pages: None
    ids: list[str]
    cursor: str | None  # where the listing goes on (opaque to the caller); None: this was the end


def keywords_version(keywords: dict[str, bool] | frozenset[str] | set[str]) -> str:
    """The version of an email (what ItemSource.versions gives for mail): its
    keywords, the only part of a message that changes in place."""
    return " ".join(sorted(k.lower() for k in keywords))


def version_keywords(version: str) -> frozenset[str]:
    """The keywords a mail version stands for (the inverse of keywords_version)."""
    return frozenset(version.split())


class ItemSource(Protocol):
    """The items of one kind (mail, later events, contacts) for one user.

    The sync engine (usm.sync) needs only this: a listing of a folder with the
    state it belongs to, the ids that may have changed since a state, and for
    given ids whether they are in the folder and their version (a string that
    changes whenever what the phone shows of the item changes).
    """

    async def state(self) -> str:
        """The current state string: it changes whenever any item changes."""
        ...

    async def listing(self, folder_id: str, since: datetime | None) -> tuple[str, list[str]]:
        """(state, ids newest first) of the folder's items received at or after ``since``."""
        ...

    async def listing_page(self, folder_id: str, since: datetime | None, cursor: str | None,
                           limit: int) -> ListingPage:
        """The listing a page at a time: ``cursor`` None for the first page (with its state),
        else an earlier page's cursor; at most ``limit`` ids (a source that cannot page gives
        them all, cursor None). Over all pages every id unchanged since the first page's
        state comes exactly once; one changed since may come again or not at all (the
        changes since that state name it)."""
        ...

    async def changes(self, state: str) -> Changes:
        """Ids changed since ``state``; raises StateTooOld if it cannot tell."""
        ...

    async def versions(self, folder_id: str, ids: list[str], since: datetime | None) -> dict[str, str]:
        """Version of each id that is in the folder (and not older than ``since``)."""
        ...


class Upstream(Protocol):
    """What every source offers: sign-in and health."""

    async def authenticate(self, credentials: Credentials) -> Account:
        """Check credentials with the upstream; raise AuthenticationFailed if refused."""
        ...

    async def reachable(self) -> None:
        """Raise UpstreamUnavailable unless the upstream answers (health checks; no credentials)."""
        ...

    async def aclose(self) -> None: ...


class MailStore(Upstream, Protocol):
    """The mail capability (JMAP): messages, import, submission, identities, vacation."""

    async def folders(self, credentials: Credentials) -> list[Folder]:
        """The user's mail folders."""
        ...

    def mail(self, credentials: Credentials) -> ItemSource:
        """The user's mail as an ItemSource."""
        ...

    async def messages(self, credentials: Credentials, ids: list[str], body: BodyRequest) -> dict[str, Message]:
        """The messages that still exist among ``ids``, with the bodies asked for."""
        ...

    async def download(self, credentials: Credentials, blob_id: str, *, type: str = "application/octet-stream",
                       name: str = "blob") -> bytes:
        """A blob's content (a whole message, an attachment); NotFound if there is none."""
        ...

    # Writing. Failures per item come back as {id: reason}; whole-call failures raise.

    async def update_messages(self, credentials: Credentials, patches: dict[str, dict[str, Any]]) -> dict[str, str]:
        """Patch emails: ``keywords/<k>`` and ``mailboxIds/<folder>`` set to True or None."""
        ...

    async def destroy_messages(self, credentials: Credentials, ids: list[str]) -> dict[str, str]:
        """Delete emails for good; one that is already gone is no failure."""
        ...

    async def import_message(self, credentials: Credentials, raw: bytes, folder_id: str,
                             keywords: set[str]) -> str:
        """Store an RFC 5322 message in a folder with keywords; the new email's id."""
        ...

    async def search(self, credentials: Credentials, query: MailQuery) -> tuple[list[str], int]:
        """(ids of one page of the matching emails, newest first; how many match in all)."""
        ...

    async def find_by_keyword(self, credentials: Credentials, keyword: str) -> list[str]:
        """Emails that carry a keyword (the gateway marks what it creates, to find it after a crash)."""
        ...

    async def identities(self, credentials: Credentials) -> list[Identity]: ...

    async def submit(self, credentials: Credentials, email_id: str, identity_id: str, sender: str,
                     recipients: list[str], *, move: tuple[str, str] | None = None) -> str:
        """Send a stored $draft email to ``recipients``; on success the upstream drops
        its $draft keyword (and moves it from ``move[0]`` to ``move[1]``) at once.
        SubmissionRefused if the upstream will not send it."""
        ...

    async def create_folder(self, credentials: Credentials, name: str, parent_id: str | None) -> str: ...

    async def update_folder(self, credentials: Credentials, folder_id: str, name: str,
                            parent_id: str | None) -> None: ...

    async def destroy_folder(self, credentials: Credentials, folder_id: str) -> None: ...

    async def vacation(self, credentials: Credentials) -> Vacation: ...

    async def set_vacation(self, credentials: Credentials, vacation: Vacation) -> None: ...

    async def folder_state(self, credentials: Credentials) -> str:
        """A string that changes whenever the user's folder hierarchy changes."""
        ...

    async def watch_states(self, credentials: Credentials) -> tuple[str, str]:
        """(mail state, folder state) in one call: what a push watcher polls."""
        ...

    async def folders_restructured(self, credentials: Credentials, since: str) -> bool:
        """Whether the folder hierarchy changed since the folder state ``since``, not only the
        folders' message counts (which every delivery moves); True when the upstream cannot tell."""
        ...

    async def subscribe(self, credentials: Credentials) -> AsyncIterator[None] | None:
        """The server's push stream, yielding once per change of the user's mail or
        folders (JMAP EventSource); None when the server offers no push."""
        ...
