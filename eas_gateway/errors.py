"""The protocol layer's exceptions. Each knows the answer it implies; app.py
turns them into responses in one place."""

from __future__ import annotations

import random

# A 503's Retry-After is drawn from this range rather than being one value: phones told to come
# back after an outage, or a herd turned away, come back spread out instead of together.
RETRY_AFTER_SECONDS = (10.0, 60.0)


def spread_retry_after() -> float:
    return random.uniform(*RETRY_AFTER_SECONDS)


class EASError(Exception):
    """Base: ``http_status`` for the HTTP answer."""

    http_status = 500


class BadRequest(EASError):
    """MS-ASHTTP: a request the server cannot parse (bad query, bad WBXML)."""

    http_status = 400


class Unauthorized(EASError):
    http_status = 401


class Forbidden(EASError):
    http_status = 403


class PayloadTooLarge(EASError):
    http_status = 413


class TooManyRequests(EASError):
    """Sign-in throttled (usm.signin): try again after ``retry_after`` seconds."""

    http_status = 429

    def __init__(self, reason: str, retry_after: float) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


class NotImplementedCommand(EASError):
    """MS-ASHTTP 3.2.5.1: a command this server does not offer."""

    http_status = 501


class UpstreamFailed(EASError):
    """The upstream is down or busy: 503 makes phones retry later instead of resetting, after
    ``retry_after`` seconds (drawn from RETRY_AFTER_SECONDS unless given)."""

    http_status = 503

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = spread_retry_after() if retry_after is None else retry_after


class CommandStatus(EASError):
    """A command-level failure answered with HTTP 200 and an EAS Status code in
    the command's response (MS-ASCMD 2.2.2 common status codes, 101-177)."""

    http_status = 200

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


class NeedsProvisioning(EASError):
    """MS-ASHTTP 3.2.5.1.1: below 14.0, HTTP 449 asks the phone to Provision."""

    http_status = 449


class LegacyStatus(EASError):
    """A command failure below 14.0 where the command has no Status element to carry
    it (MS-ASCMD 2.2.3.177.14: SendMail's Status exists from 14.0): an HTTP status."""

    def __init__(self, http_status: int, reason: str) -> None:
        super().__init__(reason)
        self.http_status = http_status
