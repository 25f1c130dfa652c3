"""One PostgreSQL LISTEN that survives the database restarting.

A connection held from the pool listens on a channel; when it dies (PostgreSQL
restarted, a network cut) the listener takes a new one as soon as the database is
back, with growing pauses, and calls ``on_back`` (notifications sent meanwhile are
lost, so whoever listens must look again). Stopping releases the connection, dead
or alive, so that nothing is left open.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

import asyncpg

log = logging.getLogger(__name__)

Callback = Callable[[object, int, str, str], None]
DATABASE_DOWN = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)


class Listener:
    def __init__(self, pool: asyncpg.Pool, channel: str, callback: Callback, *,
                 on_back: Callable[[], None] | None = None) -> None:
        self.pool, self.channel, self.callback, self.on_back = pool, channel, callback, on_back
        self._conn: asyncpg.Connection | None = None
        self._task: asyncio.Future[None] | None = None
        self._stopping = False

    async def start(self) -> None:
        await self._listen()

    async def _listen(self) -> None:
        conn = await self.pool.acquire()
        try:
            await conn.add_listener(self.channel, self.callback)
        except BaseException:
            await self.pool.release(conn)
            raise
        conn.add_termination_listener(self._lost)
        self._conn = conn

    def _lost(self, conn: object) -> None:
        if self._stopping or conn is not self._conn:
            return
        log.warning("LISTEN %s: the connection to the database was lost; listening again when it is back",
                    self.channel)
        self._conn = None
        self._task = asyncio.ensure_future(self._again(conn))

    async def _again(self, lost: object) -> None:
        with contextlib.suppress(Exception):
            await self.pool.release(lost)  # the pool closes a broken connection
        delay = 0.5
        while not self._stopping:
            try:
                await self._listen()
            except DATABASE_DOWN as exc:
                log.info("LISTEN %s: database not back yet (%s); next try in %.1f s", self.channel, exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)
                continue
            log.warning("LISTEN %s: listening again", self.channel)
            if self.on_back is not None:
                self.on_back()
            return

    async def stop(self) -> None:
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                with contextlib.suppress(*DATABASE_DOWN):
                    await conn.remove_listener(self.channel, self.callback)
            finally:
                await self.pool.release(conn)
