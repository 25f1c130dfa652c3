"""The ActiveSync endpoint in front of Starlette.

Every request to /Microsoft-Server-ActiveSync goes straight to its handler; every
other path (Autodiscover, the admin page, /healthz, /metrics, the upstream-events
endpoint) and the lifespan go on to the Starlette application behind.

Why: a Ping is held for up to an hour, and everything on its call stack is held
with it. Starlette's middleware and router put nine coroutines and their
exception-handling wrappers under the handler: measured, 5.6 KiB of a held
request's 14.8 under plain uvicorn (a bare ASGI callable: 9.2), against the 16 KiB
a held Ping may cost in all (benchmarks/gateway_sync.py, held Pings). What those
layers did for this one path is done here: the methods (405 otherwise) and a 500,
logged, for an exception the handler let through (it lets none through by design:
eas_gateway.app.Gateway.post).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

log = logging.getLogger(__name__)

PATH = "/Microsoft-Server-ActiveSync"
METHODS = ("OPTIONS", "POST")

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def route_path(scope: Scope) -> str:
    """The path below the application's root_path (as Starlette's router matches it)."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    return path[len(root):] if root and path.startswith(root) else path


class ActiveSyncFront:
    def __init__(self, app: ASGIApp, handler: Callable[[Request], Awaitable[Response]]) -> None:
        self.app = app  # the Starlette application: everything but the ActiveSync endpoint
        self.handler = handler

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or route_path(scope) != PATH:
            await self.app(scope, receive, send)
            return
        if scope["method"] not in METHODS:
            response: Response = PlainTextResponse("Method Not Allowed", status_code=405,
                                                   headers={"Allow": ", ".join(METHODS)})
        else:
            try:
                response = await self.handler(Request(scope, receive, send))
            except Exception:
                log.exception("unexpected error in %s %s", scope["method"], PATH)
                response = PlainTextResponse("internal error\n", status_code=500)
        await response(scope, receive, send)
