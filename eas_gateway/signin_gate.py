"""A node's bound on the sign-ins it asks the upstream for at once.

A phone signs in upstream when the node does not remember its sign-in (eas_gateway.auth,
eas_gateway.oauth: remembered for EAS_AUTH_CACHE_SECONDS): after a restart, or when the
remembered sign-ins of thousands of phones expire together, they all come at once. Unbounded,
such a herd takes every connection of the upstream client, so that the requests of phones
already signed in wait behind it and fail (httpx PoolTimeout, 503), and queues in the upstream
(Cyrus 3.6 answers a user's first JMAP session in ~230 ms, one at a time).

The gate lets ``limit`` sign-ins reach the upstream at a time (EAS_SIGNIN_CONCURRENCY). One
that has waited ``wait`` seconds for its turn (EAS_SIGNIN_WAIT_SECONDS) is answered 503 with a
Retry-After drawn from [retry_min, retry_max] seconds, so that the herd comes back spread out
rather than together. Sign-ins with the same key at the same time (the same user with the
same secret: a phone's Ping and Sync, or two devices) share one upstream call; a different
secret never shares another's answer.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar, cast

from eas_gateway.errors import RETRY_AFTER_SECONDS, UpstreamFailed

log = logging.getLogger(__name__)

T = TypeVar("T")


class SignInsBusy(UpstreamFailed):
    """The node's upstream sign-ins were all taken for longer than the wait: 503, come back later."""


class SignInGate:
    def __init__(self, limit: int = 16, wait: float = 10.0, *, retry_min: float = RETRY_AFTER_SECONDS[0],
                 retry_max: float = RETRY_AFTER_SECONDS[1]) -> None:
        if limit < 1:
            raise ValueError(f"at least one sign-in at a time, not {limit}")
        self.limit, self.wait = limit, wait
        self.retry_min, self.retry_max = retry_min, max(retry_min, retry_max)
        self._turns = asyncio.Semaphore(limit)
        self._shared: dict[object, asyncio.Future[object]] = {}
        self.waiting = 0  # sign-ins waiting for a turn now
        self.running = 0  # sign-ins the upstream is answering now
        self.shared = 0  # sign-ins that waited for another's answer (since start)
        self.turned_away = 0  # sign-ins answered 503 for want of a turn (since start)

    async def sign_in(self, key: object, call: Callable[[], Awaitable[T]]) -> T:
        """``call()``'s answer (or exception), made in turn or shared with one under way for ``key``."""
        while (under_way := self._shared.get(key)) is not None:
            self.shared += 1
            try:
                return cast(T, await asyncio.shield(under_way))
            except asyncio.CancelledError:
                if not under_way.cancelled():
                    raise  # this request was cancelled (its phone hung up)
                # the one it shared was: ask again
        done: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        self._shared[key] = done
        try:
            answer = await self._in_turn(call)
        except asyncio.CancelledError:
            done.cancel()
            raise
        except BaseException as exc:
            done.set_exception(exc)  # those sharing get the same refusal
            done.exception()  # retrieved: nobody may be sharing it
            raise
        else:
            done.set_result(answer)
            return answer
        finally:
            del self._shared[key]

    async def _in_turn(self, call: Callable[[], Awaitable[T]]) -> T:
        self.waiting += 1
        try:
            if self._turns.locked():
                await asyncio.wait_for(self._turns.acquire(), self.wait)
            else:
                await self._turns.acquire()  # free: taken at once (wait_for would not, with wait 0)
        except TimeoutError:
            self.turned_away += 1
            retry = random.uniform(self.retry_min, self.retry_max)
            log.warning("sign-in turned away: %d upstream sign-ins under way and %d waiting for %.0f s "
                        "(EAS_SIGNIN_CONCURRENCY=%d); Retry-After %.0f s",
                        self.running, self.waiting - 1, self.wait, self.limit, retry)
            raise SignInsBusy(f"{self.limit} upstream sign-ins under way, this one waited {self.wait:g} s",
                              retry) from None
        finally:
            self.waiting -= 1
        self.running += 1
        try:
            return await call()
        finally:
            self.running -= 1
            self._turns.release()
