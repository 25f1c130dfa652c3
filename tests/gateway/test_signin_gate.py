"""The node's sign-in gate (eas_gateway/signin_gate.py) with a stand-in for the upstream call:
at most ``limit`` at once, a turn waited for too long is 503 with a spread Retry-After,
the same key at the same time is one call, a different key (another password) never
shares, a refusal is shared as a refusal, and a cancelled sign-in leaves the others to
ask again. (tests/gateway/test_signin.py runs it on Cyrus.)"""

from __future__ import annotations

import asyncio

import pytest

from eas_gateway.signin_gate import SignInGate, SignInsBusy


class Upstream:
    """Sign-ins that take until the test lets them go, counting the most at once."""

    def __init__(self) -> None:
        self.go = asyncio.Event()
        self.calls = 0
        self.now = self.peak = 0

    async def sign_in(self, answer: str = "account") -> str:
        self.calls += 1
        self.now += 1
        self.peak = max(self.peak, self.now)
        try:
            await self.go.wait()
        finally:
            self.now -= 1
        if answer == "refused":
            raise PermissionError("wrong password")
        return answer


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_at_most_limit_sign_ins_reach_the_upstream_at_once() -> None:
    gate, upstream = SignInGate(limit=3, wait=5.0), Upstream()
    tasks = [asyncio.create_task(gate.sign_in(("user", n), upstream.sign_in)) for n in range(10)]
    await settle()
    assert (upstream.now, gate.running, gate.waiting) == (3, 3, 7)
    upstream.go.set()
    assert await asyncio.gather(*tasks) == ["account"] * 10
    assert upstream.peak == 3 and upstream.calls == 10
    assert (gate.running, gate.waiting, gate.turned_away) == (0, 0, 0)


async def test_a_turn_waited_for_too_long_is_503_with_a_spread_retry_after(caplog: pytest.LogCaptureFixture) -> None:
    gate, upstream = SignInGate(limit=1, wait=0.05, retry_min=10, retry_max=60), Upstream()
    first = asyncio.create_task(gate.sign_in("a", upstream.sign_in))
    await settle()
    refused = []
    for n in range(20):
        with pytest.raises(SignInsBusy) as busy:
            await gate.sign_in(("b", n), upstream.sign_in)
        refused.append(busy.value.retry_after)
    assert busy.value.http_status == 503
    assert all(10 <= r <= 60 for r in refused) and len({round(r) for r in refused}) > 5  # spread, not together
    assert upstream.calls == 1 and gate.turned_away == 20 and gate.waiting == 0
    assert "sign-in turned away: 1 upstream sign-ins under way" in caplog.text
    upstream.go.set()
    assert await first == "account"
    assert await gate.sign_in("b", upstream.sign_in) == "account"  # a turn is free again


async def test_with_no_wait_a_free_turn_is_still_taken() -> None:
    gate, upstream = SignInGate(limit=1, wait=0.0), Upstream()
    upstream.go.set()
    assert await gate.sign_in("a", upstream.sign_in) == "account"
    assert gate.turned_away == 0


async def test_the_same_key_at_once_is_one_upstream_call() -> None:
    gate, upstream = SignInGate(limit=4, wait=5.0), Upstream()
    same = [asyncio.create_task(gate.sign_in(("user", "digest"), upstream.sign_in)) for _ in range(5)]
    other = asyncio.create_task(gate.sign_in(("user", "another digest"), lambda: upstream.sign_in("other")))
    await settle()
    assert upstream.calls == 2 and gate.shared == 4
    upstream.go.set()
    assert await asyncio.gather(*same) == ["account"] * 5
    assert await other == "other"  # another password never takes the first one's answer
    assert await gate.sign_in(("user", "digest"), upstream.sign_in) == "account"
    assert upstream.calls == 3  # once the answer is given, the next one asks again


async def test_a_refusal_is_shared_as_a_refusal() -> None:
    gate, upstream = SignInGate(limit=4, wait=5.0), Upstream()
    tasks = [asyncio.create_task(gate.sign_in("k", lambda: upstream.sign_in("refused"))) for _ in range(3)]
    await settle()
    upstream.go.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert [type(r) for r in results] == [PermissionError] * 3
    assert upstream.calls == 1


async def test_a_cancelled_sign_in_leaves_those_sharing_it_to_ask_again() -> None:
    gate, upstream = SignInGate(limit=4, wait=5.0), Upstream()
    leader = asyncio.create_task(gate.sign_in("k", upstream.sign_in))
    await settle()
    follower = asyncio.create_task(gate.sign_in("k", upstream.sign_in))
    await settle()
    leader.cancel()  # its phone hung up
    await settle()
    assert not follower.done() and upstream.calls == 2  # the follower asked on its own
    upstream.go.set()
    assert await follower == "account"
    with pytest.raises(asyncio.CancelledError):
        await leader
    assert (gate.running, gate.waiting) == (0, 0)


async def test_a_cancelled_follower_does_not_cancel_the_sign_in() -> None:
    gate, upstream = SignInGate(limit=4, wait=5.0), Upstream()
    leader = asyncio.create_task(gate.sign_in("k", upstream.sign_in))
    await settle()
    follower = asyncio.create_task(gate.sign_in("k", upstream.sign_in))
    await settle()
    follower.cancel()
    await settle()
    upstream.go.set()
    assert await leader == "account"
    assert follower.cancelled() and upstream.calls == 1


def test_the_limit_is_at_least_one() -> None:
    with pytest.raises(ValueError):
        SignInGate(limit=0)
