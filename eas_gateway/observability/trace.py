"""Protocol traces: the full requests and responses of chosen users or devices,
as readable XML (wbxml.render, long text and binary truncated), logged to
``eas_gateway.trace``.

Who is traced lives in the protocol_trace table (sql/007_protocol_trace.sql);
each node keeps a copy, reloaded when the table's trigger NOTIFYs and, as a
safety net, every minute, so switching a trace on or off needs no restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime

import asyncpg
from lxml import etree

import wbxml
from usm import admin
from usm.listener import Listener

log = logging.getLogger("eas_gateway.trace")
CHANNEL = "eas_gateway_trace"
RELOAD_SECONDS = 60.0


class Tracer:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self._targets: dict[tuple[str, str], datetime] = {}
        self._listener = Listener(pool, CHANNEL, self._notified, on_back=self._notified)
        self._task: asyncio.Task[None] | None = None
        self._reload = asyncio.Event()

    async def start(self) -> None:
        await self._listener.start()
        await self._load()
        self._task = asyncio.create_task(self._keep_loading(), name="protocol trace targets")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._listener.stop()

    def _notified(self, *_: object) -> None:
        self._reload.set()

    def traced(self, user: str, device_id: str) -> bool:
        now = datetime.now(UTC)
        for key in ((user.lower(), device_id), (user.lower(), "")):
            until = self._targets.get(key)
            if until is not None and until > now:
                return True
        return False

    def record(self, user: str, device_id: str, command: str, what: str,
               body: etree._Element | bytes | None) -> None:
        log.info("%s of %s device %s %s:\n%s", command, user, device_id, what, _readable(body))

    async def _keep_loading(self) -> None:
        while True:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._reload.wait(), RELOAD_SECONDS)
            self._reload.clear()
            try:
                await self._load()
            except (asyncpg.PostgresError, OSError) as exc:
                logging.getLogger(__name__).warning("protocol trace targets not reloaded: %s", exc)

    async def _load(self) -> None:
        async with self.pool.acquire() as conn:
            self._targets = await admin.trace_targets(conn)


def _readable(body: etree._Element | bytes | None) -> str:
    if body is None:
        return "(empty)"
    if isinstance(body, etree._Element):
        return wbxml.render(body)
    try:
        return wbxml.render(wbxml.decode(body))
    except wbxml.WBXMLError:
        return f"({len(body)} bytes, not WBXML: a MIME message)"
