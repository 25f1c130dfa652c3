"""Upstream drivers: the groupware servers the gateway translates EAS to.

Every driver implements ``Upstream`` and passes the same contract tests.
Errors from a driver are ``UpstreamError`` subclasses; foreign exceptions
(httpx, JSON) are wrapped where they occur, with ``raise ... from``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


class UpstreamError(RuntimeError):
    """The upstream failed or answered something the driver cannot use."""


class AuthenticationFailed(UpstreamError):
    """The upstream refused the user's credentials."""


class UpstreamUnavailable(UpstreamError):
    """The upstream could not be reached or answered with a server error."""


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


class Upstream(Protocol):
    async def authenticate(self, credentials: Credentials) -> Account:
        """Check credentials with the upstream; raise AuthenticationFailed if refused."""
        ...

    async def folders(self, credentials: Credentials) -> list[Folder]:
        """The user's mail folders."""
        ...

    async def aclose(self) -> None: ...
