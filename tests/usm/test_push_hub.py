"""usm.push.PushHub with a counting upstream (real database, for its NOTIFY): a watcher
outlives the user's last held request by linger_seconds and then forgets the user; an
upstream event reads only the store it names; once a store's events come, its polling
slows to the safety net."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from usm import database
from usm.push import CHANGED, DAV, MAIL, TIMEOUT, PushHub
from usm.upstream import Credentials
from usm.upstream.composite import KIND_SOURCES, qualify
from usm.upstream.dav_store import CALENDAR

pytestmark = pytest.mark.postgres
USER = "push-hub@example.com"
CREDENTIALS = Credentials(USER, "secret")
CALENDAR_KEY = qualify(KIND_SOURCES[CALENDAR], "/cal/Default/")  # the hub's key of the calendar's sync-token


class Collection:
    def __init__(self, state: str) -> None:
        self.path, self.name, self.kind, self.writable, self.state = "/cal/Default/", "Calendar", CALENDAR, True, state


class Upstream:
    """Sources enough for the hub: the mail states and the DAV collections, counted."""

    def __init__(self) -> None:
        self.mail_state, self.calendar_state = "m1", "c1"
        self.mail_reads = self.dav_reads = 0
        self.read_seconds = 0.0  # how long a read of the mail states takes
        self.reading = self.most_reading = 0  # mail state reads under way, now and at most
        self.folder_state, self.restructured = "f1", False
        self.asked_since: list[str] = []
        self.mailstore = self
        self.dav = self
        self.kinds = {"mail", "calendar"}

    async def watch_states(self, credentials: Credentials) -> tuple[str, str]:
        self.mail_reads += 1
        self.reading += 1
        self.most_reading = max(self.most_reading, self.reading)
        try:
            await asyncio.sleep(self.read_seconds)
        finally:
            self.reading -= 1
        return self.mail_state, self.folder_state

    async def folders_restructured(self, credentials: Credentials, since: str) -> bool:
        self.asked_since.append(since)
        return self.restructured

    async def subscribe(self, credentials: Credentials) -> None:
        return None  # no push stream: the hub polls

    async def collections(self, credentials: Credentials) -> list[Collection]:
        self.dav_reads += 1
        return [Collection(self.calendar_state)]


def run(test: Callable[[PushHub, Upstream], Awaitable[Any]], database_url: str, **hub: Any) -> Any:
    async def go() -> Any:
        pool = await database.connect(database_url, min_size=1, max_size=4)
        upstream = Upstream()
        push = PushHub(pool, upstream, **{"poll_seconds": 60.0, "dav_poll_seconds": 60.0, **hub})  # type: ignore[arg-type]
        await push.start()
        try:
            return await test(push, upstream)
        finally:
            await push.stop()
            await pool.close()
    return asyncio.run(go())


def test_a_watcher_lingers_after_the_last_request_then_forgets_the_user(database_url: str) -> None:
    async def test(push: PushHub, upstream: Upstream) -> tuple[int, ...]:
        seen = await push.states(USER, CREDENTIALS, {"mail"})
        assert await push.wait(USER, "d1", CREDENTIALS, 0.2, seen=seen) == TIMEOUT
        for _ in range(100):  # the wait may end (its step of the clock) before the watcher's first read
            if "mail" in push._states.get(USER, {}):
                break
            await asyncio.sleep(0.01)
        reads = upstream.mail_reads
        lingering = push.watched
        again = await push.states(USER, CREDENTIALS, {"mail"})  # known: nothing read
        assert again == {"mail": "m1"}
        after_states = upstream.mail_reads - reads
        # The gateway wrote (or another node saw a change): what the lingering watcher knew is
        # old, and the next request reads the new state.
        upstream.mail_state = "m2"
        await push.changed(USER)
        assert await push.states(USER, CREDENTIALS, {"mail"}) == {"mail": "m2"}
        await asyncio.sleep(0.6)
        return lingering, after_states, push.watched, len(push._credentials)

    lingering, reads, watched, credentials = run(test, database_url, linger_seconds=0.4)
    assert lingering == 1 and reads == 0
    assert watched == 0 and credentials == 0  # past linger_seconds: the credentials are gone

    async def no_linger(push: PushHub, upstream: Upstream) -> int:
        await push.wait(USER, "d1", CREDENTIALS, 0.1, seen={"mail": "m1"})
        return push.watched
    assert run(no_linger, database_url, linger_seconds=0) == 0


def test_an_event_reads_the_store_it_names_and_slows_that_stores_polling(database_url: str) -> None:
    async def test(push: PushHub, upstream: Upstream) -> dict[str, Any]:
        seen = await push.states(USER, CREDENTIALS, {"mail", CALENDAR_KEY})
        assert seen == {"mail": "m1", CALENDAR_KEY: "c1"}
        waiting = asyncio.create_task(push.wait(USER, "d1", CREDENTIALS, 5, seen=seen))
        await asyncio.sleep(0.35)  # polled every 0.05 s: several reads of each store
        polled = upstream.mail_reads, upstream.dav_reads
        await push.upstream_changed(USER, MAIL)  # mail has events now: polled every 100 s
        await asyncio.sleep(0.1)  # the poll under way ends
        mail, dav = upstream.mail_reads, upstream.dav_reads
        upstream.calendar_state = "c2"
        await push.upstream_changed(USER, DAV)  # a calendar changed: the DAV homes are read, not mail
        woke = await asyncio.wait_for(waiting, 2)
        dav_event = upstream.mail_reads - mail, upstream.dav_reads - dav
        await asyncio.sleep(0.1)
        mail, dav = upstream.mail_reads, upstream.dav_reads
        await asyncio.sleep(0.35)  # both stores have events: no poll within 100 s
        quiet = upstream.mail_reads - mail, upstream.dav_reads - dav
        return {"polled": polled, "dav_event": dav_event, "woke": woke, "quiet": quiet}

    out = run(test, database_url, poll_seconds=0.05, dav_poll_seconds=0.05, events=True, events_poll_seconds=100.0)
    assert min(out["polled"]) >= 3
    assert out["woke"] == CHANGED
    assert out["dav_event"][0] == 0 and out["dav_event"][1] >= 1
    assert out["quiet"] == (0, 0)


def test_a_delivery_moving_only_the_folder_counts_is_no_hierarchy_change(database_url: str) -> None:
    """Every delivery moves the upstream's folder state (the counts): the "folders" key a
    held request looks at stays, and only a change of the folders themselves moves it."""
    async def test(push: PushHub, upstream: Upstream) -> dict[str, Any]:
        seen = await push.states(USER, CREDENTIALS, {"folders"})
        waiting = asyncio.create_task(push.wait(USER, "d1", CREDENTIALS, 5, seen=seen))
        await asyncio.sleep(0.1)
        upstream.folder_state = "f2"  # counts only
        await push.upstream_changed(USER, MAIL)
        await asyncio.sleep(0.3)
        still = not waiting.done(), await push.states(USER, CREDENTIALS, {"folders"})
        upstream.folder_state, upstream.restructured = "f3", True  # a folder made
        await push.upstream_changed(USER, MAIL)
        woke = await asyncio.wait_for(waiting, 2)
        return {"seen": seen, "still": still, "woke": woke, "now": await push.states(USER, CREDENTIALS, {"folders"}),
                "asked": upstream.asked_since}

    out = run(test, database_url, events=True, events_poll_seconds=100.0)
    assert out["seen"] == {"folders": "f1"}
    assert out["still"] == (True, {"folders": "f1"})
    assert out["woke"] == CHANGED and out["now"] == {"folders": "f3"}
    assert out["asked"] == ["f1", "f2"]  # each time since the state read before


def test_a_node_that_takes_no_events_keeps_polling(database_url: str) -> None:
    """Another node's event (NOTIFY) is looked at, but only a node configured for events
    trusts them enough to poll less."""
    async def test(push: PushHub, upstream: Upstream) -> int:
        seen = await push.states(USER, CREDENTIALS, {"mail"})
        waiting = asyncio.create_task(push.wait(USER, "d1", CREDENTIALS, 2, seen=seen))
        await push.upstream_changed(USER, MAIL)
        await asyncio.sleep(0.1)
        reads = upstream.mail_reads
        await asyncio.sleep(0.35)
        waiting.cancel()
        return upstream.mail_reads - reads

    assert run(test, database_url, poll_seconds=0.05, events=False, events_poll_seconds=100.0) >= 3


def test_held_waits_share_one_timer_per_second_and_leave_nothing_behind(database_url: str) -> None:
    """Held requests are many: their heartbeats end on quarter seconds (up to a quarter second
    early), one timer for all that end in the same quarter; an answered wait leaves no entry."""
    async def test(push: PushHub, upstream: Upstream) -> dict[str, Any]:
        seen = await push.states(USER, CREDENTIALS, {"mail"})
        loop = asyncio.get_running_loop()
        started = loop.time()
        waits = [asyncio.create_task(push.wait(USER, f"d{i}", CREDENTIALS, 1.5, seen=seen)) for i in range(40)]
        while sum(len(w) for w in push._expiring.values()) < 40:
            await asyncio.sleep(0.01)
        timers = len(push._expiry_timers)
        reasons = await asyncio.gather(*waits)
        took = loop.time() - started
        left_after_timeouts = (dict(push._expiring), dict(push._expiry_timers))
        woken = asyncio.create_task(push.wait(USER, "early", CREDENTIALS, 600, seen=seen))
        while not push._expiring:
            await asyncio.sleep(0.01)
        await push.changed(USER)
        return {"timers": timers, "reasons": set(reasons), "took": took, "left": left_after_timeouts,
                "woken": await woken, "left_after_wake": (push._expiring, push._expiry_timers)}

    found = run(test, database_url)
    assert found["timers"] <= 4 and found["reasons"] == {TIMEOUT}  # 40 waits begun within a second
    assert 1.2 < found["took"] < 1.7  # 1.5 s, up to a quarter second early
    assert found["left"] == ({}, {})
    assert found["woken"] == CHANGED and found["left_after_wake"] == ({}, {})


def test_requests_of_one_user_arriving_at_once_read_each_store_once(database_url: str) -> None:
    """A restart, or a thousand devices of one account: the states are read once per store for
    all the requests that ask at the same time, and a failed read fails each of them."""
    async def test(push: PushHub, upstream: Upstream) -> dict[str, Any]:
        answers = await asyncio.gather(*(push.states(USER, CREDENTIALS, {"mail", CALENDAR_KEY}) for _ in range(20)))
        reads = upstream.mail_reads, upstream.dav_reads
        later = await push.states(USER, CREDENTIALS, {"mail"})  # the read is over: a new one

        async def refused(credentials: Credentials) -> tuple[str, str]:
            upstream.mail_reads += 1
            await asyncio.sleep(0.01)
            raise RuntimeError("upstream down")
        upstream.watch_states = refused  # type: ignore[method-assign]
        failures = await asyncio.gather(*(push.states(USER, CREDENTIALS, {"mail"}) for _ in range(5)),
                                        return_exceptions=True)
        return {"answers": answers, "reads": reads, "later": later, "after": upstream.mail_reads,
                "failures": failures, "in_flight": dict(push._reading)}

    found = run(test, database_url)
    assert found["answers"] == [{"mail": "m1", CALENDAR_KEY: "c1"}] * 20 and found["reads"] == (1, 1)
    assert found["later"] == {"mail": "m1"} and found["after"] == 3  # one more read, then one failed
    assert [str(f) for f in found["failures"]] == ["upstream down"] * 5 and found["in_flight"] == {}


def test_a_herd_of_state_reads_reaches_the_upstream_a_few_at_a_time(database_url: str) -> None:
    """200 users' first Pings at once (a restart; the Pings of a fan-out coming back): their
    state reads and their watchers' first reads reach the upstream at most state_reads at a
    time, and every one is answered (none waits on a connection pool until it times out)."""
    async def test(push: PushHub, upstream: Upstream) -> tuple[int, int, list[str]]:
        upstream.read_seconds = 0.005
        users = [f"herd{n}@example.com" for n in range(200)]

        async def ping(user: str) -> str:
            credentials = Credentials(user, "secret")
            seen = await push.states(user, credentials, {"mail"})
            return await push.wait(user, "d1", credentials, 0.5, seen=seen)

        reasons = await asyncio.gather(*(ping(u) for u in users))
        return upstream.most_reading, upstream.mail_reads, reasons

    most, reads, reasons = run(test, database_url, state_reads=4, linger_seconds=0)
    assert reasons == [TIMEOUT] * 200
    assert most == 4  # never more at once (200 without the lane)
    assert 200 <= reads <= 400  # each user's Ping, and its watcher's first read (unless the Ping ended first)
