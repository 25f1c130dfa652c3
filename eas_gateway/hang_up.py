"""A held request that ends the moment its phone hangs up.

A held Ping only reads while it waits, so when the phone closes the connection it
is cancelled at once: its wait leaves the push hub then, not at its heartbeat.

Learning of the hang-up needs someone listening. Under our own server
(eas_gateway.server) the connection tells the request itself: the request's
scope carries the ASGI extension ``EXTENSION``, a list the application appends
zero-argument callables to, which the server calls when the connection is lost
before the answer is complete. Nothing more is kept per held request than that
callable. Under any other ASGI server a small task waits for ``http.disconnect``
instead (about a kilobyte and a half per held request, which is why our server
does better).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, MutableMapping, MutableSequence
from typing import Any

from starlette.requests import Request

EXTENSION = "eas.hang_up"


class HungUp(Exception):
    """The phone closed the connection while its request was held: nobody to answer."""


def callbacks_of(scope: MutableMapping[str, Any]) -> MutableSequence[Callable[[], None]] | None:
    """The request's hang-up callbacks, if its server offers them."""
    extensions = scope.get("extensions") or {}
    found: MutableSequence[Callable[[], None]] | None = extensions.get(EXTENSION)
    return found


class HangUpWatch:
    """``with HangUpWatch(request): result = await work`` (work running in this task): when
    the phone hangs up first, ``work`` is cancelled and HungUp raised in its place. A
    context manager, not a coroutine around ``work``: held requests are many, and each
    frame on a held stack stays for as long as it is held."""

    __slots__ = ("request", "task", "gone", "callbacks", "listener")

    def __init__(self, request: Request) -> None:
        self.request = request
        self.gone = False
        self.callbacks: MutableSequence[Callable[[], None]] | None = None
        self.listener: asyncio.Future[None] | None = None

    def __enter__(self) -> HangUpWatch:
        task = asyncio.current_task()
        assert task is not None
        self.task = task
        self.callbacks = callbacks_of(self.request.scope)
        if self.callbacks is not None:
            self.callbacks.append(self.hung_up)
        else:
            self.listener = asyncio.ensure_future(self._listen())
        return self

    def hung_up(self) -> None:
        self.gone = True
        self.task.cancel()

    async def _listen(self) -> None:
        while (await self.request.receive())["type"] != "http.disconnect":
            pass
        self.hung_up()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: Any) -> None:
        if self.listener is not None:
            self.listener.cancel()
        elif self.callbacks is not None and self.hung_up in self.callbacks:
            self.callbacks.remove(self.hung_up)
        if kind is not None and issubclass(kind, asyncio.CancelledError) and self.gone:
            self.task.uncancel()
            raise HungUp("the phone closed the connection") from None
