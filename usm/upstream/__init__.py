"""Upstream drivers: the groupware servers the gateway translates EAS to.

Every driver implements ``Upstream`` and passes the same contract tests.
Errors from a driver are ``UpstreamError`` subclasses; foreign exceptions
(httpx, JSON) are wrapped where they occur, with ``raise ... from``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol


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


@dataclass(frozen=True)
class Credentials:
    user: str
    password: str


@dataclass(frozen=True)
class Folder:
    """An upstream mail folder (JMAP Mailbox)."""

    id: str
    name: str
    parent_id: str | None
    role: str | None  # RFC 8621 2: inbox, drafts, sent, trash, junk, archive, ...


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

    async def changes(self, state: str) -> Changes:
        """Ids changed since ``state``; raises StateTooOld if it cannot tell."""
        ...

    async def versions(self, folder_id: str, ids: list[str], since: datetime | None) -> dict[str, str]:
        """Version of each id that is in the folder (and not older than ``since``)."""
        ...


class Upstream(Protocol):
    async def authenticate(self, credentials: Credentials) -> Account:
        """Check credentials with the upstream; raise AuthenticationFailed if refused."""
        ...

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

    async def aclose(self) -> None: ...
