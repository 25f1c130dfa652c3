"""Ping: woken by a delivery (pyactivesync), heartbeat bounds and the other
statuses (raw WBXML), one hanging request per device, and wake-ups that
cross gateway processes through PostgreSQL NOTIFY."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from lxml import etree
from pyactivesync import FolderType

import wbxml
from tests.conftest import RunningGateway, running_gateway
from tests.gateway.helpers import Phone, collection, deliver, message, new_device_id, new_user, pyactivesync_client
from tests.gateway.test_calendar import SINGLE, default_calendar, put
from tests.gateway.test_observability import metric
from usm.upstream.jmap import JMAPUpstream

pytestmark = [pytest.mark.postgres, pytest.mark.upstream]
P = "{Ping:}"


def _ping(phone: Phone, interval: str | None, *folders: str) -> etree._Element:
    root = etree.Element(P + "Ping")
    if interval is not None:
        etree.SubElement(root, P + "HeartbeatInterval").text = interval
    if folders:
        parent = etree.SubElement(root, P + "Folders")
        for folder_id in folders:
            f = etree.SubElement(parent, P + "Folder")
            etree.SubElement(f, P + "Id").text = folder_id
            etree.SubElement(f, P + "Class").text = "Email"
    return wbxml.decode(phone.post("Ping", root).content)


def test_ping_is_woken_by_a_delivery(gateway: RunningGateway) -> None:
    user = new_user(gateway)
    with pyactivesync_client(gateway, new_device_id(), user=user) as client:
        inbox = next(f for f in client.list_folders() if f.type == FolderType.INBOX)
        key = client.sync_folder(inbox.id, "0").sync_key
        client.sync_folder(inbox.id, key)
        threading.Timer(1.5, deliver, args=(gateway, user, [message("wake up", text="!")])).start()
        started = time.monotonic()
        result = client.ping(inbox.id, heartbeat=120, timeout=150)
        assert result.status == "2" and result.changed_folder_ids == [inbox.id]
        assert 1.0 < time.monotonic() - started < 20


def test_bounds_and_statuses(gateway: RunningGateway) -> None:
    phone = Phone(gateway, new_user(gateway))
    assert phone.sync(collection(phone.inbox, "0")) is not None
    missing = _ping(phone, None)
    assert missing.findtext(P + "Status") == "3"
    low = _ping(phone, "10", phone.inbox)
    assert (low.findtext(P + "Status"), low.findtext(P + "HeartbeatInterval")) == ("5", "60")
    high = _ping(phone, "4000", phone.inbox)
    assert (high.findtext(P + "Status"), high.findtext(P + "HeartbeatInterval")) == ("5", "3540")
    unknown = _ping(phone, "60", "987654")
    assert unknown.findtext(P + "Status") == "7"
    many = _ping(phone, "60", *[phone.inbox] * 301)
    assert (many.findtext(P + "Status"), many.findtext(P + "MaxFolders")) == ("6", "300")
    # A folder the phone has not synced yet (key 1, never listed) is reported at once.
    fresh = _ping(phone, "60", phone.inbox)
    assert fresh.findtext(P + "Status") == "2"
    assert [f.text for f in fresh.iter(P + "Folder")] == [phone.inbox]


def test_a_second_ping_of_the_device_ends_the_first(gateway: RunningGateway) -> None:
    user = new_user(gateway)
    phone = Phone(gateway, user)
    phone.sync_all(phone.inbox)
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(_ping, phone, "120", phone.inbox)
        time.sleep(1.5)
        started = time.monotonic()
        # The second Ping omits everything: the same interval and folders as before.
        second = pool.submit(_ping, phone, None)
        assert first.result(timeout=30).findtext(P + "Status") == "1"
        assert time.monotonic() - started < 15
        deliver(gateway, user, [message("for the second", text="!")])
        answer = second.result(timeout=60)
    assert answer.findtext(P + "Status") == "2"


def test_a_change_seen_by_one_node_wakes_a_ping_on_another(gateway: RunningGateway) -> None:
    """Node A never polls again after its first look (poll every 1000 s); node B
    polls the same user for another device's Ping and tells A through NOTIFY."""
    user = new_user(gateway)
    with running_gateway(gateway.upstream, gateway.database_url, poll_seconds=1000) as node_a, \
            running_gateway(gateway.upstream, gateway.database_url, poll_seconds=0.3) as node_b:
        on_a, on_b = Phone(node_a, user), Phone(node_b, user)
        on_a.sync_all(on_a.inbox)
        on_b.sync_all(on_b.inbox)
        with ThreadPoolExecutor(2) as pool:
            ping_a = pool.submit(_ping, on_a, "120", on_a.inbox)
            ping_b = pool.submit(_ping, on_b, "120", on_b.inbox)
            time.sleep(1.5)
            started = time.monotonic()
            deliver(gateway, user, [message("across nodes", text="!")])
            assert ping_b.result(timeout=60).findtext(P + "Status") == "2"
            assert ping_a.result(timeout=60).findtext(P + "Status") == "2"
            assert time.monotonic() - started < 20


def _held_ping(phone: Phone, folder: str) -> tuple[threading.Thread, list[str]]:
    answers: list[str] = []
    thread = threading.Thread(target=lambda: answers.append(
        _ping(phone, "120", folder).findtext(P + "Status") or ""))
    thread.start()
    time.sleep(1.0)
    assert not answers, "the Ping was answered at once"
    return thread, answers


def test_a_folder_change_made_elsewhere_asks_the_held_ping_for_a_foldersync(gateway: RunningGateway) -> None:
    from tests.gateway.helpers import folder_sync, jmap

    user = new_user(gateway)
    phone, other = Phone(gateway, user), Phone(gateway, user)
    key = phone.sync(collection(phone.inbox, "0")).findtext(".//{AirSync:}SyncKey")
    phone.sync(collection(phone.inbox, key))
    # A folder created by another phone of the user (FolderCreate through the gateway).
    thread, answers = _held_ping(phone, phone.inbox)
    started = time.monotonic()
    create = etree.Element("{FolderHierarchy:}FolderCreate")
    for name, value in (("SyncKey", "1"), ("ParentId", "0"), ("DisplayName", "Projects"), ("Type", "12")):
        etree.SubElement(create, "{FolderHierarchy:}" + name).text = value
    assert wbxml.decode(other.post("FolderCreate", create).content).findtext("{FolderHierarchy:}Status") == "1"
    thread.join(timeout=30)
    assert answers == ["7"] and time.monotonic() - started < 10
    # The phone does as told; its next Ping waits again.
    tree = wbxml.decode(phone.post("FolderSync", folder_sync("1")).content)
    assert [a.findtext("{FolderHierarchy:}DisplayName") for a in tree.iter("{FolderHierarchy:}Add")] == ["Projects"]
    # A folder renamed upstream by another client (JMAP directly): found by the watcher's poll.
    thread, answers = _held_ping(phone, phone.inbox)
    [(_, boxes, _)] = jmap(gateway, [["Mailbox/get", {}, "m"]], user=user)
    projects = next(b["id"] for b in boxes["list"] if b["name"] == "Projects")
    jmap(gateway, [["Mailbox/set", {"update": {projects: {"name": "Projects 2026"}}}, "s"]], user=user)
    thread.join(timeout=30)
    assert answers == ["7"]
    renamed = wbxml.decode(phone.post("FolderSync", folder_sync(tree.findtext("{FolderHierarchy:}SyncKey"))).content)
    assert [u.findtext("{FolderHierarchy:}DisplayName") for u in renamed.iter("{FolderHierarchy:}Update")] == [
        "Projects 2026"]
    # A mail change is no folder change: Status 2, not 7.
    thread, answers = _held_ping(phone, phone.inbox)
    deliver(gateway, user, [message("not a folder change", text="x")])
    thread.join(timeout=30)
    assert answers == ["2"]


class _PushingUpstream(JMAPUpstream):
    """Cyrus with a push stream, as a server offering JMAP EventSource would have:
    ``fire`` (set by the test) stands for the server's StateChange event."""

    def __init__(self, base_url: str, fire: threading.Event) -> None:
        super().__init__(base_url)
        self.fire = fire

    async def subscribe(self, credentials):  # type: ignore[no-untyped-def]
        async def events():  # type: ignore[no-untyped-def]
            while True:
                while not self.fire.is_set():
                    await asyncio.sleep(0.05)
                self.fire.clear()
                yield None
        return events()


def test_a_server_push_stream_wakes_the_ping_without_polling(gateway: RunningGateway) -> None:
    fire = threading.Event()
    with running_gateway(gateway.upstream, gateway.database_url, poll_seconds=600.0,
                         upstream=_PushingUpstream(gateway.upstream, fire)) as pushed:
        user = new_user(pushed)
        phone = Phone(pushed, user)
        key = phone.sync(collection(phone.inbox, "0")).findtext(".//{AirSync:}SyncKey")
        phone.sync(collection(phone.inbox, key))
        thread, answers = _held_ping(phone, phone.inbox)
        deliver(pushed, user, [message("pushed", text="x")])
        time.sleep(2.0)
        assert not answers, "woken without the stream: by what?"  # nobody polls for 600 s
        started = time.monotonic()
        fire.set()  # the server's StateChange
        thread.join(timeout=30)
        assert answers == ["2"] and time.monotonic() - started < 5


def test_imap_idle_wakes_the_ping_without_polling(gateway: RunningGateway) -> None:
    """Debian's Cyrus has no JMAP push: with EAS_IMAP_IDLE the watcher idles on the INBOX
    (its IMAP service, HTTP port + 1) and a delivery wakes the held Ping though nobody polls
    for an hour. A second user's delivery does not wake it."""
    imap = f"imap://127.0.0.1:{int(gateway.upstream.rsplit(':', 1)[1]) + 1}"
    with running_gateway(gateway.upstream, gateway.database_url, poll_seconds=3600.0, imap_idle=imap) as idling:
        user, other = new_user(idling), new_user(idling)
        phone = Phone(idling, user)
        key = phone.sync(collection(phone.inbox, "0")).findtext(".//{AirSync:}SyncKey")
        phone.sync(collection(phone.inbox, key))
        thread, answers = _held_ping(phone, phone.inbox)
        time.sleep(1.5)
        deliver(idling, other, [message("not for you", text="x")])
        time.sleep(1.5)
        assert not answers, "woken by another user's mail"
        started = time.monotonic()
        deliver(idling, user, [message("idle", text="x")])
        thread.join(timeout=60)
        assert answers == ["2"] and time.monotonic() - started < 10


def test_a_ping_whose_phone_hangs_up_is_no_longer_held(gateway: RunningGateway) -> None:
    """A phone that closes the connection of its held Ping (it lost the network, the user
    left the app) ends the Ping at once: it no longer counts as held, its watcher can stop."""
    user = new_user(gateway)
    phone = Phone(gateway, user)
    key = phone.sync(collection(phone.inbox, "0")).findtext(".//{AirSync:}SyncKey")
    phone.sync(collection(phone.inbox, key))
    before = metric(gateway, "eas_held_requests")
    root = etree.Element(P + "Ping")
    etree.SubElement(root, P + "HeartbeatInterval").text = "600"
    folder = etree.SubElement(etree.SubElement(root, P + "Folders"), P + "Folder")
    etree.SubElement(folder, P + "Id").text = phone.inbox
    etree.SubElement(folder, P + "Class").text = "Email"
    outcome: list[str] = []

    def impatient() -> None:
        try:
            httpx.post(gateway.endpoint, content=wbxml.encode(root), timeout=3, auth=(user, user.split("@")[0]),
                       params={"Cmd": "Ping", "User": user, "DeviceId": phone.device, "DeviceType": "TestPhone"},
                       headers={"MS-ASProtocolVersion": phone.version, "X-MS-PolicyKey": phone.policy_key or "",
                                "Content-Type": "application/vnd.ms-sync.wbxml"})
            outcome.append("answered")
        except httpx.ReadTimeout:
            outcome.append("gave up")  # and closed the connection

    gone = threading.Thread(target=impatient)
    gone.start()
    deadline = time.monotonic() + 3
    while metric(gateway, "eas_held_requests") < before + 1:
        assert time.monotonic() < deadline, "the Ping was never held"
        time.sleep(0.1)
    gone.join()
    assert outcome == ["gave up"]
    deadline = time.monotonic() + 5
    while metric(gateway, "eas_held_requests") > before:
        assert time.monotonic() < deadline, "the Ping is still held though its phone hung up"
        time.sleep(0.1)


def test_the_upstreams_own_events_wake_the_ping_without_polling(gateway: RunningGateway) -> None:
    """Cyrus' change events (notifyd's external notifier, set up by scripts/cyrus-upstream.sh)
    POSTed to /push/upstream-events wake the held Ping though nobody polls for an hour and
    nothing idles; the endpoint takes Dovecot's "ox" events too, and nothing without the secret."""
    secret = "events-" + new_device_id()
    with running_gateway(gateway.upstream, gateway.database_url, poll_seconds=3600.0, dav_poll_seconds=3600.0,
                         upstream_events_secret=secret) as listening:
        target = listening.cyrus_dir / "events-target"
        events = listening.url + "/push/upstream-events"
        user = new_user(listening)
        phone = Phone(listening, user)
        key = phone.sync(collection(phone.inbox, "0")).findtext(".//{AirSync:}SyncKey")
        phone.sync(collection(phone.inbox, key))
        try:
            target.write_text(f"{events} {secret}\n")
            thread, answers = _held_ping(phone, phone.inbox)
            started = time.monotonic()
            deliver(listening, user, [message("evented", text="x")])
            thread.join(timeout=60)
            assert answers == ["2"] and time.monotonic() - started < 10
            # A calendar's change is an event of its Cyrus mailbox (#calendars): it reads the DAV
            # homes at once, though they are polled only hourly.
            calendar = phone.types["8"]
            key = phone.sync(collection(calendar, "0")).findtext(".//{AirSync:}SyncKey")
            phone.sync(collection(calendar, key))
            thread, answers = _held_ping(phone, calendar)
            started = time.monotonic()
            put(listening, user, default_calendar(listening, user) + "evented.ics",
                SINGLE.format(uid="evented", times="DTSTART:20270105T100000Z\r\nDURATION:PT1H\r\n",
                              summary="evented", extra=""))
            thread.join(timeout=60)
            assert answers == ["2"] and time.monotonic() - started < 10
        finally:
            target.unlink(missing_ok=True)
        ox = {"user": user, "folder": "INBOX", "event": "MessageNew", "imap-uid": 7, "unseen": 1}
        assert httpx.post(events, json=ox, headers={"Authorization": f"Bearer {secret}"}).status_code == 204
        assert httpx.post(events, json=ox, headers={"Authorization": "Bearer guess"}).status_code == 401
        assert httpx.post(events, json=ox).status_code == 401
        assert httpx.post(events, content=b"{not json", headers={"Authorization": f"Bearer {secret}"}
                          ).status_code == 400
        assert httpx.post(events, json={"event": "Login"}, headers={"Authorization": f"Bearer {secret}"}
                          ).status_code == 400
    assert httpx.post(gateway.url + "/push/upstream-events", json=ox).status_code == 404  # no secret: off


def _counted(gw: RunningGateway, prefix: str) -> float:
    """The sum of the gateway's counters whose lines start with ``prefix``."""
    text = httpx.get(gw.url + "/metrics").text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(prefix))


def _upstream_calls(gw: RunningGateway) -> float:
    return _counted(gw, "eas_upstream_calls_total{")


def test_with_the_upstreams_events_a_no_change_sync_asks_the_upstream_nothing(gateway: RunningGateway) -> None:
    """Once Cyrus' events come, the watcher (lingering after the Ping) knows the user's state:
    a Sync whose collection has seen it is answered from PostgreSQL alone, in two statements (the
    device and the collection's state), and a delivery's event makes the next Sync ask again and
    bring the message."""
    secret = "events-" + new_device_id()
    with running_gateway(gateway.upstream, gateway.database_url, poll_seconds=3600.0, dav_poll_seconds=3600.0,
                         upstream_events_secret=secret) as listening:
        target = listening.cyrus_dir / "events-target"
        user = new_user(listening)
        phone = Phone(listening, user)
        key = phone.sync(collection(phone.inbox, "0")).findtext(".//{AirSync:}SyncKey")
        key = phone.sync(collection(phone.inbox, key)).findtext(".//{AirSync:}SyncKey")
        try:
            target.write_text(f"{listening.url}/push/upstream-events {secret}\n")
            thread, answers = _held_ping(phone, phone.inbox)
            deliver(listening, user, [message("first", text="x")])  # an event: mail has events now
            thread.join(timeout=60)
            assert answers == ["2"]
            tree = phone.sync(collection(phone.inbox, key))
            key = tree.findtext(".//{AirSync:}SyncKey")
            assert [s.text for s in tree.iter("{Email:}Subject")] == ["first"]
            time.sleep(0.5)
            before = _upstream_calls(listening)
            statements = _counted(listening, 'eas_db_statements_total{command="Sync"}')
            for _ in range(3):
                tree = phone.sync(collection(phone.inbox, key))
                assert tree is None or tree.findtext(".//{AirSync:}SyncKey") == key  # nothing new
            assert _upstream_calls(listening) == before
            assert _counted(listening, 'eas_db_statements_total{command="Sync"}') - statements == 3 * 2
            deliver(listening, user, [message("second", text="y")])
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                tree = phone.sync(collection(phone.inbox, key))
                subjects = [s.text for s in tree.iter("{Email:}Subject")] if tree is not None else []
                if subjects:
                    break
                time.sleep(0.2)
            assert subjects == ["second"]
        finally:
            target.unlink(missing_ok=True)
