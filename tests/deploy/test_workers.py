"""``eas-gateway serve --workers 2`` (eas_gateway/workers.py): the connections are spread
over both processes, a change wakes a Ping held by either, a worker that dies is started
again, a scrape of /metrics shows every worker's, and SIGTERM answers every held Ping and
stops everything, the embedded PostgreSQL included."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

import wbxml
from tests.conftest import RunningGateway, free_port
from tests.gateway.helpers import Phone, collection, deliver, hold_pings, message, new_user

pytestmark = [pytest.mark.postgres, pytest.mark.upstream]
P = "{Ping:}"


def _children(pid: int) -> list[int]:
    return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def _workers(pid: int) -> list[int]:
    """The supervisor's worker processes (not multiprocessing's resource tracker)."""
    return [c for c in _children(pid) if b"multiprocessing.spawn" in Path(f"/proc/{c}/cmdline").read_bytes()
            and b"resource_tracker" not in Path(f"/proc/{c}/cmdline").read_bytes()]


def _sockets(pid: int) -> int:
    count = 0
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            count += os.readlink(fd).startswith("socket:")
        except OSError:
            pass
    return count


def _statuses(answers: list[httpx.Response | BaseException]) -> list[str | BaseException]:
    return [a if isinstance(a, BaseException) else wbxml.decode(a.content).findtext(P + "Status") or ""
            for a in answers]


def _held_gauges(port: int) -> dict[str, float]:
    """eas_held_requests by worker, from one scrape."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    return {s.labels["worker"]: s.value for f in text_string_to_metric_families(text) for s in f.samples
            if s.name == "eas_held_requests"}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _wait(condition: object, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def test_two_workers_share_the_port_survive_a_crash_and_stop_together(cyrus: str, tmp_path: Path) -> None:
    port = free_port()
    state = tmp_path / "state"
    env = {**os.environ, "EAS_UPSTREAM": cyrus, "EAS_PORT": str(port), "EAS_STATE_DIR": str(state),
           "EAS_DAV_UPSTREAM": "none", "EAS_POLL_SECONDS": "1"}
    env.pop("EAS_DATABASE_URL", None)
    log_path = tmp_path / "log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen([str(Path(sys.executable).parent / "eas-gateway"), "serve", "--workers", "2"],
                                   env=env, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path)
    try:
        def up() -> bool:
            try:
                return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200 \
                    and len(_workers(process.pid)) == 2
            except httpx.TransportError:
                assert process.poll() is None, log_path.read_text()
                return False
        _wait(up, 120, "the workers did not come up")
        workers = _workers(process.pid)
        postmaster = int((state / "pgdata" / "postmaster.pid").read_text().split()[0])
        gw = RunningGateway(f"http://127.0.0.1:{port}", cyrus, "")
        user = new_user(gw)
        phones = [Phone(gw, user) for _ in range(16)]
        for phone in phones:
            key = phone.sync(collection(phone.inbox, "0")).findtext(".//{AirSync:}SyncKey") or ""
            phone.sync(collection(phone.inbox, key))
        before = {w: _sockets(w) for w in workers}
        threads, answers = hold_pings(phones)
        time.sleep(3)
        assert not answers  # all held
        held = {w: _sockets(w) - before[w] for w in workers}
        assert all(n >= 1 for n in held.values()), held  # both workers hold some of the 16
        # Whichever worker a scrape reaches, /metrics shows both, a series each.
        for _ in range(4):
            gauges = _held_gauges(port)
            assert set(gauges) == {"0", "1"} and sum(gauges.values()) == 16, gauges
            assert all(n >= 1 for n in gauges.values()), gauges
        # A delivery wakes every Ping, whichever worker holds it.
        deliver(gw, user, [message("to both workers", text="x")])
        for t in threads:
            t.join(30)
        assert _statuses(answers) == ["2"] * 16

        # A worker that dies is started again; the other goes on.
        os.kill(workers[0], signal.SIGKILL)
        _wait(lambda: len(_workers(process.pid)) == 2 and workers[0] not in _workers(process.pid), 60,
              "the dead worker was not started again")
        _wait(up, 60, "the gateway did not answer after the restart")
        assert workers[1] in _workers(process.pid)
        _wait(lambda: set(_held_gauges(port)) == {"0", "1"}, 30, "the restarted worker's metrics are missing")
        assert "ended with exit code -9; starting it again" in log_path.read_text()

        # SIGTERM: every held Ping answered, every process gone, the embedded PostgreSQL too.
        synced = [Phone(gw, user) for _ in range(4)]  # the delivery above included
        for phone in synced:
            key = phone.sync(collection(phone.inbox, "0")).findtext(".//{AirSync:}SyncKey") or ""
            phone.sync(collection(phone.inbox, key))
        threads, answers = hold_pings(synced)
        time.sleep(2)
        current = _workers(process.pid)
        process.send_signal(signal.SIGTERM)
        for t in threads:
            t.join(30)
        assert _statuses(answers) == ["1"] * 4
        assert process.wait(timeout=60) == 0
        _wait(lambda: not any(_alive(w) for w in current), 30, "a worker outlived the supervisor")
        _wait(lambda: not _alive(postmaster), 30, "the embedded PostgreSQL outlived the gateway")
    finally:
        if process.poll() is None:
            process.kill()


def test_workers_that_cannot_start_end_the_supervisor_with_exit_code_1(tmp_path: Path) -> None:
    """The port taken by someone else: no worker can listen; the supervisor does not restart them
    for ever but stops, saying why, as a single process would."""
    import socket

    port = free_port()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        env = {**os.environ, "EAS_UPSTREAM": "http://127.0.0.1:9", "EAS_PORT": str(port),
               "EAS_DATABASE_URL": "postgresql://nobody@127.0.0.1:9/none", "EAS_STATE_DIR": str(tmp_path)}
        done = subprocess.run([str(Path(sys.executable).parent / "eas-gateway"), "serve", "--workers", "2"],
                              env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    output = done.stdout + done.stderr
    assert "Address already in use" in output and "they cannot start; stopping" in output
