"""The chaos convergence run (issue 17 item 11).

Three phones — mail, contacts, calendar — and direct writers on the upstream do seeded random
operations while:
- a fault proxy (fault_proxy.py) between the gateway and Cyrus refuses, drops, fails and stalls
  a share of the upstream requests, before and after the upstream did them;
- the phones lose answers and send the same request again (phone.py);
- the gateway process is killed (SIGKILL) and started again;
- its PostgreSQL restarts (pg_ctl restart -m fast).
Then the faults stop, every phone syncs until the gateway has nothing more, and each phone's
replica must equal the upstream's folder: nothing lost, nothing twice.

    .venv/bin/python -m tests.chaos.run --operations 10000 --seed 1

starts its own Cyrus (scripts/cyrus-upstream.sh) and embedded PostgreSQL; tests/test_chaos.py
runs a short seeded run in the suite.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import signal
import smtplib
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import warnings
from collections import Counter
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
from lxml import etree

from tests.chaos.fault_proxy import FaultProxy
from tests.chaos.phone import ChaosPhone
from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
KINDS = ("mail", "contacts", "calendar")


@dataclass
class Report:
    seed: int
    operations: int
    phone_ops: Counter[str] = field(default_factory=Counter)
    upstream_ops: Counter[str] = field(default_factory=Counter)
    phone_stats: Counter[str] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)
    relayed: int = 0
    gateway_kills: int = 0
    database_restarts: int = 0
    seconds: float = 0.0
    # kind -> (what only the phone has, what only the upstream has): both empty when converged
    differences: dict[str, tuple[dict[str, int], dict[str, int]]] = field(default_factory=dict)
    items: dict[str, int] = field(default_factory=dict)

    @property
    def converged(self) -> bool:
        return all(not a and not b for a, b in self.differences.values())

    def summary(self) -> str:
        return json.dumps({
            "seed": self.seed, "operations": self.operations, "seconds": round(self.seconds, 1),
            "converged": self.converged, "items": self.items, "phone_ops": dict(self.phone_ops),
            "upstream_ops": dict(self.upstream_ops), "faults_injected": dict(self.faults),
            "upstream_requests_relayed": self.relayed, "gateway_kills": self.gateway_kills,
            "database_restarts": self.database_restarts, "phones_saw": dict(self.phone_stats),
            "differences": {k: {"phone_only": a, "upstream_only": b} for k, (a, b) in self.differences.items()},
        }, indent=1, sort_keys=True)


# -- the upstream, written and read directly (not through the gateway) ------------------------------------------------

class Upstream:
    def __init__(self, url: str, cyrus_dir: Path, user: str, secret: str, rng: random.Random) -> None:
        self.url, self.cyrus_dir, self.user, self.rng = url, cyrus_dir, user, rng
        self.http = httpx.Client(auth=(user, secret), timeout=60, follow_redirects=True)
        session = self.http.get(url + "/.well-known/jmap").json()
        self.account = session["primaryAccounts"]["urn:ietf:params:jmap:mail"]
        self.api = str(httpx.URL(url).join(session["apiUrl"]))
        self.inbox = self.jmap([["Mailbox/query", {"filter": {"role": "inbox"}}, "q"]])[0][1]["ids"][0]
        self.books = f"{url}/dav/addressbooks/user/{user}/Default/"
        self.calendars = f"{url}/dav/calendars/user/{user}/Default/"
        self.made = 0

    def close(self) -> None:
        self.http.close()

    def jmap(self, calls: list[list[Any]]) -> list[list[Any]]:
        for call in calls:
            call[1].setdefault("accountId", self.account)
        response = self.http.post(self.api, json={
            "using": ["urn:ietf:params:jmap:core", "urn:ietf:params:jmap:mail"], "methodCalls": calls})
        response.raise_for_status()
        return list(response.json()["methodResponses"])

    def act(self, kind: str, run: int) -> str:
        what = self.rng.choice(["add", "add", "change", "delete"] + (["add"] if kind == "mail" else []))
        if kind == "mail":
            ids = self.mail_ids()
            if what == "add" or not ids:
                self.deliver(f"up-{run}")
                return "add"
            target = self.rng.choice(ids)
            if what == "change":
                seen = self.jmap([["Email/get", {"ids": [target], "properties": ["keywords"]}, "g"]])[0][1]["list"]
                read = bool(seen and seen[0]["keywords"].get("$seen"))
                self.jmap([["Email/set", {"update": {target: {"keywords/$seen": None if read else True}}}, "s"]])
            else:
                self.jmap([["Email/set", {"destroy": [target]}, "d"]])
            return what
        base = self.books if kind == "contacts" else self.calendars
        hrefs = self.hrefs(base)
        if what == "add" or not hrefs:
            uid = uuid.uuid4().hex
            self.put(base + uid + (".vcf" if kind == "contacts" else ".ics"), kind, uid, f"up-{run}", "new")
            return "add"
        href = self.rng.choice(hrefs)
        if what == "change":
            got = self.http.get(self.url + href)
            if got.status_code == 200:
                values = _values(kind, got.text)
                uid = _line(got.text, "UID") or uuid.uuid4().hex
                self.put(self.url + href, kind, uid, values[0], f"up-{run}", etag=got.headers.get("etag"),
                         last=values[1] if kind == "contacts" else "")
        else:
            self.http.delete(self.url + href)
        return what

    def deliver(self, subject: str) -> None:
        message = EmailMessage()
        message["From"], message["To"], message["Subject"] = "chaos@example.org", self.user, subject
        message["Message-ID"] = f"<{uuid.uuid4().hex}@chaos>"
        message.set_content("chaos\n")
        with smtplib.LMTP(str(self.cyrus_dir / "socket" / "lmtp")) as lmtp:
            lmtp.send_message(message, "chaos@example.org", [self.user])

    def put(self, url: str, kind: str, uid: str, name: str, detail: str, *, etag: str | None = None,
            last: str = "Upstream") -> None:
        if kind == "contacts":
            text = (f"BEGIN:VCARD\r\nVERSION:3.0\r\nUID:{uid}\r\nN:{last};{name};;;\r\nFN:{name} {last}\r\n"
                    f"TITLE:{detail}\r\nEND:VCARD\r\n")
            kind_header = "text/vcard"
        else:
            start = time.strftime("%Y%m%dT%H0000Z", time.gmtime(time.time() + 86400 * self.rng.randrange(1, 60)))
            text = (f"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//chaos//EN\r\nBEGIN:VEVENT\r\nUID:{uid}\r\n"
                    f"DTSTAMP:20260101T000000Z\r\nDTSTART:{start}\r\nDURATION:PT1H\r\nSUMMARY:{name}\r\n"
                    f"LOCATION:{detail}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n")
            kind_header = "text/calendar"
        headers = {"Content-Type": f"{kind_header}; charset=utf-8"}
        if etag:
            headers["If-Match"] = etag
        self.http.put(url, content=text.encode(), headers=headers)  # 412: the gateway wrote it meanwhile

    def hrefs(self, base: str) -> list[str]:
        found = self.http.request("PROPFIND", base, headers={"Depth": "1", "Content-Type": "application/xml"},
                                  content=b'<?xml version="1.0"?><propfind xmlns="DAV:"><prop><getetag/></prop>'
                                          b"</propfind>")
        found.raise_for_status()
        return sorted(h.text for h in etree.fromstring(found.content).iter("{DAV:}href")
                      if h.text and not h.text.endswith("/"))

    def mail_ids(self) -> list[str]:
        answer = self.jmap([["Email/query", {"filter": {"inMailbox": self.inbox}, "limit": 5000}, "q"]])
        return list(answer[0][1]["ids"])

    def values(self, kind: str) -> Counter[tuple[str, ...]]:
        if kind == "mail":
            ids = self.mail_ids()
            found = self.jmap([["Email/get", {"ids": ids, "properties": ["subject", "keywords"]}, "g"]])[0][1]["list"]
            return Counter((e["subject"], "1" if e["keywords"].get("$seen") else "0") for e in found)
        base = self.books if kind == "contacts" else self.calendars
        out: Counter[tuple[str, ...]] = Counter()
        for href in self.hrefs(base):
            got = self.http.get(self.url + href)
            if got.status_code == 200:
                out[_values(kind, got.text)] += 1
        return out


def _line(text: str, name: str) -> str:
    match = re.search(rf"^{name}(;[^:\r\n]*)?:(.*)$", text.replace("\r\n ", ""), re.MULTILINE)
    return match.group(2).strip() if match else ""


def _values(kind: str, text: str) -> tuple[str, ...]:
    if kind == "contacts":
        last, first = (_line(text, "N").split(";") + ["", ""])[:2]
        return first, last, _line(text, "TITLE")
    return _line(text, "SUMMARY"), _line(text, "LOCATION")


# -- the gateway and its database --------------------------------------------------------------------------------------

class Gateway:
    """``eas-gateway serve`` as its own process, killed with SIGKILL and started again."""

    def __init__(self, port: int, env: dict[str, str], log: Path) -> None:
        self.port, self.env, self.log = port, env, log
        self.process: subprocess.Popen[bytes] | None = None
        self.url = f"http://127.0.0.1:{port}"

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen([str(BIN / "eas-gateway"), "serve"], env=self.env, stdout=out,
                                            stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the gateway exited with {self.process.returncode}: see {self.log}")
            try:
                if httpx.get(self.url + "/healthz", timeout=2).status_code in (200, 503):
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"the gateway did not start: see {self.log}")

    def kill(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()


class Database:
    """An embedded PostgreSQL of the run's own (pgserver), restarted at will."""

    def __init__(self, directory: Path) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import pgserver
            self.server = pgserver.get_server(directory / "pgdata", cleanup_mode="stop")  # type: ignore[attr-defined]
        self.url = str(self.server.get_uri())

    def restart(self) -> None:
        from pgserver._commands import pg_ctl  # type: ignore[import-untyped]
        pg_ctl(["-w", "-m", "fast", "restart"], pgdata=self.server.pgdata, user=self.server.system_user, timeout=60)

    def close(self) -> None:
        self.server.cleanup()


def _add_user(cyrus_dir: Path, cyrus_url: str) -> str:
    name = "chaos" + uuid.uuid4().hex[:8]
    port = cyrus_url.rsplit(":", 1)[1]
    subprocess.run(["bash", str(ROOT / "scripts" / "cyrus-upstream.sh"), "adduser", str(cyrus_dir), port, name],
                   check=True, timeout=60, capture_output=True)
    return f"{name}@example.com"


failures: list[BaseException] = []


def _soon(delay: float, *steps: Any) -> threading.Thread:
    """Run ``steps`` one after the other in a thread, ``delay`` seconds from now."""
    def run() -> None:
        try:
            time.sleep(delay)
            for step in steps:
                step()
        except BaseException as exc:  # handed to the run's thread
            failures.append(exc)
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


# -- the run -----------------------------------------------------------------------------------------------------------

def converge(cyrus_url: str, cyrus_dir: Path, *, seed: int, operations: int, fault_rate: float = 0.1,
             lose: float = 0.1, kills: int = 3, restarts: int = 2, work: Path | None = None) -> Report:
    started = time.monotonic()
    rng = random.Random(seed)
    report = Report(seed, operations)
    work = work or Path(tempfile.mkdtemp(prefix="eas-chaos-"))
    user = _add_user(cyrus_dir, cyrus_url)
    secret = user.split("@")[0]
    proxy = FaultProxy(cyrus_url, seed=seed, rate=0.0, pause=1.0)
    database = Database(work)
    port = free_port()
    env = {**os.environ, "EAS_UPSTREAM": proxy.url, "EAS_DATABASE_URL": database.url, "EAS_PORT": str(port),
           "EAS_POLL_SECONDS": "1", "EAS_DAV_POLL_SECONDS": "1", "EAS_LOOP_LIMIT": "0", "EAS_LOG_LEVEL": "INFO",
           "EAS_STATE_DIR": str(work / "state")}
    gateway = Gateway(port, env, work / "gateway.log")
    upstream = Upstream(cyrus_url, cyrus_dir, user, secret, random.Random(seed + 1))
    phones = {kind: ChaosPhone(gateway.url, user, secret, kind, random.Random(seed * 10 + i), lose=lose)
              for i, kind in enumerate(KINDS)}
    kill_at = set(rng.sample(range(1, operations), min(kills, operations - 1))) if operations > 1 else set()
    restart_at = set(rng.sample(range(1, operations), min(restarts, operations - 1))) if operations > 1 else set()
    try:
        gateway.start()
        for phone in phones.values():
            phone.start()
        proxy.rate = fault_rate
        for run in range(operations):
            # A kill or a restart lands while this operation's requests are under way.
            trouble = []
            if run in kill_at:
                trouble.append(_soon(rng.uniform(0.0, 0.05), gateway.kill, gateway.start))
                report.gateway_kills += 1
            if run in restart_at:
                trouble.append(_soon(rng.uniform(0.0, 0.05), database.restart))
                report.database_restarts += 1
            kind = rng.choice(KINDS)
            if rng.random() < 0.35:
                report.upstream_ops[f"{kind} {upstream.act(kind, run)}"] += 1
            else:
                report.phone_ops[f"{kind} {phones[kind].act(run)}"] += 1
            for thread in trouble:
                thread.join()
            if any(isinstance(e, BaseException) for e in failures):
                raise failures[0]
        proxy.rate = 0.0
        for phone in phones.values():
            phone.lose = 0.0
        time.sleep(2.5)  # the DAV and mail watchers' next look (1 s polls) sees the last upstream writes
        for kind, phone in phones.items():
            phone.settle()
            mine, theirs = phone.values(), upstream.values(kind)
            report.items[kind] = sum(theirs.values())
            report.differences[kind] = ({repr(k): v for k, v in (mine - theirs).items()},
                                        {repr(k): v for k, v in (theirs - mine).items()})
            report.phone_stats.update({f"{kind}: {k}": v for k, v in phone.stats.items()})
    finally:
        report.faults, report.relayed = proxy.faults, proxy.relayed
        gateway.stop()
        proxy.close()
        upstream.close()
        database.close()
        report.seconds = time.monotonic() - started
    if report.converged:
        shutil.rmtree(work, ignore_errors=True)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--operations", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--fault-rate", type=float, default=0.1)
    parser.add_argument("--lose", type=float, default=0.1, help="share of answers the phones lose and resend")
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--restarts", type=int, default=10)
    args = parser.parse_args()
    state = Path(tempfile.mkdtemp(prefix="eas-chaos-cyrus-"))
    state.chmod(0o755)
    port = free_port(run=3)  # HTTP, IMAP, SMTP relay (scripts/cyrus-upstream.sh)
    script = ROOT / "scripts" / "cyrus-upstream.sh"
    subprocess.run(["bash", str(script), "start", str(state), str(port)], check=True, timeout=900)
    try:
        report = converge(f"http://127.0.0.1:{port}", state, seed=args.seed, operations=args.operations,
                          fault_rate=args.fault_rate, lose=args.lose, kills=args.kills, restarts=args.restarts)
    finally:
        subprocess.run(["bash", str(script), "stop", str(state)], check=False, timeout=60)
        shutil.rmtree(state, ignore_errors=True)
    print(report.summary())
    sys.exit(0 if report.converged else 1)


if __name__ == "__main__":
    main()
