"""Two gateway processes' worth of service (each its own pool, push hub and
upstream client), one PostgreSQL, Apache balancing between them by request
without sticky sessions (deploy/apache/eas-gateway-balancer.conf as shipped)."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from pyactivesync.models import EmailChange, FolderType, PingResult

from tests.conftest import RunningGateway, running_gateway
from tests.deploy.apache import RunningApache, apache
from tests.deploy.test_apache import https_client
from tests.gateway.helpers import deliver, emails, message, new_device_id, new_user, pyactivesync_client


@pytest.fixture
def nodes(gateway: RunningGateway, tmp_path: Path) -> Iterator[tuple[RunningGateway, RunningGateway, RunningApache]]:
    # Each node looks at the upstream itself only every 10 minutes: a prompt
    # wake-up on one node for a change made through the other can only come
    # through PostgreSQL (LISTEN/NOTIFY).
    common = dict(trusted_proxies="127.0.0.1", poll_seconds=600.0)
    with running_gateway(gateway.upstream, gateway.database_url, **common) as a, \
            running_gateway(gateway.upstream, gateway.database_url, **common) as b, \
            apache(tmp_path / "apache", [a.url, b.url]) as front:
        yield a, b, front


def served(node: RunningGateway) -> float:
    text = httpx.get(node.url + "/metrics").text
    return sum(float(v) for v in re.findall(r"^eas_requests_total\{[^}]*\} (\S+)$", text, re.M))


def test_a_device_whose_requests_alternate_between_nodes_syncs_correctly(
        nodes: tuple[RunningGateway, RunningGateway, RunningApache]) -> None:
    a, b, front = nodes
    user = new_user(a)
    deliver(a, user, [message(f"balanced {n}", text="x") for n in range(8)])
    before = served(a), served(b)
    with https_client(front, user) as client:
        inbox = next(f for f in client.list_folders() if f.type == FolderType.INBOX)
        key = client.sync_folder(inbox.id, "0").sync_key
        items: dict[str, str] = {}
        for _ in range(10):  # windows of 3: several requests, alternating nodes
            result = client.sync_folder(inbox.id, key, window_size=3)
            key = result.sync_key
            for item in result.added:
                assert item.server_id not in items, "an item came twice"
                items[item.server_id] = item.fields["Email.Subject"]
            if not result.more_available:
                break
        assert sorted(items.values()) == sorted(f"balanced {n}" for n in range(8))
        by_subject = {s: sid for sid, s in items.items()}
        key = client.apply_email_changes(inbox.id, key, [EmailChange(by_subject["balanced 2"], read=True)]).sync_key
        deliver(a, user, [message("balanced late", text="y")])
        result = client.sync_folder(inbox.id, key)
        assert [i.fields["Email.Subject"] for i in result.added] == ["balanced late"]
        assert not result.changed, "the phone's own change came back"
    assert "$seen" in emails(a, user)["balanced 2"]["keywords"]
    # Both nodes took part.
    assert served(a) - before[0] >= 3 and served(b) - before[1] >= 3


def test_a_ping_held_on_one_node_is_woken_by_a_change_made_through_the_other(
        nodes: tuple[RunningGateway, RunningGateway, RunningApache]) -> None:
    a, b, _ = nodes
    user = new_user(a)
    deliver(a, user, [message("to be read", text="x")])
    with pyactivesync_client(a, new_device_id(), user=user) as pinger, \
            pyactivesync_client(b, new_device_id(), user=user) as writer:
        inbox = next(f for f in pinger.list_folders() if f.type == FolderType.INBOX)
        pinger.sync_folder(inbox.id, pinger.sync_folder(inbox.id, "0").sync_key)
        key = writer.sync_folder(inbox.id, "0").sync_key
        result = writer.sync_folder(inbox.id, key)
        answers: list[PingResult] = []
        pinging = threading.Thread(target=lambda: answers.append(pinger.ping([inbox.id], heartbeat=300,
                                                                              timeout=120)))
        pinging.start()
        time.sleep(1.5)  # the Ping is held on node A
        assert not answers
        started = time.monotonic()
        writer.apply_email_changes(inbox.id, result.sync_key, [EmailChange(result.added[0].server_id, read=True)])
        pinging.join(timeout=60)
        assert answers and answers[0].status == "2" and answers[0].changed_folder_ids == [inbox.id]
        assert time.monotonic() - started < 10, "woken by a poll, not by node B's NOTIFY"
