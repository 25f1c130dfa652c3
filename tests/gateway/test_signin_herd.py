"""A herd of sign-ins on Cyrus (eas_gateway/signin_gate.py): the phones of many users signing
in at once (a restart, remembered sign-ins expiring together) reach the upstream at most
EAS_SIGNIN_CONCURRENCY at a time and all get in; one that waits too long for its turn is
told 503 with a Retry-After, changes nothing, and gets in when it comes back."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from tests.conftest import RunningGateway, running_gateway
from tests.gateway.helpers import device_rows, folder_sync, new_device_id, new_user, password, post
from usm.upstream import Account, Credentials
from usm.upstream.jmap import JMAPUpstream

pytestmark = [pytest.mark.postgres, pytest.mark.upstream]


class PacedUpstream:
    """The JMAP upstream; each sign-in takes at least ``hold`` seconds and waits for ``go``,
    and the most sign-ins under way at once are counted."""

    def __init__(self, inner: JMAPUpstream, hold: float) -> None:
        self.inner, self.hold = inner, hold
        self.go = threading.Event()
        self.go.set()
        self.calls = self.now = self.peak = 0

    async def authenticate(self, credentials: Credentials) -> Account:
        self.calls += 1
        self.now += 1
        self.peak = max(self.peak, self.now)
        try:
            await asyncio.sleep(self.hold)
            await asyncio.to_thread(self.go.wait, 60)
            return await self.inner.authenticate(credentials)
        finally:
            self.now -= 1

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@contextlib.contextmanager
def paced(cyrus: str, database_url: str, *, hold: float,
          wait: float) -> Iterator[tuple[RunningGateway, PacedUpstream]]:
    upstream = PacedUpstream(JMAPUpstream(cyrus), hold=hold)
    with running_gateway(cyrus, database_url, upstream=upstream, signin_concurrency=2,
                         signin_wait_seconds=wait) as gw:
        yield gw, upstream


def metric(gw: RunningGateway, name: str) -> float:
    for line in httpx.get(f"{gw.url}/metrics", timeout=10).text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")


def test_a_herd_reaches_the_upstream_a_few_at_a_time_and_all_get_in(cyrus: str, database_url: str) -> None:
    with paced(cyrus, database_url, hold=0.05, wait=60) as (gw, upstream):
        herd(gw, upstream)


def herd(gw: RunningGateway, upstream: PacedUpstream) -> None:
    users = [new_user(gw) for _ in range(8)]
    with ThreadPoolExecutor(len(users) * 2) as pool:
        # Each user's phone twice at once (its Ping and its Sync): one sign-in each.
        answers = list(pool.map(lambda u: httpx.options(gw.endpoint, auth=(u, password(u)), timeout=60),
                                users + users))
    assert [a.status_code for a in answers] == [200] * len(answers)
    assert upstream.peak == 2  # never more than EAS_SIGNIN_CONCURRENCY at once (16 without the gate)
    assert upstream.calls == len(users)  # a user's two requests at once shared a sign-in (or the second
    assert metric(gw, "eas_signins_shared_total") >= 1  # came after it, and found it remembered)
    assert metric(gw, "eas_signins_turned_away_total") == 0


def test_a_sign_in_that_waits_too_long_is_told_to_come_back_and_changes_nothing(
        cyrus: str, database_url: str, caplog: pytest.LogCaptureFixture) -> None:
    with paced(cyrus, database_url, hold=0.0, wait=1.0) as (gw, upstream):
        turned_away(gw, upstream, caplog)


def turned_away(gw: RunningGateway, upstream: PacedUpstream, caplog: pytest.LogCaptureFixture) -> None:
    first, second, third = new_user(gw), new_user(gw), new_user(gw)
    upstream.go.clear()  # the upstream is slow: sign-ins stay under way
    with ThreadPoolExecutor(2) as pool:
        held = [pool.submit(httpx.options, gw.endpoint, auth=(u, password(u)), timeout=60) for u in (first, second)]
        while upstream.now < 2:
            threading.Event().wait(0.02)
        device = new_device_id()
        refused = post(gw, "FolderSync", folder_sync("0"), device_id=device, user=third)
        assert refused.status_code == 503, refused.text
        assert 10 <= int(refused.headers["Retry-After"]) <= 60
        assert "upstream sign-ins under way" in refused.text
        assert "sign-in turned away" in caplog.text
        assert device_rows(gw, device) == 0 and upstream.calls == 2  # the upstream never saw it
        assert metric(gw, "eas_signins_waiting") == 0 and metric(gw, "eas_signins_running") == 2
        upstream.go.set()
        assert [h.result().status_code for h in held] == [200, 200]
    assert post(gw, "FolderSync", folder_sync("0"), device_id=device, user=third).status_code == 200
    assert device_rows(gw, device) == 1
    assert metric(gw, "eas_signins_turned_away_total") == 1
