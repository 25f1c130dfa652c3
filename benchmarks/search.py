"""Search and the directory, against the upstream's own answer measured in the same run.

    .venv/bin/python benchmarks/search.py [--messages 10000] [--cards 5000] [--repeat 20]

Starts a private Cyrus (scripts/cyrus-upstream.sh, with Xapian), a fresh database on
the machine's PostgreSQL (EAS_BENCH_DATABASE) and the gateway (`eas-gateway serve`).
Reports, as the median of --repeat runs each:

1. Search of the mailbox, FreeText matching every one of --messages messages: the
   first page (Range 0-49) and the page at Range 100-149, against the same JMAP
   Email/query + Email/get sent straight to Cyrus (the ceiling);
2. Search of the GAL over a --cards-entry address book, a query matching ~1 % of it,
   against the same CardDAV addressbook-query sent straight to Cyrus.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
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
from contacts_sync import put_cards  # noqa: E402
from gateway_sync import Device, deliver  # noqa: E402
from harness import stack  # noqa: E402

import wbxml  # noqa: E402
from usm.upstream import BodyRequest, Credentials, MailQuery  # noqa: E402
from usm.upstream.dav import DavUpstream  # noqa: E402
from usm.upstream.dav_store import CONTACTS  # noqa: E402
from usm.upstream.jmap import JMAPUpstream  # noqa: E402

S, A, B = "{Search:}", "{AirSync:}", "{AirSyncBase:}"


def search_request(store: str, query: str | None, range_: str, folder: str | None = None) -> etree._Element:
    root = etree.Element(S + "Search")
    element = etree.SubElement(root, S + "Store")
    etree.SubElement(element, S + "Name").text = store
    if store == "GAL":
        etree.SubElement(element, S + "Query").text = query
    else:
        conditions = etree.SubElement(etree.SubElement(element, S + "Query"), S + "And")
        etree.SubElement(conditions, A + "CollectionId").text = folder
        etree.SubElement(conditions, S + "FreeText").text = query
    options = etree.SubElement(element, S + "Options")
    etree.SubElement(options, S + "Range").text = range_
    if store != "GAL":
        preference = etree.SubElement(options, B + "BodyPreference")
        etree.SubElement(preference, B + "Type").text = "1"
        etree.SubElement(preference, B + "TruncationSize").text = "200"
    return root


async def median_ms(repeat: int, run) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        await run()
        times.append((time.perf_counter() - started) * 1e3)
    return statistics.median(times)


async def main(args: argparse.Namespace, work: Path) -> None:
    async with stack(work, "eas_gateway_bench_search") as st:
        upstream, endpoint, cyrus_dir = st.upstream, st.endpoint, st.cyrus_dir
        user = st.add_user(f"sbench{uuid.uuid4().hex[:6]}")
        creds = Credentials(user, user.split("@")[0])
        started = time.perf_counter()
        deliver(cyrus_dir / "socket" / "lmtp", user, args.messages)
        print(f"(delivered {args.messages:,} messages in {time.perf_counter() - started:.0f} s)")
        jmap = JMAPUpstream(upstream)
        deadline = time.monotonic() + 600
        while (await jmap.search(creds, MailQuery(text="ipsum", limit=1)))[1] < args.messages:
            assert time.monotonic() < deadline, "the index never caught up"
            await asyncio.sleep(1)
        print(f"(indexed in {time.perf_counter() - started:.0f} s)")

        print(f"{'figure':<56} {'gateway':>10} {'upstream':>10} {'ratio':>7}")
        async with httpx.AsyncClient(timeout=600) as http:
            phone = Device(http, endpoint, user, "sbench")
            folders = await phone.provision()
            inbox = folders["2"]
            inbox_upstream = next(f.id for f in await jmap.folders(creds) if f.role == "inbox")
            for range_, position in (("0-49", 0), ("100-149", 100)):
                async def ours() -> None:
                    tree = wbxml.decode(await phone.post("Search", search_request("Mailbox", "ipsum", range_, inbox)))
                    assert tree.findtext(f".//{S}Total") == str(args.messages), etree.tostring(tree)[:300]

                async def theirs() -> None:
                    ids, _ = await jmap.search(creds, MailQuery(text="ipsum", folder_ids=[inbox_upstream],
                                                                position=position, limit=50))
                    await jmap.messages(creds, ids, BodyRequest(text=True, max_bytes=201))
                gateway_ms, upstream_ms = await median_ms(args.repeat, ours), await median_ms(args.repeat, theirs)
                print(f"{f'Search Mailbox, {args.messages:,} matches, Range {range_}: ms':<56} {gateway_ms:>10.1f} "
                      f"{upstream_ms:>10.1f} {upstream_ms / gateway_ms:>7.2f}")

            # The directory: --cards cards in the user's address book, a query matching ~1 %.
            await put_cards(upstream, creds, args.cards)
            dav = DavUpstream(upstream)
            book = sorted(c.path for c in await dav.collections(creds) if c.kind == CONTACTS)[0]
            query = "Person 12"  # Person 12, 120-129, 1200-1299: 111 of 5,000

            async def gal() -> None:
                tree = wbxml.decode(await phone.post("Search", search_request("GAL", query, "0-49")))
                assert tree.findtext(f".//{S}Store/{S}Status") == "1"

            async def raw() -> None:
                await dav.query_cards(creds, book, query)
            total = wbxml.decode(await phone.post("Search", search_request("GAL", query, "0-49"))).findtext(
                f".//{S}Total")
            gateway_ms, upstream_ms = await median_ms(args.repeat, gal), await median_ms(args.repeat, raw)
            print(f"{f'Search GAL, {args.cards:,} entries, {total} matches: ms':<56} {gateway_ms:>10.1f} "
                  f"{upstream_ms:>10.1f} {upstream_ms / gateway_ms:>7.2f}")
            await dav.aclose()
        await jmap.aclose()


if __name__ == "__main__":
    arguments = harness.parser(__doc__)
    arguments.add_argument("--messages", type=int, default=10000)
    arguments.add_argument("--cards", type=int, default=5000)
    arguments.add_argument("--repeat", type=int, default=20)
    harness.main(main, arguments, "eas-bench-search-")
