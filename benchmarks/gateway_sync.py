"""The gateway under load, against a ceiling measured in the same run.

    .venv/bin/python benchmarks/gateway_sync.py [--mailboxes 1000,10000] [--pings 1000,10000] [--seconds 5]
                                                [--events] [--workers N] [--hold-rate PER_SECOND]

Starts a private Cyrus (scripts/cyrus-upstream.sh), a fresh database on the
machine's PostgreSQL (EAS_BENCH_DATABASE, default postgresql://postgres@
127.0.0.1:5432), the gateway (`eas-gateway serve`, one process, INFO logs to a
file as in production) and, as the ceiling, a bare Starlette endpoint doing
one asyncpg query per request under the same uvicorn. Reports:

1. initial sync of a mailbox of each --mailboxes size (default 1,000 and 10,000; 100,000 takes
   ~15 minutes to fill; IMAP-appended, text + HTML, BodyPreference HTML truncated at 5,000 bytes
   as iOS asks, WindowSize 100): items/s, the first page (the listing included) and the slowest
   later page in ms, and items/s of each size against the smallest (flat: within 20 %);
2. no-change Sync at 1, 10 and 50 concurrent devices: requests/s, p50, p99,
   and the same for the bare endpoint; ratio gateway / ceiling; and what one
   costs: upstream calls and database statements (the gateway's /metrics) and database
   transactions (pg_stat_database), over 200 in a row; with --events, Cyrus' change events go to the
   gateway and another phone of the user holds a Ping (the node watches the user, as between a
   phone's Syncs), so a no-change Sync can be answered from PostgreSQL alone;
3. held Pings at each --pings count: all held (none answered), the gateway's
   RSS growth per Ping (its workers' together), and the bare endpoint's per held request (at
   most 15,000: one process); the held requests come from client processes of 15,000 each,
   each from its own loopback address, paced by --hold-rate; and another device's no-change
   Sync p50/p99 while they are held. 50,000 on this machine (20,000 descriptors per process):
   --pings 50000 --workers 3 --hold-rate 400.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import multiprocessing
import os
import shutil
import smtplib
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from email.message import EmailMessage
from multiprocessing.connection import Connection
from pathlib import Path

import asyncpg
import httpx
from lxml import etree

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import wbxml  # noqa: E402

A, B = "{AirSync:}", "{AirSyncBase:}"
SERVER = os.environ.get("EAS_BENCH_DATABASE", "postgresql://postgres@127.0.0.1:5432")
BIN = Path(sys.executable).parent
CEILING_APP = textwrap.dedent('''
    import asyncio, contextlib, os
    import asyncpg
    from starlette.applications import Starlette
    from starlette.responses import Response
    from starlette.routing import Route

    pool = None
    forever = asyncio.Event()

    @contextlib.asynccontextmanager
    async def lifespan(app):
        global pool
        pool = await asyncpg.create_pool(os.environ["DSN"], min_size=2, max_size=20)
        yield

    async def query(request):
        body = await request.body()
        async with pool.acquire() as conn:
            key = await conn.fetchval("SELECT sync_key FROM collections WHERE user_name = $1 LIMIT 1", "x")
        return Response(b"\\x03\\x01\\x6a\\x00" + bytes(str(key), "ascii"),
                        media_type="application/vnd.ms-sync.wbxml")

    async def hold(request):
        await request.body()
        await forever.wait()
        return Response(b"")

    app = Starlette(routes=[Route("/query", query, methods=["POST"]), Route("/hold", hold, methods=["POST"])],
                    lifespan=lifespan)
''')


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def wait_http(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            httpx.options(url, timeout=2)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


class Device:
    """A raw EAS 14.1 client (plain query, no client library)."""

    def __init__(self, http: httpx.AsyncClient, endpoint: str, user: str, device_id: str) -> None:
        self.http, self.endpoint, self.user, self.device_id = http, endpoint, user, device_id
        self.policy_key: str | None = None

    async def post(self, command: str, root: etree._Element | None) -> bytes:
        headers = {"MS-ASProtocolVersion": "14.1", "Content-Type": "application/vnd.ms-sync.wbxml"}
        if self.policy_key:
            headers["X-MS-PolicyKey"] = self.policy_key
        params = {"Cmd": command, "User": self.user, "DeviceId": self.device_id, "DeviceType": "Bench"}
        answer = await self.http.post(self.endpoint, params=params, headers=headers,
                                      content=wbxml.encode(root) if root is not None else b"",
                                      auth=(self.user, self.user.split("@")[0]))
        answer.raise_for_status()
        return answer.content

    async def provision(self) -> dict[str, str]:
        P = "{Provision:}"
        key = None
        for _ in range(2):
            root = etree.Element(P + "Provision")
            policy = etree.SubElement(etree.SubElement(root, P + "Policies"), P + "Policy")
            etree.SubElement(policy, P + "PolicyType").text = "MS-EAS-Provisioning-WBXML"
            if key:
                etree.SubElement(policy, P + "PolicyKey").text = key
                etree.SubElement(policy, P + "Status").text = "1"
            key = wbxml.decode(await self.post("Provision", root)).findtext(f".//{P}PolicyKey")
            self.policy_key = key
        F = "{FolderHierarchy:}"
        root = etree.Element(F + "FolderSync")
        etree.SubElement(root, F + "SyncKey").text = "0"
        tree = wbxml.decode(await self.post("FolderSync", root))
        return {a.findtext(F + "Type"): a.findtext(F + "ServerId") for a in tree.iter(F + "Add")}

    async def sync(self, collection_id: str, key: str, *, options: bool = False) -> etree._Element:
        root = etree.Element(A + "Sync")
        c = etree.SubElement(etree.SubElement(root, A + "Collections"), A + "Collection")
        etree.SubElement(c, A + "SyncKey").text = key
        etree.SubElement(c, A + "CollectionId").text = collection_id
        etree.SubElement(c, A + "WindowSize").text = "100"
        if options:
            o = etree.SubElement(c, A + "Options")
            pref = etree.SubElement(o, B + "BodyPreference")
            etree.SubElement(pref, B + "Type").text = "2"
            etree.SubElement(pref, B + "TruncationSize").text = "5000"
        return wbxml.decode(await self.post("Sync", root))

    async def sync_all(self, collection_id: str) -> tuple[str, int, list[float]]:
        """Key 0, then every page; the last key, the items, and each page's seconds."""
        tree = await self.sync(collection_id, "0", options=True)
        key, items, pages = tree.findtext(f".//{A}SyncKey"), 0, []
        while True:
            started = time.perf_counter()
            tree = await self.sync(collection_id, key)
            pages.append(time.perf_counter() - started)
            key = tree.findtext(f".//{A}SyncKey")
            items += len(list(tree.iter(A + "Add")))
            if tree.find(f".//{A}MoreAvailable") is None:
                return key, items, pages


def message(user: str, i: int) -> EmailMessage:
    m = EmailMessage()
    m["From"], m["To"], m["Subject"] = "Sender <s@example.org>", user, f"Benchmark message {i} – Grüße"
    m.set_content(f"Hello {i}\n" + "Lorem ipsum dolor sit amet. " * 40)
    m.add_alternative(f"<p>Hello <b>{i}</b></p>" + "<p>Lorem ipsum dolor sit amet.</p>" * 40, subtype="html")
    return m


def deliver(lmtp: Path, user: str, count: int) -> None:
    with smtplib.LMTP(str(lmtp)) as conn:
        for i in range(count):
            conn.send_message(message(user, i), "s@example.org", [user])


def append(imap_port: int, user: str, count: int, batch: int = 500) -> None:
    """``count`` messages into the Inbox over IMAP, ``batch`` per APPEND (RFC 3502 MULTIAPPEND,
    RFC 7888 LITERAL+): ~150 a second on this Cyrus, three times LMTP's, what makes a
    100,000-message mailbox take minutes rather than half an hour."""
    with socket.create_connection(("127.0.0.1", imap_port)) as conn, conn.makefile("rb") as lines:
        def done(tag: bytes) -> None:
            while not (line := lines.readline()).startswith(tag + b" "):
                if not line:
                    raise RuntimeError("IMAP connection closed")
            if not line.startswith(tag + b" OK"):
                raise RuntimeError(f"IMAP: {line!r}")
        lines.readline()
        conn.sendall(f"a LOGIN {user} {user.partition('@')[0]}\r\n".encode())
        done(b"a")
        for start in range(0, count, batch):
            parts = []
            for i in range(start, min(count, start + batch)):
                raw = message(user, i).as_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
                parts.append(b"{%d+}\r\n%s" % (len(raw), raw))
            conn.sendall(b"b APPEND INBOX " + b" ".join(parts) + b"\r\n")
            done(b"b")


def ping_request(folder: str, heartbeat: int) -> etree._Element:
    """A Ping of one Email folder."""
    P = "{Ping:}"
    root = etree.Element(P + "Ping")
    etree.SubElement(root, P + "HeartbeatInterval").text = str(heartbeat)
    f = etree.SubElement(etree.SubElement(root, P + "Folders"), P + "Folder")
    etree.SubElement(f, P + "Id").text = folder
    etree.SubElement(f, P + "Class").text = "Email"
    return root


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))]


async def load(run_one, workers: int, seconds: float) -> tuple[float, float, float]:
    """Requests/s, p50 ms, p99 ms of ``workers`` loops of ``run_one(i)`` for ``seconds``."""
    latencies: list[float] = []
    stop = time.monotonic() + seconds

    async def worker(i: int) -> None:
        while time.monotonic() < stop:
            t = time.perf_counter()
            await run_one(i)
            latencies.append((time.perf_counter() - t) * 1e3)

    started = time.monotonic()
    await asyncio.gather(*(worker(i) for i in range(workers)))
    elapsed = time.monotonic() - started
    return len(latencies) / elapsed, statistics.median(latencies), percentile(latencies, 0.99)


async def hold_requests(port: int, path: str, count: int, body: bytes, headers: dict[str, str],
                        queries: list[str], source: str | None = None, rate: float = 0.0,
                        ) -> list[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    """Open ``count`` connections (from the local address ``source``; ``rate`` a second at
    most, when given), each sending one POST that the server is expected to hold."""
    held = []
    sem = asyncio.Semaphore(200)
    loop = asyncio.get_running_loop()
    began = loop.time()

    async def one(i: int) -> None:
        if rate:
            await asyncio.sleep(max(0.0, began + i / rate - loop.time()))
        async with sem:
            reader, writer = await asyncio.open_connection("127.0.0.1", port,
                                                           local_addr=(source, 0) if source else None)
            head = f"POST {path}?{queries[i]} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {len(body)}\r\n"
            head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
            writer.write(head.encode() + body)
            await writer.drain()
            held.append((reader, writer))

    await asyncio.gather(*(one(i) for i in range(count)))
    return held


async def answered(held: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]]) -> int:
    count = 0
    for reader, _ in held:
        try:
            if await asyncio.wait_for(reader.read(1), 0.001):
                count += 1
        except TimeoutError:
            pass
    return count


async def close_all(held: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]]) -> None:
    for _, writer in held:
        writer.close()
    await asyncio.gather(*(writer.wait_closed() for _, writer in held), return_exceptions=True)


def tree_rss_kib(pid: int) -> int:
    """RSS of a process and its children (the gateway's workers, --workers)."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return rss_kib(pid) + sum(rss_kib(int(c)) for c in children)


async def settle(pid: int, seconds: float = 120) -> int:
    """The RSS of the process (and its children) once it stops growing (the held requests are all in)."""
    last, stable, deadline = tree_rss_kib(pid), 0, time.monotonic() + seconds
    while time.monotonic() < deadline and stable < 3:
        await asyncio.sleep(1.0)
        now = tree_rss_kib(pid)
        stable = stable + 1 if abs(now - last) < 256 else 0
        last = now
    return last


PER_CLIENT = 15_000  # connections per client process: under its descriptor limit and its source ports


def _client(port: int, path: str, body: bytes, headers: dict[str, str], queries: list[str], source: str,
            rate: float, pipe: Connection) -> None:
    """A client process: holds its requests until told, then says how many were answered early."""
    import resource

    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    async def run() -> None:
        held = await hold_requests(port, path, len(queries), body, headers, queries, source, rate)
        pipe.send("held")
        await asyncio.get_running_loop().run_in_executor(None, pipe.recv)
        pipe.send(await answered(held))
        await close_all(held)

    asyncio.run(run())


class Holders:
    """Held requests from as many client processes as their count needs, each from its own
    loopback address (one client's descriptors and one address's ports run out first)."""

    def __init__(self, port: int, path: str, body: bytes, headers: dict[str, str], queries: list[str],
                 rate: float = 0.0, first_address: int = 2) -> None:
        context = multiprocessing.get_context("fork")
        chunks = [queries[i:i + PER_CLIENT] for i in range(0, len(queries), PER_CLIENT)]
        rate /= len(chunks)
        self.pipes, self.processes = [], []
        for k, chunk in enumerate(chunks):
            ours, theirs = context.Pipe()
            source = f"127.0.0.{first_address + k}"
            process = context.Process(target=_client, args=(port, path, body, headers, chunk, source, rate, theirs))
            process.start()
            self.pipes.append(ours)
            self.processes.append(process)

    async def held(self) -> None:
        for pipe in self.pipes:
            assert await asyncio.to_thread(pipe.recv) == "held"

    async def close(self) -> int:
        """Closes every connection; how many had been answered."""
        for pipe in self.pipes:
            pipe.send("close")
        early = sum([await asyncio.to_thread(pipe.recv) for pipe in self.pipes])
        for process in self.processes:
            process.join(60)
        return early


async def main(args: argparse.Namespace, work: Path) -> None:
    cyrus_port = free_port()
    cyrus_dir = work / "cyrus"
    cyrus_dir.mkdir()
    cyrus_dir.chmod(0o755)
    work.chmod(0o755)
    script = ROOT / "scripts" / "cyrus-upstream.sh"
    subprocess.run(["bash", str(script), "start", str(cyrus_dir), str(cyrus_port)], check=True)
    processes: list[subprocess.Popen[bytes]] = []
    try:
        db_name = "eas_gateway_bench"
        conn = await asyncpg.connect(SERVER + "/postgres")
        await conn.execute(f"DROP DATABASE IF EXISTS {db_name} WITH (FORCE)")
        await conn.execute(f"CREATE DATABASE {db_name}")
        await conn.close()
        dsn = f"{SERVER}/{db_name}"
        users = [f"bench{uuid.uuid4().hex[:6]}{i}" for i in range(1 + len(args.mailboxes))]
        for name in users:
            subprocess.run(["bash", str(script), "adduser", str(cyrus_dir), str(cyrus_port), name], check=True)
        small, *bigs = (f"{u}@example.com" for u in users)

        gw_port, ceiling_port = free_port(), free_port()
        # The load repeats the same no-change Sync hundreds of times a minute per device: what the
        # sync-loop autoblock (EAS_LOOP_LIMIT) exists to stop, so it is off here.
        env = {**os.environ, "EAS_POLL_SECONDS": "20", "EAS_LOOP_LIMIT": "0"}
        if args.events:  # Cyrus' change events POSTed to the gateway (scripts/cyrus-upstream.sh)
            env["EAS_UPSTREAM_EVENTS_SECRET"] = "bench-events"
            (cyrus_dir / "events-target").write_text(
                f"http://127.0.0.1:{gw_port}/push/upstream-events bench-events\n")
        log = open(work / "gateway.log", "wb")
        gateway = subprocess.Popen([str(BIN / "eas-gateway"), "serve", "--port", str(gw_port), "--upstream",
                                    f"http://127.0.0.1:{cyrus_port}", "--database-url", dsn,
                                    "--workers", str(args.workers)],
                                   env=env, stdout=log, stderr=subprocess.STDOUT)
        processes.append(gateway)
        (work / "ceiling.py").write_text(CEILING_APP)
        ceiling = subprocess.Popen([str(BIN / "python"), "-m", "uvicorn", "ceiling:app", "--port", str(ceiling_port),
                                    "--log-level", "warning"], cwd=work, env={**os.environ, "DSN": dsn},
                                   stdout=log, stderr=subprocess.STDOUT)
        processes.append(ceiling)
        endpoint = f"http://127.0.0.1:{gw_port}/Microsoft-Server-ActiveSync"
        wait_http(endpoint)
        wait_http(f"http://127.0.0.1:{ceiling_port}/query")

        print(f"{'figure':<44} {'gateway':>14} {'ceiling':>14} {'ratio':>7}")
        limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
        async with httpx.AsyncClient(timeout=600, limits=limits) as http:
            # 1. Initial sync of each mailbox size.
            first_rate = 0.0
            for size, big in zip(args.mailboxes, bigs, strict=True):
                append(cyrus_port + 1, big, size)
                phone = Device(http, endpoint, big, f"benchbig{size}")
                folders = await phone.provision()
                started = time.perf_counter()
                _, items, pages = await phone.sync_all(folders["2"])
                elapsed = time.perf_counter() - started
                assert items == size, (items, size)
                rate = items / elapsed
                first_rate = first_rate or rate
                print(f"{f'initial sync, {size:,} messages: items/s':<44} {rate:>14.0f} {'':>14} "
                      f"{rate / first_rate:>7.2f}")
                print(f"{'  first page / slowest later page ms':<44} "
                      f"{pages[0] * 1e3:>6.0f} / {max(pages[1:] or [0]) * 1e3:>5.0f}")

            # 2. No-change Sync.
            devices = [Device(http, endpoint, small, f"benchsmall{i}") for i in range(50)]
            deliver(cyrus_dir / "socket" / "lmtp", small, 20)
            keys = []
            for d in devices:
                inbox = (await d.provision())["2"]
                keys.append((await d.sync_all(inbox))[0])

            async def no_change(i: int) -> None:
                tree = await devices[i].sync(inbox, keys[i])
                assert tree.findtext(f".//{A}SyncKey") == keys[i]

            async def bare(i: int) -> None:
                (await http.post(f"http://127.0.0.1:{ceiling_port}/query", content=b"x")).raise_for_status()

            async def counters() -> tuple[float, float, int]:
                """Upstream calls the gateway made and statements its Syncs sent (its /metrics), and
                transactions of its database."""
                text = (await http.get(f"http://127.0.0.1:{gw_port}/metrics")).text

                def counted(prefix: str) -> float:
                    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(prefix))
                calls = counted("eas_upstream_calls_total")
                statements = counted('eas_db_statements_total{command="Sync"}')
                conn = await asyncpg.connect(dsn)
                try:
                    # PostgreSQL publishes a busy backend's counts at most once a second and an idle
                    # one's within 10 s: wait for every earlier phase's to be in.
                    await asyncio.sleep(11)
                    xacts = await conn.fetchval("SELECT xact_commit + xact_rollback FROM pg_stat_database "
                                                "WHERE datname = current_database()")
                finally:
                    await conn.close()
                return calls, statements, int(xacts)

            watching = None
            if args.events:
                # A phone of the user holds a Ping (as between its Syncs): the node watches the user,
                # and Cyrus' events of the 20 deliveries above told it that mail has events.
                watcher = Device(http, endpoint, small, "benchwatch")
                await watcher.provision()
                await watcher.sync_all(inbox)
                watching = asyncio.create_task(watcher.post("Ping", ping_request(inbox, 3000)))
                await asyncio.sleep(2.0)
                assert not watching.done(), "the watching Ping was answered"

            # What one no-change Sync costs: upstream calls, database statements and transactions (a
            # statement outside a transaction block is one), over 200 in a row.
            before = await counters()
            for _ in range(200):
                await no_change(0)
            after = await counters()
            # /metrics: one worker's
            calls, statements = ((f"{(after[i] - before[i]) / 200:>6.2f}" if args.workers == 1 else "   n/a")
                                 for i in (0, 1))
            print(f"{'no-change Sync: upstream calls / DB statements / DB transactions':<44} "
                  f"{calls} /{statements} /{(after[2] - before[2]) / 200:>6.2f}")

            for workers in (1, 10, 50):
                ours = await load(no_change, workers, args.seconds)
                base = await load(bare, workers, args.seconds)
                print(f"{f'no-change Sync, {workers} devices: req/s':<44} {ours[0]:>14.0f} {base[0]:>14.0f} "
                      f"{ours[0] / base[0]:>7.2f}")
                print(f"{'  p50 / p99 ms':<44} {ours[1]:>6.1f} /{ours[2]:>6.1f} {base[1]:>6.1f} /{base[2]:>6.1f}")
            if watching is not None:
                watching.cancel()
            idle_latencies = []
            for _ in range(200):
                began = time.perf_counter()
                await no_change(0)
                idle_latencies.append(time.perf_counter() - began)
            idle_sync = statistics.median(idle_latencies) * 1e3, percentile(idle_latencies, 0.99) * 1e3

        # 3. Held Pings. Devices are created in SQL (provisioned, inbox synced at
        # the current upstream state) so that setting up 10,000 is quick.
        conn = await asyncpg.connect(dsn)
        state = await conn.fetchval("SELECT upstream_state FROM collections WHERE user_name = $1 LIMIT 1", small)
        response = await conn.fetchval("SELECT last_response FROM collections WHERE user_name = $1 LIMIT 1", small)
        for count in args.pings:
            ids = [f"ping{count}x{i}" for i in range(count)]
            await conn.execute(
                "INSERT INTO devices (user_name, device_id, device_type, policy_key) "
                "SELECT $1, id, 'Bench', 1 FROM unnest($2::text[]) AS id", small, ids)
            await conn.execute(
                "INSERT INTO collections (user_name, device_id, collection_id, sync_key, upstream_state, last_response)"
                " SELECT $1, id, $3, 2, $4, $5 FROM unnest($2::text[]) AS id", small, ids, int(inbox), state, response)
            # A phone Pings after its FolderSync; without that state a Ping asks for one (Status 7).
            await conn.execute(
                "INSERT INTO folder_sync (user_name, device_id, sync_key, last_response)"
                " SELECT $1, id, 1, '' FROM unnest($2::text[]) AS id", small, ids)
            body = wbxml.encode(ping_request(inbox, 3000))
            auth = base64.b64encode(f"{small}:{small.split('@')[0]}".encode()).decode()
            headers = {"Authorization": f"Basic {auth}", "MS-ASProtocolVersion": "14.1", "X-MS-PolicyKey": "1",
                       "Content-Type": "application/vnd.ms-sync.wbxml"}
            queries = [f"Cmd=Ping&User={small}&DeviceId={i}&DeviceType=Bench" for i in ids]
            before, base_before = tree_rss_kib(gateway.pid), rss_kib(ceiling.pid)
            started = time.monotonic()
            # Paced (--hold-rate): more than the gateway takes would only fill its accept queues.
            holders = Holders(gw_port, "/Microsoft-Server-ActiveSync", body, headers, queries, args.hold_rate)
            await holders.held()
            after = await settle(gateway.pid)
            took = time.monotonic() - started
            # Another device's no-change Syncs while they are held (the same device's, before).
            async with httpx.AsyncClient(timeout=60) as http:
                other = Device(http, endpoint, small, "benchsmall0")
                other.policy_key = devices[0].policy_key
                latencies = []
                for _ in range(200):
                    began = time.perf_counter()
                    await other.sync(inbox, keys[0])
                    latencies.append(time.perf_counter() - began)
            early = await holders.close()  # one side at a time: the machine's descriptors
            # The bare endpoint is one process: at most what one process's descriptors allow.
            bare_count = min(count, PER_CLIENT)
            # Other source addresses: the gateway's connections left their ports in TIME_WAIT.
            bare = Holders(ceiling_port, "/hold", body, {}, queries[:bare_count], first_address=100)
            await bare.held()
            base_after = await settle(ceiling.pid)
            await bare.close()
            per, base_per = (after - before) / count, (base_after - base_before) / bare_count
            print(f"{f'{count:,} held Pings: RSS KiB per Ping':<44} {per:>14.1f} {base_per:>14.1f} "
                  f"{per / base_per if base_per > 0 else float('nan'):>7.2f}")
            print(f"{'  answered early (must be 0) / set-up s':<44} {early:>6d} /{took:>6.1f}")
            print(f"{'  Sync of another device meanwhile p50/p99 ms':<44} "
                  f"{statistics.median(latencies) * 1e3:>6.1f} /{percentile(latencies, 0.99) * 1e3:>6.1f}"
                  f"   (before: {idle_sync[0]:.1f} / {idle_sync[1]:.1f})")
        await conn.close()
    finally:
        for p in processes:
            p.terminate()
        for p in processes:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
        subprocess.run(["bash", str(script), "stop", str(cyrus_dir)], check=False)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mailboxes", default="1000,10000", type=lambda s: [int(x) for x in s.split(",")])
    parser.add_argument("--pings", default="1000,10000", type=lambda s: [int(x) for x in s.split(",")])
    parser.add_argument("--seconds", default=5.0, type=float)
    parser.add_argument("--hold-rate", default=0.0, type=float,
                        help="held Pings started per second at most (0: as fast as they go)")
    parser.add_argument("--workers", default=1, type=int,
                        help="gateway processes (eas-gateway serve --workers): more than one process's "
                             "descriptors for held Pings")
    parser.add_argument("--events", action="store_true",
                        help="Cyrus' change events go to the gateway, and a phone of the syncing user holds a Ping")
    parsed = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="eas-bench-"))
    try:
        asyncio.run(main(parsed, workdir))
    finally:
        if os.environ.get("EAS_BENCH_KEEP"):
            print(f"kept {workdir} (EAS_BENCH_KEEP): gateway.log")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
