"""Several gateway processes on one listening socket (``eas-gateway serve --workers N``).

One process uses one core, and one process's file descriptors (one per held Ping) are
bounded by its limit. With ``EAS_WORKERS`` > 1 this process starts N worker processes,
each listening on the port with SO_REUSEPORT, so that the kernel spreads the connections
evenly by their addresses (one socket shared by all would go to whichever process wakes
first: a worker could fill up with held Pings while another idles); it watches them: a
worker that dies is started again (logged; one that cannot start at all ends this process
with exit code 1), SIGTERM or SIGINT stops them all (each answers its held Pings first:
eas_gateway.server) and then this process.

Each worker is a node of its own as far as the rest of the code knows: its own pool,
its own push hub and watchers, found by the others through LISTEN/NOTIFY like nodes on
other machines (docs/ARCHITECTURE.md, Scale-out). With the embedded PostgreSQL, this
process starts it, the workers connect to it by URL, and it stops after them. A scrape of
/metrics, which reaches one worker, shows every worker's (eas_gateway.observability.worker_metrics).
"""

from __future__ import annotations

import dataclasses
import logging
import multiprocessing
import os
import shutil
import signal
import socket
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.process import BaseProcess
from pathlib import Path
from types import FrameType

from eas_gateway.config import Settings

log = logging.getLogger(__name__)

RESTART_PAUSE_SECONDS = 1.0  # before a dead worker is started again (no busy loop on a crash at start)
STOP_SECONDS = 30.0  # a worker still running this long after SIGTERM is killed
# A worker that ends within EARLY_SECONDS of its start this many times in a row cannot start
# (the port taken, a bad setting): the supervisor stops everything and exits 1, as a single
# process would, instead of restarting it for ever.
EARLY_SECONDS, EARLY_DEATHS = 10.0, 5


@dataclass(frozen=True)
class Slot:
    """Which worker a process is: its index (0..N-1, kept when it is started again) and the node's
    metrics directory, where each worker answers for its metrics (observability/worker_metrics.py)."""

    index: int
    metrics_dir: Path


def listening_socket(host: str, port: int, backlog: int = 4096) -> socket.socket:
    """A worker's own socket on the shared port (SO_REUSEPORT)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(backlog)
    return sock


def supervise(settings: Settings, count: int, run: Callable[[Settings, Slot | None], None]) -> None:
    """Run ``count`` processes of ``run(settings, Slot(i, ...))`` until SIGTERM/SIGINT."""
    from usm import database

    embedded = None
    if settings.database_url is None:
        embedded = database.embedded(settings.state_dir)
        settings = dataclasses.replace(settings, database_url=embedded.url)
    metrics_dir = Path(tempfile.mkdtemp(prefix="eas-gateway-workers-"))
    context = multiprocessing.get_context("spawn")  # no event loop or pool crosses into a worker
    stopping = False
    started: dict[int, float] = {}
    early = 0  # workers in a row that ended soon after their start

    def start(index: int) -> BaseProcess:
        process = context.Process(target=run, args=(settings, Slot(index, metrics_dir)),
                                  name=f"eas-gateway worker {index}")
        process.start()
        started[index] = time.monotonic()
        log.info("worker %d started (pid %s)", index, process.pid)
        return process

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    previous = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGINT)}
    workers = [start(i) for i in range(count)]
    log.info("listening on %s:%d with %d workers", settings.host, settings.port, count)
    failed = False
    try:
        while not stopping:
            time.sleep(0.2)
            for index, process in enumerate(workers):
                if process.is_alive() or stopping:
                    continue
                early = early + 1 if time.monotonic() - started[index] < EARLY_SECONDS else 0
                if early >= EARLY_DEATHS:
                    log.error("workers ended within %.0f s of their start %d times in a row (last: exit code "
                              "%s): they cannot start; stopping", EARLY_SECONDS, early, process.exitcode)
                    stopping = failed = True
                    break
                log.warning("worker %d (pid %s) ended with exit code %s; starting it again", index,
                            process.pid, process.exitcode)
                time.sleep(RESTART_PAUSE_SECONDS)
                workers[index] = start(index)
    finally:
        for process in workers:
            if process.is_alive() and process.pid is not None:
                _signal(process, signal.SIGTERM)
        deadline = time.monotonic() + STOP_SECONDS
        for process in workers:
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                log.warning("worker pid %s did not stop within %.0f s; killed", process.pid, STOP_SECONDS)
                process.kill()
                process.join()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        shutil.rmtree(metrics_dir, ignore_errors=True)
        if embedded is not None:
            embedded.release()
            log.info("embedded PostgreSQL released")
    if failed:
        raise SystemExit(1)


def _signal(process: BaseProcess, signum: int) -> None:
    try:
        os.kill(process.pid, signum)  # type: ignore[arg-type]
    except ProcessLookupError:
        pass

