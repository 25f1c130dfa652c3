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
from collections.abc import Awaitable, Callable, MutableMapping, MutableSequence
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


async def until_hung_up(request: Request, work: Awaitable[Any]) -> Any:
    """``work``'s result, unless the phone hangs up first: then ``work`` (which runs in this
    task) is cancelled and HungUp raised."""
    current = asyncio.current_task()
    assert current is not None
    gone = False

    def hung_up() -> None:
        nonlocal gone
        gone = True
        current.cancel()

    callbacks = callbacks_of(request.scope)
    watch: asyncio.Future[None] | None = None
    if callbacks is not None:
        callbacks.append(hung_up)
    else:
        async def listen() -> None:
            while (await request.receive())["type"] != "http.disconnect":
                pass
            hung_up()

        watch = asyncio.ensure_future(listen())
    try:
        return await work
    except asyncio.CancelledError:
        if not gone:
            raise
        current.uncancel()
        raise HungUp("the phone closed the connection") from None
    finally:
        if watch is not None:
            watch.cancel()
        elif callbacks is not None and hung_up in callbacks:
            callbacks.remove(hung_up)
