"""What a command handler gets: the request, the user, and the services."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from eas_gateway.ashttp import RequestLine
from eas_gateway.config import Settings
from usm.devices import Device
from usm.push import PushHub
from usm.upstream import Credentials
from usm.upstream.composite import Sources


@dataclass
class Context:
    line: RequestLine
    version: str
    credentials: Credentials
    user: str  # the authenticated user, as the upstream names it
    device: Device
    db: asyncpg.Pool
    upstream: Sources  # every source; ctx.upstream.mailstore is the mail capability
    settings: Settings
    push: PushHub
