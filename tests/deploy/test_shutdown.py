"""Stopping the gateway (issue 17, item 4): held Pings are answered (Status 1) before the
process exits, not cut off with a 500, and the embedded PostgreSQL the gateway started
stops with it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

import wbxml
from tests.conftest import RunningGateway, free_port
from tests.gateway.helpers import Phone, collection, hold_pings, new_user

pytestmark = [pytest.mark.postgres, pytest.mark.upstream]
P = "{Ping:}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_held_pings_are_answered_and_the_embedded_database_stops(cyrus: str, tmp_path: Path) -> None:
    port = free_port()
    state = tmp_path / "state"
    env = {**os.environ, "EAS_UPSTREAM": cyrus, "EAS_PORT": str(port), "EAS_STATE_DIR": str(state),
           "EAS_DAV_UPSTREAM": "none"}
    env.pop("EAS_DATABASE_URL", None)
    with open(tmp_path / "log", "wb") as log:
        process = subprocess.Popen([str(Path(sys.executable).parent / "eas-gateway"), "serve"], env=env, stdout=log,
                                   stderr=subprocess.STDOUT, cwd=tmp_path)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
                break
            except httpx.TransportError:
                assert process.poll() is None and time.monotonic() < deadline, (tmp_path / "log").read_text()
                time.sleep(0.2)
        postmaster = int((state / "pgdata" / "postmaster.pid").read_text().split()[0])
        gw = RunningGateway(f"http://127.0.0.1:{port}", cyrus, "")
        user = new_user(gw)
        phones = [Phone(gw, user) for _ in range(5)]
        for phone in phones:  # synced, so that a Ping waits
            key = phone.sync(collection(phone.inbox, "0")).findtext(".//{AirSync:}SyncKey") or ""
            phone.sync(collection(phone.inbox, key))
        threads, answers = hold_pings(phones)
        time.sleep(2)
        assert not answers  # all held
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        for t in threads:
            t.join(30)
        answered_after = time.monotonic() - started
        assert process.wait(timeout=30) in (0, -signal.SIGTERM)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert len(answers) == 5 and all(isinstance(a, httpx.Response) for a in answers), answers
    assert all(wbxml.decode(a.content).findtext(P + "Status") == "1" for a in answers)  # type: ignore[union-attr]
    assert answered_after < 5, answered_after
    for _ in range(100):
        if not _alive(postmaster):
            break
        time.sleep(0.1)
    assert not _alive(postmaster), "the embedded PostgreSQL outlived the gateway"
