"""Calendars over CalDAV, against baselines measured in the same run.

    .venv/bin/python benchmarks/calendar_sync.py [--events 5000] [--series 500] [--seconds 5]

Starts a private Cyrus (scripts/cyrus-upstream.sh), a fresh database on the machine's
PostgreSQL (EAS_BENCH_DATABASE), the gateway (`eas-gateway serve`) and the bare
Starlette+asyncpg endpoint of benchmarks/gateway_sync.py. Reports:

1. initial sync of a calendar of --events events, --series of them recurring (weekly,
   each with a deleted and a moved occurrence, in America/New_York), WindowSize 100:
   items/s, against reading the same objects straight from Cyrus with the gateway's
   own CalDAV driver (listing + multiget in chunks of 100: the upstream's ceiling);
2. a no-change Sync of a device with Inbox + Contacts + Calendar in one request, at 1
   and 10 devices: requests/s against the bare endpoint's, and the upstream requests
   each costs (the gateway's /metrics).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from lxml import etree

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import harness  # noqa: E402
from contacts_sync import put_cards, upstream_calls  # noqa: E402
from gateway_sync import A, Device, deliver, load  # noqa: E402
from harness import stack  # noqa: E402

import wbxml  # noqa: E402
from usm.upstream import Credentials  # noqa: E402
from usm.upstream.dav import DavUpstream  # noqa: E402
from usm.upstream.dav_store import CALENDAR  # noqa: E402

F = "%Y%m%dT%H%M%S"


def event(i: int, series: bool, start: datetime) -> str:
    begin = start + timedelta(hours=i % 9, days=i % 60)
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//bench//EN", "BEGIN:VEVENT", f"UID:bench-{i}",
             "DTSTAMP:20260101T000000Z", f"DTSTART;TZID=America/New_York:{begin:{F}}",
             f"DTEND;TZID=America/New_York:{begin + timedelta(minutes=45):{F}}", f"SUMMARY:Event {i}",
             f"LOCATION:Room {i % 40}", f"DESCRIPTION:Agenda for event {i}", "BEGIN:VALARM", "ACTION:DISPLAY",
             "DESCRIPTION:x", "TRIGGER:-PT15M", "END:VALARM"]
    if series:
        lines += ["RRULE:FREQ=WEEKLY;COUNT=30", f"EXDATE;TZID=America/New_York:{begin + timedelta(weeks=1):{F}}"]
    lines.append("END:VEVENT")
    if series:
        moved = begin + timedelta(weeks=2)
        lines += ["BEGIN:VEVENT", f"UID:bench-{i}", "DTSTAMP:20260101T000000Z",
                  f"RECURRENCE-ID;TZID=America/New_York:{moved:{F}}",
                  f"DTSTART;TZID=America/New_York:{moved + timedelta(hours=1):{F}}",
                  f"DTEND;TZID=America/New_York:{moved + timedelta(hours=2):{F}}", f"SUMMARY:Event {i} (moved)",
                  "END:VEVENT"]
    lines.append("END:VCALENDAR")
    return "\r\n".join(lines) + "\r\n"


async def put_events(base: str, creds: Credentials, count: int, series: int) -> str:
    dav = DavUpstream(base)
    try:
        calendar = next(c.path for c in await dav.collections(creds) if c.kind == CALENDAR)
        start = datetime.now(UTC).replace(tzinfo=None, minute=0, second=0, microsecond=0)
        sem = asyncio.Semaphore(8)

        async def one(i: int) -> None:
            async with sem:
                await dav.create(creds, f"{calendar}bench-{i}.ics", event(i, i < series, start), "text/calendar")
        await asyncio.gather(*(one(i) for i in range(count)))
        return calendar
    finally:
        await dav.aclose()


async def read_straight(base: str, creds: Credentials, calendar: str) -> tuple[int, float]:
    """(objects, seconds) reading the calendar as the gateway's driver does, without the gateway."""
    dav = DavUpstream(base)
    try:
        started = time.perf_counter()
        _, etags = await dav.listing(creds, calendar, "VEVENT")
        paths = sorted(etags)
        found = 0
        for start in range(0, len(paths), 100):
            found += len(await dav.multiget(creds, calendar, CALENDAR, paths[start:start + 100]))
        return found, time.perf_counter() - started
    finally:
        await dav.aclose()


async def main(args: argparse.Namespace, work: Path) -> None:
    async with stack(work, "eas_gateway_bench_calendar", ceiling=True, env={"EAS_POLL_SECONDS": "20"}) as st:
        upstream, endpoint, metrics_url, cyrus_dir = st.upstream, st.endpoint, st.metrics_url, st.cyrus_dir
        big, small = (st.add_user(f"kbench{uuid.uuid4().hex[:6]}{i}") for i in range(2))

        print(f"{'figure':<58} {'gateway':>10} {'baseline':>10} {'ratio':>7}")
        async with httpx.AsyncClient(timeout=900) as http:
            # 1. Initial sync of the calendar, against reading it straight from Cyrus.
            phone = Device(http, endpoint, big, "kbenchbig")
            await phone.provision()  # Cyrus makes the Default calendar at the first CalDAV request
            creds = Credentials(big, big.split("@")[0])
            calendar = await put_events(upstream, creds, args.events, args.series)
            folders = await phone.provision()
            started = time.perf_counter()
            _, items, _ = await phone.sync_all(folders["8"])
            elapsed = time.perf_counter() - started
            assert items == args.events, items
            straight, straight_seconds = await read_straight(upstream, creds, calendar)
            assert straight == args.events, straight
            ours, theirs = items / elapsed, straight / straight_seconds
            print(f"{f'initial sync, {args.events:,} events ({args.series} series): items/s':<58} {ours:>10.0f} "
                  f"{theirs:>10.0f} {ours / theirs:>7.2f}")

            # 2. No-change Sync of Inbox + Contacts + Calendar in one request.
            small_creds = Credentials(small, small.split("@")[0])
            deliver(cyrus_dir / "socket" / "lmtp", small, 5)
            first = Device(http, endpoint, small, "kbenchsmall-setup")
            await first.provision()
            await put_cards(upstream, small_creds, 20)
            await put_events(upstream, small_creds, 20, 5)
            devices = [Device(http, endpoint, small, f"kbenchsmall{i}") for i in range(10)]
            keys = []
            for d in devices:
                f = await d.provision()
                keys.append(tuple([(await d.sync_all(f[t]))[0] for t in ("2", "9", "8")]))
            wanted = (f["2"], f["9"], f["8"])

            async def three(i: int) -> None:
                root = etree.Element(A + "Sync")
                parent = etree.SubElement(root, A + "Collections")
                for cid, key in zip(wanted, keys[i], strict=True):
                    c = etree.SubElement(parent, A + "Collection")
                    etree.SubElement(c, A + "SyncKey").text = key
                    etree.SubElement(c, A + "CollectionId").text = cid
                tree = wbxml.decode(await devices[i].post("Sync", root))
                assert [k.text for k in tree.iter(A + "SyncKey")] == list(keys[i])

            async def bare(i: int) -> None:
                (await http.post(st.ceiling_url, content=b"x")).raise_for_status()

            for workers in (1, 10):
                before = upstream_calls((await http.get(metrics_url)).text)
                ours_load = await load(three, workers, args.seconds)
                calls = upstream_calls((await http.get(metrics_url)).text) - before
                base = await load(bare, workers, args.seconds)
                print(f"{f'no-change Sync Inbox+Contacts+Calendar, {workers} devices: req/s':<58} "
                      f"{ours_load[0]:>10.0f} {base[0]:>10.0f} {ours_load[0] / base[0]:>7.2f}")
                print(f"{'  p50 / p99 ms':<58} {ours_load[1]:>4.1f} /{ours_load[2]:>5.1f} "
                      f"{base[1]:>4.1f} /{base[2]:>5.1f}")
                print(f"{'  upstream requests per Sync':<58} {calls / (ours_load[0] * args.seconds):>10.2f}")


if __name__ == "__main__":
    arguments = harness.parser(__doc__)
    arguments.add_argument("--events", type=int, default=5000)
    arguments.add_argument("--series", type=int, default=500)
    arguments.add_argument("--seconds", type=float, default=5.0)
    harness.main(main, arguments, "eas-bench-calendar-")
