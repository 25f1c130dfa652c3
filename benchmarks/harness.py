"""What the contacts, calendar and search benchmarks set up alike: a private Cyrus
(scripts/cyrus-upstream.sh), a fresh database on the machine's PostgreSQL
(EAS_BENCH_DATABASE), the gateway (`eas-gateway serve`) and, when asked, the bare
Starlette+asyncpg endpoint of benchmarks/gateway_sync.py as the ceiling; all stopped at
the end. ``main`` is the command-line boilerplate around a benchmark's coroutine."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
from gateway_sync import BIN, CEILING_APP, SERVER, free_port, wait_http

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "cyrus-upstream.sh"


@dataclass
class Stack:
    cyrus_dir: Path
    cyrus_port: int
    upstream: str
    dsn: str
    endpoint: str = ""
    metrics_url: str = ""
    ceiling_url: str = ""
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def add_user(self, name: str) -> str:
        """A Cyrus user (password = ``name``); the address."""
        return self.add_users([name])[0]

    def add_users(self, names: list[str]) -> list[str]:
        """Cyrus users (password = the name), 500 to a run of the script; their addresses."""
        for start in range(0, len(names), 500):
            subprocess.run(["bash", str(SCRIPT), "adduser", str(self.cyrus_dir), str(self.cyrus_port),
                            *names[start:start + 500]], check=True, capture_output=True)
        return [f"{name}@example.com" for name in names]

    def sharing_mailbox_ids(self) -> set[str]:
        """Users (addresses) with a mailbox whose id another user's mailbox has too. Debian's Cyrus
        3.6 does that to ~1 % of accounts created in a row (393 of 33,897 mailboxes of 5,000 users
        made one after another: their JMAP queries of such a mailbox are then invalidArguments)."""
        dump = subprocess.run(["su", "cyrus", "-s", "/bin/sh", "-c",
                               f"/usr/lib/cyrus/bin/ctl_mboxlist -C {self.cyrus_dir / 'imapd.conf'} -d"],
                              check=True, capture_output=True, text=True).stdout
        owners: dict[str, set[str]] = {}
        for name, uniqueid in re.findall(r'"name": "[^"!]*!user\.([^".]+)[^"]*".*?"uniqueid": "([^"]+)"', dump):
            owners.setdefault(uniqueid, set()).add(f"{name}@example.com")
        return {user for users in owners.values() if len(users) > 1 for user in users}


@contextlib.asynccontextmanager
async def stack(work: Path, db_name: str, *, ceiling: bool = False,
                env: dict[str, str] | None = None, idle: bool = False) -> AsyncIterator[Stack]:
    """``idle``: the gateway idles on Cyrus' IMAP service (EAS_IMAP_IDLE)."""
    cyrus_port = free_port()
    cyrus_dir = work / "cyrus"
    cyrus_dir.mkdir()
    cyrus_dir.chmod(0o755)
    work.chmod(0o755)
    subprocess.run(["bash", str(SCRIPT), "start", str(cyrus_dir), str(cyrus_port)], check=True)
    found = Stack(cyrus_dir, cyrus_port, f"http://127.0.0.1:{cyrus_port}", f"{SERVER}/{db_name}")
    try:
        conn = await asyncpg.connect(SERVER + "/postgres")
        await conn.execute(f"DROP DATABASE IF EXISTS {db_name} WITH (FORCE)")
        await conn.execute(f"CREATE DATABASE {db_name}")
        await conn.close()
        gw_port = free_port()
        log = open(work / "gateway.log", "wb")
        env = {"EAS_LOOP_LIMIT": "0", **(env or {})}  # benchmarks repeat requests on purpose: no autoblock
        if idle:
            env["EAS_IMAP_IDLE"] = f"imap://127.0.0.1:{cyrus_port + 1}"
        found.processes.append(subprocess.Popen(
            [str(BIN / "eas-gateway"), "serve", "--port", str(gw_port), "--upstream", found.upstream,
             "--database-url", found.dsn], env={**os.environ, **(env or {})}, stdout=log, stderr=subprocess.STDOUT))
        found.endpoint = f"http://127.0.0.1:{gw_port}/Microsoft-Server-ActiveSync"
        found.metrics_url = f"http://127.0.0.1:{gw_port}/metrics"
        if ceiling:
            ceiling_port = free_port()
            (work / "ceiling.py").write_text(CEILING_APP)
            found.processes.append(subprocess.Popen(
                [str(BIN / "python"), "-m", "uvicorn", "ceiling:app", "--port", str(ceiling_port), "--log-level",
                 "warning"], cwd=work, env={**os.environ, "DSN": found.dsn}, stdout=log, stderr=subprocess.STDOUT))
            found.ceiling_url = f"http://127.0.0.1:{ceiling_port}/query"
            wait_http(found.ceiling_url)
        wait_http(found.endpoint)
        yield found
    finally:
        for p in found.processes:
            p.terminate()
        for p in found.processes:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
        subprocess.run(["bash", str(SCRIPT), "stop", str(cyrus_dir)], check=False)


def main(run: Callable[[argparse.Namespace, Path], Awaitable[None]], parser: argparse.ArgumentParser,
         prefix: str) -> None:
    """Parse the arguments, run the benchmark in a temporary directory, remove it (kept, with
    the gateway's log, when EAS_BENCH_KEEP is set)."""
    arguments = parser.parse_args()
    directory = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        asyncio.run(run(arguments, directory))
    finally:
        if os.environ.get("EAS_BENCH_KEEP"):
            print(f"kept {directory} (EAS_BENCH_KEEP)")
        else:
            shutil.rmtree(directory, ignore_errors=True)


def parser(doc: str | None) -> argparse.ArgumentParser:
    return argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)

