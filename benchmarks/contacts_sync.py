"""Contacts over CardDAV, against a ceiling measured in the same run.

    .venv/bin/python benchmarks/contacts_sync.py [--cards 2000] [--users 1000] [--seconds 5]

Starts a private Cyrus (scripts/cyrus-upstream.sh: JMAP mail, CardDAV), a fresh
database on the machine's PostgreSQL (EAS_BENCH_DATABASE), the gateway
(`eas-gateway serve`) and the bare Starlette+asyncpg endpoint of
benchmarks/gateway_sync.py as the ceiling. Reports:

1. initial sync of a --cards address book (vCard 3.0 cards with names, two
   e-mails, three phones, an address, a note; WindowSize 100): items/s;
2. a no-change Sync of a device with Inbox + Contacts in one request, at 1 and
   10 devices: requests/s against the ceiling's, and the upstream requests each
   one costs (read from the gateway's /metrics);
3. the cost of the DAV watcher's poll (usm.push: one PROPFIND Depth 1 per home
   per user): upstream requests per poll round and the gateway's CPU seconds
   per round for --users users, measured on 100 real users and scaled.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
import time
import uuid
from pathlib import Path

import httpx
from lxml import etree

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import harness  # noqa: E402
from gateway_sync import A, Device, deliver, load  # noqa: E402
from harness import stack  # noqa: E402

import wbxml  # noqa: E402
from usm.upstream import Credentials  # noqa: E402
from usm.upstream.composite import Sources  # noqa: E402
from usm.upstream.dav import DavUpstream  # noqa: E402
from usm.upstream.dav_store import CONTACTS  # noqa: E402
from usm.upstream.jmap import JMAPUpstream  # noqa: E402

PARALLEL = 8
CARD = ("BEGIN:VCARD\r\nVERSION:3.0\r\nUID:bench-{i}\r\nFN:Person {i}\r\nN:Person {i};First;;;\r\n"
        "ORG:Company {i};Dept\r\nEMAIL;TYPE=INTERNET:p{i}@example.org\r\nEMAIL;TYPE=INTERNET:q{i}@example.net\r\n"
        "TEL;TYPE=CELL:+1 555 {i:04d}\r\nTEL;TYPE=WORK:+1 556 {i:04d}\r\nTEL;TYPE=HOME:+1 557 {i:04d}\r\n"
        "ADR;TYPE=HOME:;;{i} Main Street;Springfield;IL;62701;USA\r\nNOTE:Met at conference {i}\r\nEND:VCARD\r\n")


def upstream_calls(metrics: str) -> float:
    """Sum of eas_upstream_calls_total over every operation."""
    return sum(float(m) for m in re.findall(r"^eas_upstream_calls_total\{[^}]*\} ([0-9.e+]+)$", metrics, re.M))


async def put_cards(base: str, creds: Credentials, count: int) -> None:
    dav = DavUpstream(base)
    try:
        book = next(c.path for c in await dav.collections(creds) if c.kind == CONTACTS)
        sem = asyncio.Semaphore(8)

        async def one(i: int) -> None:
            async with sem:
                await dav.create(creds, f"{book}bench-{i}.vcf", CARD.format(i=i), "text/vcard")
        await asyncio.gather(*(one(i) for i in range(count)))
    finally:
        await dav.aclose()


async def main(args: argparse.Namespace, work: Path) -> None:
    async with stack(work, "eas_gateway_bench_contacts", ceiling=True, env={"EAS_POLL_SECONDS": "20"}) as st:
        upstream, endpoint, metrics_url, cyrus_dir = st.upstream, st.endpoint, st.metrics_url, st.cyrus_dir
        big, small = (st.add_user(f"cbench{uuid.uuid4().hex[:6]}{i}") for i in range(2))

        print(f"{'figure':<52} {'gateway':>12} {'ceiling':>12} {'ratio':>7}")
        async with httpx.AsyncClient(timeout=600) as http:
            # 1. Initial sync of the address book.
            phone = Device(http, endpoint, big, "cbenchbig")
            await phone.provision()  # Cyrus makes the Default address book at the first CardDAV request
            await put_cards(upstream, Credentials(big, big.split("@")[0]), args.cards)
            folders = await phone.provision()
            started = time.perf_counter()
            _, items, _ = await phone.sync_all(folders["9"])
            elapsed = time.perf_counter() - started
            assert items == args.cards, items
            print(f"{f'initial sync, {args.cards:,} cards: items/s':<52} {items / elapsed:>12.0f}")

            # 2. No-change Sync of Inbox + Contacts in one request.
            deliver(cyrus_dir / "socket" / "lmtp", small, 5)
            devices = [Device(http, endpoint, small, f"cbenchsmall{i}") for i in range(10)]
            keys = []
            for d in devices:
                f = await d.provision()
                keys.append(((await d.sync_all(f["2"]))[0], (await d.sync_all(f["9"]))[0]))
            inbox, contacts = f["2"], f["9"]

            async def both(i: int) -> None:
                root = etree.Element(A + "Sync")
                parent = etree.SubElement(root, A + "Collections")
                for cid, key in ((inbox, keys[i][0]), (contacts, keys[i][1])):
                    c = etree.SubElement(parent, A + "Collection")
                    etree.SubElement(c, A + "SyncKey").text = key
                    etree.SubElement(c, A + "CollectionId").text = cid
                tree = wbxml.decode(await devices[i].post("Sync", root))
                assert [k.text for k in tree.iter(A + "SyncKey")] == list(keys[i])

            async def bare(i: int) -> None:
                (await http.post(st.ceiling_url, content=b"x")).raise_for_status()

            for workers in (1, 10):
                before = upstream_calls((await http.get(metrics_url)).text)
                ours = await load(both, workers, args.seconds)
                calls = upstream_calls((await http.get(metrics_url)).text) - before
                base = await load(bare, workers, args.seconds)
                print(f"{f'no-change Sync Inbox+Contacts, {workers} devices: req/s':<52} {ours[0]:>12.0f} "
                      f"{base[0]:>12.0f} {ours[0] / base[0]:>7.2f}")
                print(f"{'  p50 / p99 ms':<52} {ours[1]:>5.1f} /{ours[2]:>5.1f} {base[1]:>5.1f} /{base[2]:>5.1f}")
                print(f"{'  upstream requests per Sync':<52} {calls / (ours[0] * args.seconds):>12.2f}")

        # 3. The DAV watcher's poll: what one round costs for --users users.
        sample = 100
        users = [st.add_user(f"cpoll{uuid.uuid4().hex[:6]}{i}").split("@")[0] for i in range(sample)]
        dav = DavUpstream(upstream)
        sources = Sources(JMAPUpstream(upstream), dav, kinds=("mail", CONTACTS))
        calls = 0

        def count(op: str, seconds: float, failed: bool) -> None:
            nonlocal calls
            calls += 1
        dav.observe = count
        creds = [Credentials(f"{n}@example.com", n) for n in users]
        sem = asyncio.Semaphore(PARALLEL)  # Cyrus' httpd forks per connection: keep it to a few at a time

        async def poll(c: Credentials) -> None:
            async with sem:
                await sources.collections(c)
        await asyncio.gather(*(poll(c) for c in creds))  # discovery, cached as in the gateway
        calls = 0
        cpu, wall = time.process_time(), time.perf_counter()
        await asyncio.gather(*(poll(c) for c in creds))
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        scale = args.users / sample
        print(f"{f'DAV poll round, {args.users:,} users: upstream requests':<52} {calls * scale:>12.0f}")
        print(f"{'  per second at EAS_DAV_POLL_SECONDS=20':<52} {calls * scale / 20:>12.1f}")
        print(f"{f'  gateway CPU s per round / wall s ({PARALLEL} parallel)':<52} {cpu * scale:>12.2f} "
              f"{wall * scale:>12.2f}")
        await sources.aclose()


if __name__ == "__main__":
    arguments = harness.parser(__doc__)
    arguments.add_argument("--cards", default=2000, type=int)
    arguments.add_argument("--users", default=1000, type=int)
    arguments.add_argument("--seconds", default=5.0, type=float)
    harness.main(main, arguments, "eas-bench-contacts-")
