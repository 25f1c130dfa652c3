"""The HTTP server: uvicorn's, made to answer held requests when it stops.

uvicorn's graceful shutdown stops accepting connections and then waits (up to
``timeout_graceful_shutdown``) for the requests in flight; a Ping held for an hour
would only be cut off with a 500. So before that wait every held Ping and waiting
Sync is answered as at the end of its heartbeat (usm.push.PushHub.release_all), and
the phone simply pings again, on this node once it is back or on another.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable
from typing import Any

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from eas_gateway import hang_up
from eas_gateway.app import Gateway

log = logging.getLogger(__name__)
# A request's head (request line and headers) must be complete this long after the connection
# opens or the previous answer went out; a client that trickles it (slowloris) or says nothing
# is cut off. Idle keep-alive connections after an answer keep uvicorn's timeout_keep_alive.
HEAD_SECONDS = 30.0


class SlimEvent:
    """What uvicorn asks of the asyncio.Event of each connection and request (set, clear,
    is_set, wait) without its deque of waiters, made at once and some 700 bytes: a future
    is made only while someone waits. A held Ping keeps two of these."""

    __slots__ = ("_value", "_waiters")

    def __init__(self, value: bool = False) -> None:
        self._value = value
        self._waiters: list[asyncio.Future[bool]] | None = None

    def is_set(self) -> bool:
        return self._value

    def set(self) -> None:
        if self._value:
            return
        self._value = True
        waiters, self._waiters = self._waiters, None
        for waiter in waiters or ():
            if not waiter.done():
                waiter.set_result(True)

    def clear(self) -> None:
        self._value = False

    async def wait(self) -> bool:
        if self._value:
            return True
        waiter: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        if self._waiters is None:
            self._waiters = []
        self._waiters.append(waiter)
        try:
            return await waiter
        finally:
            if self._waiters is not None and waiter in self._waiters:
                self._waiters.remove(waiter)


def _slim(event: Any) -> Any:
    """``event`` as a SlimEvent in the same state, if it is an asyncio.Event (else as it is:
    another uvicorn may hold something else there)."""
    return SlimEvent(event.is_set()) if type(event) is asyncio.Event else event


class HeadTimeoutProtocol(H11Protocol):
    """uvicorn's h11 protocol with a time limit on reading a request's head, which tells a
    request when its connection is lost (the ASGI extension of eas_gateway.hang_up), and
    whose per-connection and per-request events are SlimEvents (held Pings are many)."""

    head_seconds = HEAD_SECONDS
    _head_timer: asyncio.TimerHandle | None = None
    _hang_ups: list[Callable[[], None]] | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        flow = getattr(self, "flow", None)
        if flow is not None and hasattr(flow, "_is_writable_event"):
            flow._is_writable_event = _slim(flow._is_writable_event)
        self._start_head_timer()

    def data_received(self, data: bytes) -> None:
        if self._head_timer is None and self.cycle is None:
            self._start_head_timer()  # the first bytes of the next request on a kept-alive connection
        before = self.cycle
        super().data_received(data)
        if self.cycle is not None and self.cycle is not before:
            self._request_started()
        if self.cycle is not None and self._head_timer is not None:
            self._head_timer.cancel()  # the head is complete: the request runs as long as it must
            self._head_timer = None

    def on_response_complete(self) -> None:
        done = self.cycle
        super().on_response_complete()
        if self.cycle is done:  # (a pipelined request may have started a new cycle already)
            self.cycle = None  # type: ignore[assignment]  # no request in progress until the next head
        elif self.cycle is not None:
            self._request_started()

    def _request_started(self) -> None:
        """A request's cycle was made (its task is created, not yet run): its event made
        slim, its own hang-up callbacks."""
        if hasattr(self.cycle, "message_event"):
            self.cycle.message_event = _slim(self.cycle.message_event)
        self._hang_ups = []
        extensions: dict[str, Any] = self.cycle.scope.setdefault("extensions", {})
        extensions[hang_up.EXTENSION] = self._hang_ups

    def connection_lost(self, exc: Exception | None) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        super().connection_lost(exc)
        callbacks, self._hang_ups = self._hang_ups or [], None
        for callback in list(callbacks):
            callback()

    def _start_head_timer(self) -> None:
        self._head_timer = self.loop.call_later(self.head_seconds, self._head_timed_out)

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.cycle is None and not self.transport.is_closing():
            log.info("closing a connection from %s: no complete request head within %.0f s",
                     self.client[0] if self.client else "-", self.head_seconds)
            self.transport.close()


def gateway_of(app: Any) -> Gateway:
    """The Gateway behind an app made by eas_gateway.app.create_app (maybe wrapped in middleware)."""
    while not hasattr(getattr(app, "state", None), "gateway"):
        app = app.app
    found: Gateway = app.state.gateway
    return found


class GatewayServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, gateway: Gateway) -> None:
        super().__init__(config)
        self.gateway = gateway

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        if self.gateway.push is not None:
            self.gateway.push.release_all()
        await super().shutdown(sockets)


def protocol(head_seconds: float) -> type[HeadTimeoutProtocol]:
    return type("HeadTimeoutProtocol", (HeadTimeoutProtocol,), {"head_seconds": head_seconds})


def serve(app: Any, *, head_seconds: float = HEAD_SECONDS, sockets: list[socket.socket] | None = None,
          **config: Any) -> None:
    """Run ``app`` until SIGTERM/SIGINT (uvicorn.run, with the shutdown and the head timeout above),
    on ``sockets`` if given (a worker: eas_gateway.workers), else on the configured host and port."""
    server = GatewayServer(uvicorn.Config(app, http=protocol(head_seconds), **config), gateway_of(app))
    server.run(sockets=sockets)
