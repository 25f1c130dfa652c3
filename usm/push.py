"""Push: hanging requests (Ping, the waiting Sync) wait here for changes.

One ``PushHub`` per gateway process. A request waits with ``wait(user,
device, credentials, timeout)``; it returns why it woke:

- ``CHANGED``: the user's upstream state moved (mail, or the folder
  hierarchy: ``known_folder_state``). Each node runs one watcher per
  user with waiting requests, however many devices the user has: it follows
  the server's push stream (JMAP EventSource, Upstream.subscribe) where there
  is one, else polls the cheap upstream state strings (Upstream.watch_states)
  every ``poll_seconds`` (Cyrus 3.6 from Debian offers no working push). A node that sees a change tells
  the others through PostgreSQL NOTIFY, so every node's waiters wake.
- ``SUPERSEDED``: a newer hanging request of the same device started, on this
  node or another (NOTIFY again): one hanging request per device.
- ``TIMEOUT``.

Credentials are held in memory only, while the user has waiting requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from dataclasses import dataclass, field

import asyncpg

from usm.upstream import Credentials, Upstream, UpstreamError

log = logging.getLogger(__name__)

CHANNEL = "eas_gateway_push"
CHANGED, SUPERSEDED, TIMEOUT = "changed", "superseded", "timeout"


@dataclass(eq=False)
class _Waiter:
    device_id: str
    token: str
    seen_state: str | None  # the upstream state the request has checked against
    event: asyncio.Event = field(default_factory=asyncio.Event)
    reason: str = TIMEOUT


class PushHub:
    def __init__(self, pool: asyncpg.Pool, upstream: Upstream, *, poll_seconds: float) -> None:
        self.pool = pool
        self.upstream = upstream
        self.poll_seconds = poll_seconds
        self.node = uuid.uuid4().hex
        self._waiters: dict[str, set[_Waiter]] = {}
        self._watchers: dict[str, asyncio.Task[None]] = {}
        self._credentials: dict[str, Credentials] = {}
        self._states: dict[str, str] = {}
        self._folder_states: dict[str, str] = {}
        self._listener: asyncpg.Connection | None = None

    @property
    def waiting(self) -> int:
        return sum(len(w) for w in self._waiters.values())

    async def start(self) -> None:
        self._listener = await self.pool.acquire()
        await self._listener.add_listener(CHANNEL, self._notified)

    async def stop(self) -> None:
        for task in self._watchers.values():
            task.cancel()
        for task in list(self._watchers.values()):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._listener is not None:
            with contextlib.suppress(asyncpg.PostgresError, OSError):
                await self._listener.remove_listener(CHANNEL, self._notified)
            await self.pool.release(self._listener)
            self._listener = None

    def known_state(self, user: str) -> str | None:
        """The user's upstream state as this node's watcher last saw it (None: no watcher)."""
        return self._states.get(user)

    def known_folder_state(self, user: str) -> str | None:
        """The user's folder state as this node last saw it; None: no watcher, or a
        folder change was reported since (ask the upstream)."""
        return self._folder_states.get(user)

    async def wait(self, user: str, device_id: str, credentials: Credentials, timeout: float, *,
                   seen_state: str | None) -> str:
        """Wait until the user's upstream state is other than ``seen_state`` (the state
        the caller has looked at), a newer request of the device starts, or ``timeout``."""
        waiter = _Waiter(device_id, uuid.uuid4().hex, seen_state)
        self._supersede(user, device_id, waiter.token)
        self._waiters.setdefault(user, set()).add(waiter)
        self._credentials[user] = credentials
        await self._notify({"kind": "started", "user": user, "device": device_id, "token": waiter.token})
        if user not in self._watchers:
            self._watchers[user] = asyncio.create_task(self._watch(user), name=f"push watcher {user}")
        try:
            await asyncio.wait_for(waiter.event.wait(), timeout)
        except asyncio.TimeoutError:
            pass
        finally:
            waiters = self._waiters.get(user, set())
            waiters.discard(waiter)
            if not waiters:
                self._waiters.pop(user, None)
                self._credentials.pop(user, None)
                task = self._watchers.pop(user, None)
                if task is not None:
                    task.cancel()
                self._states.pop(user, None)
                self._folder_states.pop(user, None)
        return waiter.reason

    async def changed(self, user: str, *, folders: bool = False) -> None:
        """Tell every node that the user's upstream data changed (e.g. the gateway wrote it);
        ``folders``: the folder hierarchy did."""
        if folders:
            self._folder_states.pop(user, None)
        self._wake(user)
        await self._notify({"kind": "changed", "user": user, **({"folders": "1"} if folders else {})})

    def _supersede(self, user: str, device_id: str, token: str) -> None:
        for waiter in list(self._waiters.get(user, ())):
            if waiter.device_id == device_id and waiter.token != token and not waiter.event.is_set():
                waiter.reason = SUPERSEDED
                waiter.event.set()

    def _wake(self, user: str) -> None:
        for waiter in list(self._waiters.get(user, ())):
            if not waiter.event.is_set():
                waiter.reason = CHANGED
                waiter.event.set()

    async def _watch(self, user: str) -> None:
        """Follow the server's push stream where it offers one (JMAP EventSource), else
        (or once the stream breaks) poll the state strings every ``poll_seconds``."""
        last = await self._check(user, None)
        credentials = self._credentials.get(user)
        try:
            stream = await self.upstream.subscribe(credentials) if credentials is not None else None
        except UpstreamError as exc:
            log.warning("push: no event stream for %s (%s); polling", user, exc)
            stream = None
        if stream is not None:
            try:
                async with contextlib.aclosing(stream):  # type: ignore[type-var]
                    async for _ in stream:
                        last = await self._check(user, last)
            except UpstreamError as exc:
                log.warning("push: the event stream of %s ended (%s); polling instead", user, exc)
        while self._credentials.get(user) is not None:
            await asyncio.sleep(self.poll_seconds)
            last = await self._check(user, last)

    async def _check(self, user: str, last: str | None) -> str | None:
        """Read the user's states; wake whoever they concern. The states as now known."""
        credentials = self._credentials.get(user)
        if credentials is None:
            return last
        try:
            mail_state, folder_state = await self.upstream.watch_states(credentials)
        except UpstreamError as exc:
            log.warning("push: cannot read the upstream state of %s: %s", user, exc)
            return last
        state = f"{mail_state}\0{folder_state}"
        self._states[user] = mail_state
        self._folder_states[user] = folder_state
        if last is not None and state != last:
            log.info("push: upstream state of %s moved %r -> %r", user, last, state)
            await self.changed(user, folders=last.rpartition("\0")[2] != folder_state)
            self._folder_states[user] = folder_state
        else:
            # Requests that checked against an older state than this one.
            for waiter in list(self._waiters.get(user, ())):
                if waiter.seen_state != mail_state and not waiter.event.is_set():
                    waiter.reason = CHANGED
                    waiter.event.set()
        return state

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
                self._folder_states.pop(user, None)
            self._wake(user)
        elif message.get("kind") == "started" and user:
            self._supersede(user, message.get("device", ""), message.get("token", ""))
