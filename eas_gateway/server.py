"""The HTTP server: uvicorn's, made to answer held requests when it stops.

uvicorn's graceful shutdown stops accepting connections and then waits (up to
``timeout_graceful_shutdown``) for the requests in flight; a Ping held for an hour
would only be cut off with a 500. So before that wait every held Ping and waiting
Sync is answered as at the end of its heartbeat (usm.push.PushHub.release_all), and
the phone simply pings again, on this node once it is back or on another.
"""

from __future__ import annotations

import socket
from typing import Any

import uvicorn

from eas_gateway.app import Gateway


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


def serve(app: Any, **config: Any) -> None:
    """Run ``app`` until SIGTERM/SIGINT (uvicorn.run, with the shutdown above)."""
    server = GatewayServer(uvicorn.Config(app, **config), gateway_of(app))
    server.run()
