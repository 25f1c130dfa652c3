"""Push latency: how long after a delivery a held Ping answers, per wake-up path.

    .venv/bin/python benchmarks/push_latency.py [--trials 20] [--poll-seconds 20] [--fanout 500]

Starts a private Cyrus (Debian's 3.6: its JMAP has no push), a fresh database on the
machine's PostgreSQL (EAS_BENCH_DATABASE) and the gateway, three times: polling the JMAP
state every --poll-seconds only (the baseline: what a server without push gets); with
EAS_IMAP_IDLE on Cyrus' IMAP service; with Cyrus' own change events POSTed to the
gateway's /push/upstream-events (notifyd's external notifier, scripts/cyrus-upstream.sh).
For each, --trials deliveries at a random moment of a held Ping (LMTP, as an MTA delivers)
and the time from the delivery to the Ping's answer: p50, p99, max, and each path's
ratio to polling. With --fanout N, on the upstream-events path: N users each holding a Ping,
one message delivered to all of them in one LMTP transaction (a mailing list), and the time
to the first and to the last Ping's answer; before it, the CPU the gateway and Cyrus spend on
the held Pings while nothing happens (--hold-seconds), per 1,000 Pings per minute; after it,
what the woken phones do next, all at once: a Sync each (first and last answer, and how many
were told 503 to come back later).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import socket
import sys
import time
from email.message import EmailMessage
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import harness  # noqa: E402
from gateway_sync import Device, deliver, percentile, ping_request  # noqa: E402
from harness import stack  # noqa: E402

import wbxml  # noqa: E402

P = "{Ping:}"
PHONES_PER_CLIENT = 100
PATHS = ("polling", "IMAP IDLE", "upstream events")


async def trials(endpoint: str, cyrus_dir: Path, user: str, count: int, seed: int) -> list[float]:
    """Seconds from each delivery to the held Ping's answer."""
    chance = random.Random(seed)
    lmtp = cyrus_dir / "socket" / "lmtp"
    out: list[float] = []
    async with httpx.AsyncClient(timeout=300) as http:
        phone = Device(http, endpoint, user, f"push{seed}")
        inbox = (await phone.provision())["2"]
        key, _, _ = await phone.sync_all(inbox)
        for _ in range(count):
            ping = asyncio.create_task(phone.post("Ping", ping_request(inbox, 300)))
            await asyncio.sleep(1.0 + chance.uniform(0, 5))  # a random phase of the poll
            assert not ping.done(), "the Ping answered before the delivery"
            delivered = time.monotonic()
            await asyncio.to_thread(deliver, lmtp, user, 1)
            status = wbxml.decode(await ping).findtext(P + "Status")
            out.append(time.monotonic() - delivered)
            assert status == "2", f"Ping answered Status {status}"
            while True:  # take the new mail, so that the next Ping waits again
                tree = await phone.sync(inbox, key)
                key = tree.findtext(".//{AirSync:}SyncKey") or key
                if tree.find(".//{AirSync:}MoreAvailable") is None:
                    break
    return out


def lmtp_to_all(path: Path, sender: str, recipients: list[str], data: bytes) -> None:
    """One LMTP transaction to every recipient (RFC 2033: one reply per recipient after the
    data, which smtplib's LMTP does not read)."""
    with socket.socket(socket.AF_UNIX) as conn:
        conn.connect(str(path))
        replies = conn.makefile("rb")

        def expect(code: bytes) -> None:
            while True:
                line = replies.readline()
                if not line.startswith(code):
                    raise RuntimeError(f"LMTP: {line!r}")
                if line[3:4] != b"-":
                    return
        expect(b"220")
        for command in [b"LHLO bench", f"MAIL FROM:<{sender}>".encode(),
                        *(f"RCPT TO:<{r}>".encode() for r in recipients)]:
            conn.sendall(command + b"\r\n")
            expect(b"250")
        conn.sendall(b"DATA\r\n")
        expect(b"354")
        body = data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n").replace(b"\r\n.", b"\r\n..")
        conn.sendall(body + (b"" if body.endswith(b"\r\n") else b"\r\n") + b".\r\n")
        for _ in recipients:
            expect(b"250")
        conn.sendall(b"QUIT\r\n")


def upstream_calls(metrics: str) -> dict[str, tuple[float, float]]:
    """The gateway's upstream calls so far, by operation: (calls, seconds in them)."""
    out: dict[str, list[float]] = {}
    for line in metrics.splitlines():
        for name, slot in (("eas_upstream_calls_total{", 0), ("eas_upstream_call_duration_seconds_sum{", 1)):
            if line.startswith(name):
                operation = line.split('operation="', 1)[1].split('"', 1)[0]
                out.setdefault(operation, [0.0, 0.0])[slot] += float(line.rsplit(" ", 1)[1])
    return {k: (v[0], v[1]) for k, v in out.items()}


def cpu_seconds_of(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(x) for x in fields[11:13]) / os.sysconf("SC_CLK_TCK")


def cpu_seconds(match: str) -> float:
    """CPU time (user + system, with reaped children) of the processes whose command line holds
    ``match``."""
    total = 0
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if match.encode() not in (proc / "cmdline").read_bytes():
                continue
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += sum(int(x) for x in fields[11:15])  # utime stime cutime cstime
    return total / os.sysconf("SC_CLK_TCK")


async def fanout(endpoint: str, cyrus_dir: Path, cyrus_url: str, users: list[str], gateway_pid: int,
                 hold_seconds: float) -> tuple[float, float]:
    """Seconds from one delivery to all ``users`` until the first and the last held Ping answers;
    prints the upstream calls the gateway made meanwhile, per woken Ping."""
    metrics = endpoint.removesuffix("/Microsoft-Server-ActiveSync") + "/metrics"
    async with contextlib.AsyncExitStack() as stack:
        # One client per PHONES_PER_CLIENT phones: httpx's pool looks at every connection it
        # holds when one is released, so one pool of 5,000 held connections made this client,
        # not the gateway, take minutes to read the Pings' answers.
        http = await stack.enter_async_context(httpx.AsyncClient(timeout=600))
        shards = [await stack.enter_async_context(httpx.AsyncClient(timeout=600, limits=httpx.Limits(
            max_connections=PHONES_PER_CLIENT + 5, max_keepalive_connections=PHONES_PER_CLIENT + 5)))
            for _ in range(0, len(users), PHONES_PER_CLIENT)]
        lanes = asyncio.Semaphore(20)

        async def ready(i: int, user: str) -> tuple[Device, str, str]:
            async with lanes:
                phone = Device(shards[i // PHONES_PER_CLIENT], endpoint, user, f"fan{i}")
                inbox = (await phone.provision())["2"]
                key, _, _ = await phone.sync_all(inbox)
                return phone, inbox, key
        phones = await asyncio.gather(*(ready(i, u) for i, u in enumerate(users)))
        # One message and one calendar change (a CalDAV PUT): the gateway has seen the upstream's
        # events of both stores, as on a server in use, and polls only as a safety net.
        event = ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//bench//EN\r\nBEGIN:VEVENT\r\nUID:fanout\r\n"
                 "DTSTAMP:20260101T000000Z\r\nDTSTART:20270105T100000Z\r\nDURATION:PT1H\r\nSUMMARY:x\r\n"
                 "END:VEVENT\r\nEND:VCALENDAR\r\n")
        user = users[0]
        (await http.put(f"{cyrus_url}/dav/calendars/user/{user}/Default/fanout.ics", content=event,
                        auth=(user, user.split("@")[0]), headers={"Content-Type": "text/calendar"})).raise_for_status()
        await asyncio.to_thread(deliver, cyrus_dir / "socket" / "lmtp", user, 1)
        phones[0] = (phones[0][0], phones[0][1], (await phones[0][0].sync_all(phones[0][1]))[0])
        answered: dict[str, float] = {}

        async def hold(phone: Device, inbox: str) -> str:
            status = wbxml.decode(await phone.post("Ping", ping_request(inbox, 600))).findtext(P + "Status") or ""
            answered[phone.user] = time.monotonic()
            return status
        pings = [asyncio.create_task(hold(p, f)) for p, f, _ in phones]
        # Every Ping held, and the upstream reads of their start (and of their watchers' first
        # rounds) over: the calls counted below are the fan-out's own.
        last: dict[str, tuple[float, float]] = {}
        for _ in range(600):
            await asyncio.sleep(1.0)
            text = (await http.get(metrics)).text
            held = next(float(line.split()[1]) for line in text.splitlines() if line.startswith("eas_held_requests "))
            calls, last = last, upstream_calls(text)
            if held >= len(users) and {k: v[0] for k, v in calls.items()} == {k: v[0] for k, v in last.items()}:
                break
        assert not answered, "a Ping answered before the delivery"
        # What the held Pings cost while nothing happens: CPU of the gateway and of Cyrus.
        gateway_cpu, upstream_cpu = cpu_seconds_of(gateway_pid), cpu_seconds(str(cyrus_dir))
        await asyncio.sleep(hold_seconds)
        per = 1000 / len(users) * 60 / hold_seconds
        print(f"  CPU per 1,000 held Pings per minute, nothing delivered: gateway "
              f"{(cpu_seconds_of(gateway_pid) - gateway_cpu) * per:.2f} s, "
              f"upstream {(cpu_seconds(str(cyrus_dir)) - upstream_cpu) * per:.2f} s")
        assert not answered, "a Ping answered before the delivery"

        def deliver_all() -> None:
            message = EmailMessage()
            message["From"], message["To"], message["Subject"] = "list@example.org", "list@example.com", "to all"
            message.set_content("one message, many recipients\n")
            lmtp_to_all(cyrus_dir / "socket" / "lmtp", "list@example.org", users, message.as_bytes())
        before = upstream_calls((await http.get(metrics)).text)
        delivered = time.monotonic()
        await asyncio.to_thread(deliver_all)
        taken = time.monotonic()
        print(f"  Cyrus took {taken - delivered:.2f} s to take the delivery to {len(users)} mailboxes")
        statuses = await asyncio.gather(*pings)
        assert set(statuses) == {"2"}, statuses
        # Cyrus delivers to one mailbox after another, and its LMTP replies come at the end: the
        # gateway's own part is how long after them the last Ping answers.
        print(f"  the last Ping answered {max(answered.values()) - taken:.3f} s after Cyrus took the delivery")
        after = upstream_calls((await http.get(metrics)).text)
        print("upstream calls per woken Ping, during the fan-out (calls, mean ms):")
        print_calls(before, after, len(users))
        first_last = min(answered.values()) - delivered, max(answered.values()) - delivered
        await woken_syncs(phones, http, metrics, gateway_pid, cyrus_dir)
        return first_last


def print_calls(before: dict[str, tuple[float, float]], after: dict[str, tuple[float, float]], per: int) -> None:
    for operation, (calls, seconds) in sorted(after.items()):
        calls -= before.get(operation, (0.0, 0.0))[0]
        seconds -= before.get(operation, (0.0, 0.0))[1]
        if calls:
            print(f"  {operation:<40} {calls / per:>6.2f} {1000 * seconds / calls:>8.1f}")


async def woken_syncs(phones: list[tuple[Device, str, str]], http: httpx.AsyncClient, metrics: str,
                      gateway_pid: int, cyrus_dir: Path) -> None:
    """What each woken phone does next: a Sync of its Inbox, all at once. The time to the first and
    the last answer, and the phones told to come back later (503 with Retry-After), whose
    Retry-After values are shown: this client does not come back."""
    began = time.monotonic()
    before = upstream_calls((await http.get(metrics)).text)
    gateway_cpu, upstream_cpu = cpu_seconds_of(gateway_pid), cpu_seconds(str(cyrus_dir))
    done: list[float] = []
    later: list[int] = []

    async def one(phone: Device, inbox: str, key: str) -> None:
        try:
            tree = await phone.sync(inbox, key)
        except httpx.HTTPStatusError as exc:
            if exc.response.status_code != 503:
                raise
            later.append(int(exc.response.headers.get("Retry-After", "0")))
            return
        done.append(time.monotonic() - began)
        assert len(list(tree.iter("{AirSync:}Add"))) == 1, "the woken Sync did not bring the message"
    await asyncio.gather(*(one(*p) for p in phones))
    gateway_cpu, upstream_cpu = cpu_seconds_of(gateway_pid) - gateway_cpu, cpu_seconds(str(cyrus_dir)) - upstream_cpu
    after = upstream_calls((await http.get(metrics)).text)
    print(f"  the {len(phones)} woken phones' Syncs, all at once: {len(done)} answered, first / last "
          f"{min(done, default=0):.2f} / {max(done, default=0):.2f} s; {len(later)} answered 503"
          + (f" (Retry-After {min(later)}-{max(later)} s)" if later else ""))
    print(f"  their answers after {percentile(done, 0.5):.2f} s (p50), {percentile(done, 0.9):.2f} (p90); CPU per Sync:"
          f" gateway {1000 * gateway_cpu / len(phones):.1f} ms, upstream {1000 * upstream_cpu / len(phones):.1f} ms")
    print("upstream calls per woken phone's Sync (calls, mean ms):")
    print_calls(before, after, len(phones))


async def run(args: argparse.Namespace, work: Path) -> None:
    results: dict[str, list[float]] = {}
    work.chmod(0o755)  # Cyrus (user cyrus) reaches its directories below it
    secret = "bench-events-secret"
    for name in PATHS:
        if name.split()[0].lower() not in args.paths.split(","):
            continue
        place = work / name.replace(" ", "-")
        place.mkdir()
        # The phones' set-up takes minutes at thousands of users: a sign-in remembered for the
        # default 60 s is gone when their Pings come, all at once, and the sign-in gate turns away
        # what waits over 10 s (2,000 users: 591 answered 503 with Retry-After; this client does
        # not come back as a phone would), so the fan-out's sign-ins are remembered for 2 hours.
        env = {"EAS_POLL_SECONDS": str(args.poll_seconds), "EAS_AUTH_CACHE_SECONDS": "7200"}
        if name == "upstream events":
            env["EAS_UPSTREAM_EVENTS_SECRET"] = secret
        async with stack(place, "eas_bench_push", env=env, idle=name == "IMAP IDLE") as found:
            if name == "upstream events":
                base = found.endpoint.removesuffix("/Microsoft-Server-ActiveSync")
                (found.cyrus_dir / "events-target").write_text(f"{base}/push/upstream-events {secret}\n")
            user = found.add_user("pusher")
            results[name] = await trials(found.endpoint, found.cyrus_dir, user, args.trials, seed=args.seed)
            if name == "upstream events" and args.fanout:
                many = found.add_users([f"fan{i}" for i in range(args.fanout)])
                shared = found.sharing_mailbox_ids()
                if shared:
                    print(f"  {len(shared & set(many))} of {len(many)} users left out: Cyrus gave a mailbox of "
                          "theirs the id of another user's")
                    many = [user for user in many if user not in shared]
                first_last = await fanout(found.endpoint, found.cyrus_dir, found.upstream, many,
                                          found.processes[0].pid, args.hold_seconds)
    print(f"{'delivery -> Ping answer, s':<28} {'p50':>8} {'p99':>8} {'max':>8}   ({args.trials} trials)")
    for name, values in results.items():
        print(f"{name:<28} {percentile(values, 0.5):>8.2f} {percentile(values, 0.99):>8.2f} {max(values):>8.2f}")
    for name in ("IMAP IDLE", "upstream events"):
        if name not in results or "polling" not in results:
            continue
        ratio = percentile(results[name], 0.5) / percentile(results["polling"], 0.5)
        print(f"{name + ' / polling, p50':<28} {ratio:>8.3f}")
    if args.fanout:
        print(f"{f'one delivery to {args.fanout} users, each Ping held: first / last answer s':<60} "
              f"{first_last[0]:>6.2f} / {first_last[1]:>6.2f}")


if __name__ == "__main__":
    parser = harness.parser(__doc__)
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--poll-seconds", type=float, default=20.0)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--paths", default="polling,imap,upstream",
                        help="the wake-up paths to measure, of polling,imap,upstream")
    parser.add_argument("--hold-seconds", type=float, default=60.0,
                        help="with --fanout: how long the Pings are held idle, for their CPU cost")
    parser.add_argument("--fanout", type=int, default=0, help="users woken by one delivery (upstream events)")
    harness.main(run, parser, "eas-bench-push-")
