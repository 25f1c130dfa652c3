"""Push: hanging requests (Ping, the waiting Sync) wait here for changes.

One ``PushHub`` per gateway process. A request waits with ``wait(user,
device, credentials, timeout)``; it returns why it woke:

- ``CHANGED``: one of the upstream states the request looked at moved. A
  request waits with the states it checked (``seen``: "mail" for the JMAP Email
  state, "folders" and "dav-folders" for the hierarchies, a DAV folder id for
  its collection's sync-token) and wakes only when one of those moves. Each
  node runs one watcher per user with waiting requests, however many devices
  the user has: for mail it follows the server's push stream (JMAP EventSource)
  where there is one, else polls the cheap state strings every
  ``poll_seconds`` (Cyrus 3.6 from Debian offers no working push), and where an
  IMAP service is configured also idles on the INBOX (usm.upstream.imap_idle),
  reading the state as soon as IDLE reports a change; for DAV it
  reads every collection's sync-token with one PROPFIND per home every
  ``dav_poll_seconds``. A node that sees a change tells the others through
  PostgreSQL NOTIFY, so every node's waiters look again. Where the upstream
  pushes its own change events (``upstream_changed``: eas_gateway.upstream_events),
  an event reads only the store it names (mail, or the DAV homes) at once, and on a
  node that takes events (``events``), while a store's events come its polling slows
  to ``events_poll_seconds``, a safety net for a lost event, and ``current`` gives
  the state as the events keep it (a Sync answered without asking the upstream).
  A watcher outlives its user's last waiting request by ``linger_seconds``: a
  phone's next Ping (after the Sync it woke) finds the states known and the watcher
  running, with nothing to read again. The "folders" key is a hierarchy token that
  a change of the folders' counts alone (every delivery's) does not move.
- ``SUPERSEDED``: a newer hanging request of the same device started, on this
  node or another (NOTIFY again): one hanging request per device.
- ``TIMEOUT``.
- ``SHUTDOWN``: the process is stopping (``release_all``): every held request is
  answered now, as at the end of its heartbeat, and any new one at once.

Credentials are held in memory only, while the user has waiting requests (and for
``linger_seconds`` after the last).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import math
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import asyncpg

from usm.listener import Listener
from usm.upstream import AuthenticationFailed, Credentials, UpstreamError
from usm.upstream.composite import KIND_SOURCES, Sources, qualify
from usm.upstream.imap_idle import ImapIdle

log = logging.getLogger(__name__)

T = TypeVar("T")
CHANNEL = "eas_gateway_push"
CHANGED, SUPERSEDED, TIMEOUT, SHUTDOWN = "changed", "superseded", "timeout", "shutdown"
IDLE_RETRY_SECONDS = 5.0
MAIL, DAV = "mail", "dav"  # the stores an upstream event may name
EVENT_SETTLE_SECONDS = 0.02
# Upstream state reads under way at once on a node (PushHub._lane); the upstream client holds 100
# connections (httpx's default), and a request waits at most 30 s for one.
STATE_READS = 32
EXPIRY_STEP = 0.25  # held waits end this much early at most: one timer per step for all of them
EVENTS_TRUSTED_SECONDS = 3600.0  # events of a store slow its polling while one came within this


class _Waiter:
    """One held request: a bare future (not an asyncio.Event and a wait_for task: held
    requests are many, and each of those costs a kilobyte)."""

    __slots__ = ("device_id", "token", "seen", "woken", "reason")

    def __init__(self, device_id: str, token: str, seen: dict[str, str]) -> None:
        self.device_id, self.token = device_id, token
        self.seen = seen  # the upstream states the request has checked against
        self.woken: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.reason = TIMEOUT

    def wake(self, reason: str) -> None:
        """The first reason given is the answer's; later ones change nothing."""
        if not self.woken.done():
            self.reason = reason
            self.woken.set_result(None)


class PushHub:
    def __init__(self, pool: asyncpg.Pool, upstream: Sources, *, poll_seconds: float,
                 dav_poll_seconds: float = 20.0, idle: ImapIdle | None = None,
                 events: bool = False, events_poll_seconds: float = 300.0, linger_seconds: float = 60.0,
                 state_reads: int = STATE_READS) -> None:
        self.pool = pool
        self.idle = idle
        self.upstream = upstream
        self.poll_seconds = poll_seconds
        self.dav_poll_seconds = dav_poll_seconds
        self.events_poll_seconds = events_poll_seconds
        self.linger_seconds = linger_seconds
        # The stores (MAIL, DAV) the upstream sends change events for -> when the last came (only on
        # a node that takes events itself, ``events``): polled only as a safety net meanwhile.
        self.events = events
        self._evented: dict[str, float] = {}
        self._lingering: dict[str, asyncio.TimerHandle] = {}
        # The upstream's folder state each watcher read last (see _hierarchy_token).
        self._folder_states: dict[str, str] = {}
        self.node = uuid.uuid4().hex
        self._waiters: dict[str, set[_Waiter]] = {}
        self._reading: dict[tuple[str, str], asyncio.Future[Any]] = {}  # reads in flight (_once)
        # Reads of upstream states (requests' and watchers') under way at once: a herd (every phone's
        # Ping after a restart, a delivery to thousands) waits its turn here instead of taking all of
        # the upstream client's connections (the Syncs of phones keep theirs; none times out waiting).
        self._lane = asyncio.Semaphore(state_reads)
        self._expiring: dict[int, set[_Waiter]] = {}  # by the step their wait ends in (_expire_in)
        self._expiry_timers: dict[int, asyncio.TimerHandle] = {}
        self._watchers: dict[str, asyncio.Task[None]] = {}
        self._credentials: dict[str, Credentials] = {}
        self._states: dict[str, dict[str, str]] = {}
        self._listener = Listener(pool, CHANNEL, self._notified, on_back=self._listening_again)
        self._closing = False
        # (user, store) an upstream event has a state read under way for -> another event came meanwhile.
        self._checking: dict[tuple[str, str], bool] = {}
        self._event_checks: set[asyncio.Task[None]] = set()

    @property
    def waiting(self) -> int:
        return sum(len(w) for w in self._waiters.values())

    async def start(self) -> None:
        await self._listener.start()

    def release_all(self) -> None:
        """The process stops: answer every held request now (Status 1, an empty waiting-Sync
        answer) instead of letting the server cut them off; later ones are not held."""
        self._closing = True
        for waiters in list(self._waiters.values()):
            for waiter in list(waiters):
                waiter.wake(SHUTDOWN)

    def _listening_again(self) -> None:
        for user in list(self._waiters):
            self._wake(user)  # notifications sent while the database was away are lost: look again

    async def stop(self) -> None:
        for handle in [*self._lingering.values(), *self._expiry_timers.values()]:
            handle.cancel()
        self._lingering.clear()
        for task in self._watchers.values():
            task.cancel()
        for task in list(self._watchers.values()):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._listener.stop()

    async def states(self, user: str, credentials: Credentials, keys: set[str]) -> dict[str, str]:
        """The user's upstream states named by ``keys`` (see the module docstring): as
        this node's watcher last saw them where it has, else read from the upstream
        (one call per source)."""
        known = self._states.get(user, {})
        missing = keys - known.keys()
        out = {k: known[k] for k in keys & known.keys()}
        if missing & {"mail", "folders"}:
            mail, folders = await self._once(user, MAIL, lambda: self._in_lane(
                lambda: self.upstream.mailstore.watch_states(credentials)))
            out["mail"] = mail
            out.setdefault("folders", folders)  # the watcher's hierarchy token where it has one
        if missing - {"mail", "folders"}:
            out.update(await self._once(user, DAV, lambda: self._in_lane(lambda: self._dav_states(credentials))))
        return {k: out.get(k, "") for k in keys}

    async def _once(self, user: str, store: str, read: Callable[[], Awaitable[T]]) -> T:
        """``read()``, or the same read of the user's store another request has in flight:
        when many requests of one user come at once (a restart, a thousand devices of a
        test account) the upstream is asked once, not by each. Joining a read begun a moment
        before is as if the request had come that moment sooner: a change after it wakes the
        wait like any other."""
        running: asyncio.Future[Any] | None = self._reading.get((user, store))
        if running is None:
            running = asyncio.ensure_future(read())
            self._reading[(user, store)] = running
            running.add_done_callback(lambda done: self._read_done(user, store, done))
        result: T = await asyncio.shield(running)
        return result

    async def _in_lane(self, read: Callable[[], Awaitable[T]]) -> T:
        async with self._lane:
            return await read()

    def _read_done(self, user: str, store: str, done: asyncio.Future[Any]) -> None:
        if self._reading.get((user, store)) is done:
            del self._reading[(user, store)]
        if not done.cancelled():
            done.exception()  # retrieved: every request that waited for it has raised it already

    async def _dav_states(self, credentials: Credentials) -> dict[str, str]:
        collections = await self.upstream.collections(credentials)
        out = {qualify(KIND_SOURCES[c.kind], c.path): c.state for c in collections}
        shape = sorted((c.path, c.name, c.kind, c.writable) for c in collections)
        out["dav-folders"] = hashlib.sha256(repr(shape).encode()).hexdigest()
        return out

    async def wait(self, user: str, device_id: str, credentials: Credentials, timeout: float, *,
                   seen: dict[str, str]) -> str:
        """Wait until one of the user's upstream states differs from ``seen`` (what the
        caller has looked at), a newer request of the device starts, or ``timeout``."""
        if self._closing:
            return SHUTDOWN
        waiter = _Waiter(device_id, uuid.uuid4().hex, dict(seen))
        self._supersede(user, device_id, waiter.token)
        self._waiters.setdefault(user, set()).add(waiter)
        self._credentials[user] = credentials
        lingering = self._lingering.pop(user, None)
        if lingering is not None:
            lingering.cancel()
        await self._notify({"kind": "started", "user": user, "device": device_id, "token": waiter.token})
        if user not in self._watchers:
            self._watchers[user] = asyncio.create_task(self._watch(user), name=f"push watcher {user}")
        step = self._expire_in(waiter, timeout)
        try:
            await waiter.woken
        finally:
            self._no_expiry(waiter, step)
            waiters = self._waiters.get(user, set())
            waiters.discard(waiter)
            if not waiters:
                self._waiters.pop(user, None)
                if self.linger_seconds > 0 and not self._closing:
                    self._lingering[user] = asyncio.get_running_loop().call_later(
                        self.linger_seconds, self._unwatch, user)
                else:
                    self._unwatch(user)
        return waiter.reason

    def _expire_in(self, waiter: _Waiter, timeout: float) -> int:
        """Wake ``waiter`` (TIMEOUT) ``timeout`` seconds from now, or up to EXPIRY_STEP before:
        waits end on steps of the loop's clock, one timer for all that end in the same step
        (not one each: held requests are many). Returns the step."""
        loop = asyncio.get_running_loop()
        step = math.floor((loop.time() + timeout) / EXPIRY_STEP)
        ending = self._expiring.get(step)
        if ending is None:
            ending = self._expiring[step] = set()
            self._expiry_timers[step] = loop.call_at(step * EXPIRY_STEP, self._expire, step)
        ending.add(waiter)
        return step

    def _expire(self, step: int) -> None:
        self._expiry_timers.pop(step, None)
        for waiter in self._expiring.pop(step, ()):
            waiter.wake(TIMEOUT)

    def _no_expiry(self, waiter: _Waiter, step: int) -> None:
        ending = self._expiring.get(step)
        if ending is None:
            return
        ending.discard(waiter)
        if not ending:
            del self._expiring[step]
            timer = self._expiry_timers.pop(step, None)
            if timer is not None:
                timer.cancel()

    def _unwatch(self, user: str) -> None:
        """The user's watcher ends (no request has waited for ``linger_seconds``): its
        credentials and states are forgotten."""
        self._lingering.pop(user, None)
        if user in self._waiters:
            return
        self._credentials.pop(user, None)
        task = self._watchers.pop(user, None)
        if task is not None:
            task.cancel()
        self._states.pop(user, None)
        self._folder_states.pop(user, None)

    @property
    def watched(self) -> int:
        """Users this node watches (with waiting requests, or lingering after them)."""
        return len(self._watchers)

    async def changed(self, user: str, *, folders: bool = False) -> None:
        """Tell every node that the user's upstream data changed (e.g. the gateway wrote it);
        ``folders``: the folder hierarchy did."""
        if folders:
            self._forget_folders(user)
        self._wake(user)
        await self._notify({"kind": "changed", "user": user, **({"folders": "1"} if folders else {})})

    async def upstream_changed(self, user: str, store: str = MAIL) -> None:
        """The upstream said (an event it pushed) that the user's data in ``store`` (MAIL,
        or DAV: a calendar or address book) changed: every node with a watcher for the user
        reads that store's state now, and wakes the requests it concerns."""
        self._event(user, store)
        await self._notify({"kind": "upstream", "user": user, "store": store})

    def _event(self, user: str, store: str) -> None:
        """An upstream event of the user's ``store``, taken here or by another node."""
        if store in (MAIL, DAV):
            if self.events:
                self._evented[store] = time.monotonic()
            self._check_soon(user, store)

    def _check_soon(self, user: str, store: str) -> None:
        if user not in self._watchers:
            return  # nobody waits for the user here
        if store == DAV and not self._watches_dav:
            return
        key = (user, store)
        if key in self._checking:
            self._checking[key] = True  # the read under way may have missed this one: once more after it
            return
        self._checking[key] = False
        task = asyncio.create_task(self._check_now(user, store), name=f"event check {user} {store}")
        self._event_checks.add(task)
        task.add_done_callback(self._event_checks.discard)

    async def _check_now(self, user: str, store: str) -> None:
        key = (user, store)
        try:
            # One change comes as several events (Cyrus: MessageNew, then MailboxModseq): let
            # the rest of them arrive, so that they are taken by this one read.
            await asyncio.sleep(EVENT_SETTLE_SECONDS)
            while True:
                if store == MAIL:
                    await self._check_mail(user)
                else:  # before the watcher's own first round, what it reads is no change
                    await self._check_dav(user, first="dav-folders" not in self._states.get(user, {}))
                if not self._checking.get(key):
                    return
                self._checking[key] = False
        finally:
            self._checking.pop(key, None)

    def _has_events(self, store: str) -> bool:
        """Whether the upstream's events of ``store`` come (one within EVENTS_TRUSTED_SECONDS):
        if they stop, polling resumes its own pace."""
        seen = self._evented.get(store)
        return seen is not None and time.monotonic() - seen < EVENTS_TRUSTED_SECONDS

    def current(self, user: str, key: str) -> str | None:
        """The upstream state ``key`` (see the module docstring) as this node knows it now:
        only where the upstream's events for its store come, the user's watcher runs and no
        event's read is under way; else None (ask the upstream)."""
        store = MAIL if key in ("mail", "folders") else DAV
        if not self._has_events(store) or user not in self._watchers or (user, store) in self._checking:
            return None
        return self._states.get(user, {}).get(key)

    def _interval(self, store: str) -> float:
        """How long a watcher sleeps between polls of ``store``: a safety net only, once the
        upstream's own events for it have been seen."""
        normal = self.poll_seconds if store == MAIL else self.dav_poll_seconds
        return max(normal, self.events_poll_seconds) if self._has_events(store) else normal

    @property
    def _watches_dav(self) -> bool:
        return self.upstream.dav is not None and bool(self.upstream.kinds - {"mail"})

    def _supersede(self, user: str, device_id: str, token: str) -> None:
        for waiter in list(self._waiters.get(user, ())):
            if waiter.device_id == device_id and waiter.token != token:
                waiter.wake(SUPERSEDED)

    def _wake(self, user: str) -> None:
        """The user's data changed (the gateway wrote it, another node saw it, or the
        database was away): the states this node's watcher knew are old (the next request
        reads them, the watcher at its next event or poll), and every waiting request of the
        user looks."""
        known = self._states.get(user)
        if known is not None:
            for key in [k for k in known if k not in ("folders", "dav-folders")]:
                del known[key]
        for waiter in list(self._waiters.get(user, ())):
            waiter.wake(CHANGED)

    def _forget_folders(self, user: str) -> None:
        known = self._states.get(user)
        self._folder_states.pop(user, None)
        if known is not None:
            known.pop("folders", None)
            known.pop("dav-folders", None)

    async def _watch(self, user: str) -> None:
        """The user's watcher: mail and DAV side by side."""
        tasks = [asyncio.create_task(self._watch_mail(user), name=f"mail watcher {user}")]
        if self._watches_dav:
            tasks.append(asyncio.create_task(self._watch_dav(user), name=f"dav watcher {user}"))
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()

    async def _watch_mail(self, user: str) -> None:
        """Follow the server's push stream where it offers one (JMAP EventSource), else
        (or once the stream breaks) poll the state strings every ``poll_seconds``."""
        await self._check_mail(user, first=True)
        credentials = self._credentials.get(user)
        try:
            stream = await self.upstream.mailstore.subscribe(credentials) if credentials is not None else None
        except UpstreamError as exc:
            log.warning("push: no event stream for %s (%s); polling", user, exc)
            stream = None
        if stream is not None:
            try:
                async with contextlib.aclosing(stream):  # type: ignore[type-var]
                    async for _ in stream:
                        await self._check_mail(user)
            except UpstreamError as exc:
                log.warning("push: the event stream of %s ended (%s); polling instead", user, exc)
        idle = asyncio.create_task(self._follow_idle(user), name=f"IMAP IDLE {user}") \
            if self.idle is not None else None
        try:
            while self._credentials.get(user) is not None:
                await asyncio.sleep(self._interval(MAIL))
                await self._check_mail(user)
        finally:
            if idle is not None:
                idle.cancel()

    async def _follow_idle(self, user: str) -> None:
        """IMAP IDLE on the user's INBOX beside the polling (which still sees the other
        folders): a change there is read at once. A broken connection is opened again after
        IDLE_RETRY_SECONDS; the node's connection limit or a refused login leaves the polling."""
        assert self.idle is not None
        while (credentials := self._credentials.get(user)) is not None:
            try:
                async with contextlib.aclosing(self.idle.events(credentials)) as events:  # type: ignore[type-var]
                    async for _ in events:
                        await self._check_mail(user)
            except AuthenticationFailed as exc:
                log.warning("push: IMAP IDLE for %s refused (%s); polling", user, exc)
                return
            except UpstreamError as exc:
                log.warning("push: IMAP IDLE for %s ended (%s); again in %s s", user, exc, IDLE_RETRY_SECONDS)
            await asyncio.sleep(IDLE_RETRY_SECONDS)

    async def _watch_dav(self, user: str) -> None:
        """One PROPFIND Depth 1 per DAV home every ``dav_poll_seconds``: every
        collection's sync-token, and the collections themselves."""
        first = True
        while self._credentials.get(user) is not None:
            if await self._check_dav(user, first=first):
                first = False
            await asyncio.sleep(self._interval(DAV))

    async def _check_dav(self, user: str, *, first: bool = False) -> bool:
        """One round of the user's DAV states; whether it was read."""
        credentials = self._credentials.get(user)
        if credentials is None:
            return False
        try:
            # Never shared with a request's read under way: one begun before the watcher was
            # there may predate a change whose event nobody here took.
            states = await self._in_lane(lambda: self._dav_states(credentials))
        except UpstreamError as exc:
            log.warning("push: cannot read the DAV states of %s: %s", user, exc)
            return False
        await self._update(user, states, replace_prefix=("dav-folders", *KIND_SOURCES.values()), first=first)
        return True

    async def _check_mail(self, user: str, *, first: bool = False) -> None:
        credentials = self._credentials.get(user)
        if credentials is None:
            return
        try:
            mail, folders = await self._in_lane(lambda: self.upstream.mailstore.watch_states(credentials))
            folders = await self._hierarchy_token(user, credentials, folders)
        except UpstreamError as exc:
            log.warning("push: cannot read the upstream state of %s: %s", user, exc)
            return
        await self._update(user, {"mail": mail, "folders": folders}, replace_prefix=(), first=first)

    async def _hierarchy_token(self, user: str, credentials: Credentials, folder_state: str) -> str:
        """What the "folders" key holds: the upstream's folder state, except that a move of
        the folders' message counts only (every delivery's) keeps the one known, so that no
        held request looks at the hierarchy for it."""
        before, self._folder_states[user] = self._folder_states.get(user), folder_state
        token = self._states.get(user, {}).get("folders")
        if token is None or before is None:
            return folder_state
        if folder_state == before:
            return token
        try:
            restructured = await self.upstream.mailstore.folders_restructured(credentials, before)
        except UpstreamError as exc:
            log.info("push: cannot tell whether the folders of %s changed (%s); they may have", user, exc)
            return folder_state
        return folder_state if restructured else token

    async def _update(self, user: str, states: dict[str, str], *, replace_prefix: tuple[str, ...],
                      first: bool) -> None:
        """New states of the user: wake the requests that looked at other ones, and
        tell the other nodes when this watcher saw something move."""
        known = self._states.setdefault(user, {})
        if replace_prefix:  # a DAV round lists every collection: the ones gone are gone
            for key in [k for k in known if k.startswith(replace_prefix) and k not in states]:
                del known[key]
        moved = {k for k, v in states.items() if known.get(k) is not None and known[k] != v}
        if replace_prefix and not first:
            moved |= {k for k in states if k not in known}
        known.update(states)
        if moved and not first:
            log.info("push: upstream states of %s moved: %s", user, sorted(moved))
            await self._notify({"kind": "changed", "user": user,
                                **({"folders": "1"} if moved & {"folders", "dav-folders"} else {})})
        for waiter in list(self._waiters.get(user, ())):
            if not waiter.woken.done() and any(known.get(k, "") != v for k, v in waiter.seen.items()
                                               if k in known or k in states):
                waiter.wake(CHANGED)

    async def _notify(self, message: dict[str, str]) -> None:
        message["node"] = self.node
        try:
            async with self.pool.acquire() as conn:
                await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, json.dumps(message))
        except (asyncpg.PostgresError, OSError) as exc:
            log.warning("push: NOTIFY failed: %s", exc)

    def _notified(self, connection: object, pid: int, channel: str, payload: str) -> None:
        try:
            message = json.loads(payload)
        except ValueError:
            log.warning("push: ignoring a malformed notification %r", payload[:200])
            return
        if message.get("node") == self.node:
            return
        user = message.get("user")
        if message.get("kind") == "changed" and user:
            if message.get("folders"):
                self._forget_folders(user)
            self._wake(user)
        elif message.get("kind") == "upstream" and user:
            self._event(user, message.get("store", MAIL))
        elif message.get("kind") == "started" and user:
            self._supersede(user, message.get("device", ""), message.get("token", ""))


def keys_for(upstream: Sources, folder_ids: list[str], *, hierarchy: bool = False) -> dict[str, str]:
    """The state key (see the module docstring) that tells whether each folder moved;
    with ``hierarchy`` also the keys of the folder hierarchies, under their own names."""
    out = {}
    for folder_id in folder_ids:
        if folder_id.startswith("virtual:"):
            continue
        out[folder_id] = "mail" if folder_id.startswith("jmap:") else folder_id
    if hierarchy:
        out["folders"] = "folders"
        if upstream.dav is not None and upstream.kinds - {"mail"}:
            out["dav-folders"] = "dav-folders"
    return out
