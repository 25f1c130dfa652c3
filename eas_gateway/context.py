"""What a command handler gets: the request, the user, and the services."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg

from eas_gateway.ashttp import RequestLine
from eas_gateway.config import Settings
from usm.devices import Device
from usm.push import PushHub
from usm.upstream import Credentials, Upstream


@dataclass
class Context:
    line: RequestLine
    version: str
    credentials: Credentials
    user: str  # the authenticated user, as the upstream names it
    device: Device
    db: asyncpg.Pool
    upstream: Upstream
    settings: Settings
    push: PushHub


# The Upstream methods that change the user's data (usm.upstream.Upstream).
FOLDER_WRITES = frozenset({"create_folder", "update_folder", "destroy_folder"})
WRITES = frozenset({"update_messages", "destroy_messages", "import_message", "submit", "set_vacation"}) | FOLDER_WRITES


class RecordingUpstream:
    """The upstream as a command sees it: every call goes through; ``wrote``
    tells afterwards whether one changed the user's data, so that the user's
    hanging requests on every node are woken at once (PushHub.changed) rather
    than at the next poll."""

    def __init__(self, upstream: Upstream) -> None:
        self._upstream = upstream
        self.wrote = False
        self.wrote_folders = False

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._upstream, name)
        if name not in WRITES:
            return method

        async def write(*args: Any, **kwargs: Any) -> Any:
            self.wrote = True
            self.wrote_folders = self.wrote_folders or name in FOLDER_WRITES
            return await method(*args, **kwargs)

        return write
