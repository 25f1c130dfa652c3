"""HTTP Basic authentication, checked against the upstream.

A successful check is remembered for ``ttl`` seconds as a salted BLAKE2b
digest of the password, never the password itself, so that a phone's steady
stream of requests does not cost one upstream login each. A password that
matches it is never throttled; a wrong one neither evicts it (a guess must not
cost the real user an upstream login) nor reaches the upstream while
usm.signin says its (user, address) or its user must wait: that answer is
429 with Retry-After. The upstream is asked through the node's sign-in gate
(eas_gateway.signin_gate): a bounded number at a time, one call for the same
user and password at the same time.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg

from eas_gateway.errors import TooManyRequests, Unauthorized, UpstreamFailed
from eas_gateway.signin_gate import SignInGate
from usm import signin
from usm.upstream import Account, AuthenticationFailed, Credentials, Upstream, UpstreamUnavailable


def parse_basic(header: str | None) -> Credentials:
    if not header:
        raise Unauthorized("no Authorization header")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        raise Unauthorized(f"unsupported authorization scheme {scheme!r}")
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise Unauthorized("Basic credentials are not base64 UTF-8") from exc
    user, sep, password = decoded.partition(":")
    if not sep or not user:
        raise Unauthorized("Basic credentials without user:password")
    # Windows-style DOMAIN\user logins name the same mailbox user.
    return Credentials(user=user.split("\\")[-1], password=password)


@dataclass
class _Entry:
    salt: bytes
    digest: bytes
    expires: float
    account: Account


class Authenticator:
    def __init__(self, upstream: Upstream, ttl: float = 60.0, max_entries: int = 100_000, *,
                 gate: SignInGate | None = None) -> None:
        self.upstream = upstream
        self.ttl = ttl
        self.max_entries = max_entries
        self._cache: dict[str, _Entry] = {}
        # Upstream sign-ins go through the node's gate, shared by (user, password digest).
        self.gate = gate or SignInGate()
        self._share_salt = os.urandom(16)

    async def authenticate(self, credentials: Credentials, *, client: str = "",
                           db: asyncpg.Pool | None = None) -> Account:
        entry = self._cache.get(credentials.user)
        now = time.monotonic()
        if entry and entry.expires > now and hmac.compare_digest(
                entry.digest, _digest(entry.salt, credentials.password)):
            return entry.account
        user = credentials.user.lower()
        if db is not None:
            async with db.acquire() as conn:
                wait = await signin.wait(conn, user, client, now=datetime.now(UTC))
            if wait > 0:
                raise TooManyRequests(f"sign-in of {credentials.user!r} from {client} throttled", wait)
        try:
            account = await self.gate.sign_in(
                (credentials.user, _digest(self._share_salt, credentials.password)),
                lambda: self.upstream.authenticate(credentials))
        except AuthenticationFailed as exc:
            if db is not None:
                async with db.acquire() as conn:
                    await signin.failed(conn, user, client, now=datetime.now(UTC))
            raise Unauthorized(str(exc)) from exc
        except UpstreamUnavailable as exc:
            raise UpstreamFailed(str(exc)) from exc
        # Remembered before anything else is awaited: a request of the same user and password
        # coming meanwhile finds it (the gate shares only sign-ins still under way).
        if len(self._cache) >= self.max_entries:
            self._cache.clear()
        salt = os.urandom(16)
        self._cache[credentials.user] = _Entry(salt, _digest(salt, credentials.password), now + self.ttl, account)
        if db is not None:
            async with db.acquire() as conn:
                await signin.succeeded(conn, user, client)
        return account


def _digest(salt: bytes, password: str) -> bytes:
    return hashlib.blake2b(password.encode(), salt=salt, digest_size=32).digest()
