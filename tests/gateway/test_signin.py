"""EAS sign-in throttling (usm/signin.py), shared by the nodes through PostgreSQL: a guesser
at one address is slowed down (429 with Retry-After, and the upstream is not asked), the
real user at another address and the real user whose login is cached are not; a spray
across many addresses meets the per-user ceiling; a wrong guess does not cost the real
user an upstream login (the cached login is not evicted)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import RunningGateway, running_gateway
from tests.gateway.helpers import new_user, password
from usm import signin
from usm.upstream import Account, AuthenticationFailed, Credentials
from usm.upstream.jmap import JMAPUpstream

pytestmark = [pytest.mark.postgres, pytest.mark.upstream]


class CountingUpstream:
    """The JMAP upstream, counting its sign-ins."""

    def __init__(self, inner: JMAPUpstream) -> None:
        self.inner, self.sign_ins = inner, 0

    async def authenticate(self, credentials: Credentials) -> Account:
        self.sign_ins += 1
        return await self.inner.authenticate(credentials)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@pytest.fixture
def node(cyrus: str, database_url: str) -> Iterator[tuple[RunningGateway, CountingUpstream]]:
    upstream = CountingUpstream(JMAPUpstream(cyrus))
    with running_gateway(cyrus, database_url, upstream=upstream, trusted_proxies="127.0.0.1") as gw:
        yield gw, upstream


def sign_in(gw: RunningGateway, user: str, secret: str, client: str) -> httpx.Response:
    return httpx.options(gw.endpoint, auth=(user, secret), headers={"X-Forwarded-For": client}, timeout=30)


def test_a_guesser_is_slowed_and_the_real_user_is_not(node: tuple[RunningGateway, CountingUpstream]) -> None:
    gw, upstream = node
    user = new_user(gw)
    for _ in range(signin.FREE):
        assert sign_in(gw, user, "guess", "203.0.113.66").status_code == 401
    asked = upstream.sign_ins
    throttled = sign_in(gw, user, "guess", "203.0.113.66")
    assert throttled.status_code == 429 and int(throttled.headers["Retry-After"]) >= 1
    assert upstream.sign_ins == asked  # the upstream was not asked
    assert sign_in(gw, user, password(user), "198.51.100.7").status_code == 200  # the real user, elsewhere


def test_a_cached_login_is_never_throttled_nor_evicted_by_a_guess(
        node: tuple[RunningGateway, CountingUpstream]) -> None:
    gw, upstream = node
    user = new_user(gw)
    assert sign_in(gw, user, password(user), "192.0.2.10").status_code == 200
    asked = upstream.sign_ins
    for _ in range(signin.FREE + 2):  # the guesser shares the real user's address (one NAT)
        sign_in(gw, user, "guess", "192.0.2.10")
    assert sign_in(gw, user, password(user), "192.0.2.10").status_code == 200
    assert upstream.sign_ins == asked + signin.FREE  # the guesses the upstream saw; the real login cost none


def test_a_spray_across_addresses_meets_the_per_user_ceiling(node: tuple[RunningGateway, CountingUpstream]) -> None:
    gw, _ = node
    user = new_user(gw)
    for n in range(signin.USER_LIMIT):
        address = f"198.18.{n // signin.FREE}.{n % signin.FREE + 1}"  # never FREE failures from one address
        assert sign_in(gw, user, "guess", address).status_code == 401, n
    assert sign_in(gw, user, "guess", "198.18.200.1").status_code == 429
    assert sign_in(gw, new_user(gw), "guess", "198.18.200.1").status_code == 401  # another user is not held


def test_every_node_sees_the_failures(cyrus: str, database_url: str) -> None:
    with running_gateway(cyrus, database_url, trusted_proxies="127.0.0.1") as first, \
            running_gateway(cyrus, database_url, trusted_proxies="127.0.0.1") as second:
        user = new_user(first)
        for _ in range(signin.FREE):
            assert sign_in(first, user, "guess", "203.0.113.77").status_code == 401
        assert sign_in(second, user, "guess", "203.0.113.77").status_code == 429


def test_a_known_users_sign_in_is_a_core_echo_on_cyrus(node: tuple[RunningGateway, CountingUpstream]) -> None:
    """Cyrus answers the JMAP session resource in time growing with its accounts (~160 ms each,
    one at a time, at 5,000): once a user's session is known, a sign-in is a Core/echo (2 ms), and
    Cyrus' sessionState matches its session's state, so the session is not read again."""
    gw, _ = node
    user = new_user(gw)

    async def go() -> tuple[list[Account], list[str]]:
        upstream, ops = JMAPUpstream(gw.upstream), []
        upstream.observe = lambda op, seconds, failed: ops.append(op)
        try:
            accounts = [await upstream.authenticate(Credentials(user, password(user))) for _ in range(3)]
            with pytest.raises(AuthenticationFailed):
                await upstream.authenticate(Credentials(user, "wrong"))
            await upstream.folders(Credentials(user, password(user)))
            accounts.append(await upstream.authenticate(Credentials(user, password(user))))
        finally:
            await upstream.aclose()
        return accounts, ops

    accounts, ops = asyncio.run(go())
    assert len(set(accounts)) == 1 and accounts[0].user == user
    assert ops == ["session", "sign-in", "sign-in", "sign-in", "Mailbox/get", "sign-in"]
