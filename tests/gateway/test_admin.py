"""Administration: `eas-gateway admin` and the psql scripts of sql/admin/, on the
real database and upstream, with a phone that recovers the way real ones do
(tests/gateway/model_phone.py). After every reset the phone must end with
exactly the upstream's content: no duplicates, nothing missing."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections import Counter
from typing import Any

import pytest
from lxml import etree

import wbxml
from tests.conftest import ROOT, RunningGateway
from tests.gateway.helpers import deliver, jmap, message, new_user, post
from tests.gateway.model_phone import ModelPhone

P = "{Provision:}"


def cli(gw: RunningGateway, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([sys.executable, "-m", "eas_gateway.cli", "admin", *args, "--database-url", gw.database_url],
                          capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert (done.returncode == 0) == ok, done.stderr
    return done


def psql(gw: RunningGateway, script: str, ok: bool = True, **variables: str) -> subprocess.CompletedProcess[str]:
    args = ["psql", gw.database_url, "-X", "-f", str(ROOT / "sql" / "admin" / script)]
    for name, value in variables.items():
        args += ["-v", f"{name}={value}"]
    done = subprocess.run(args, capture_output=True, text=True, timeout=60)
    assert (done.returncode == 0) == ok, done.stderr
    return done


def upstream_subjects(gw: RunningGateway, user: str, mailbox: str) -> Counter[str]:
    [(_, boxes, _)] = jmap(gw, [["Mailbox/get", {}, "m"]], user=user)
    box = next(b["id"] for b in boxes["list"] if b["name"] == mailbox)
    [(_, _, _), (_, got, _)] = jmap(gw, [
        ["Email/query", {"filter": {"inMailbox": box}, "limit": 1000}, "q"],
        ["Email/get", {"#ids": {"resultOf": "q", "name": "Email/query", "path": "/ids"},
                       "properties": ["subject"]}, "g"]], user=user)
    return Counter(e["subject"] for e in got["list"])


@pytest.fixture
def synced(gateway: RunningGateway) -> ModelPhone:
    """A fresh user with 30 messages in the Inbox, all on the phone."""
    user = new_user(gateway)
    deliver(gateway, user, [message(f"before {n}") for n in range(30)])
    phone = ModelPhone(gateway, user)
    phone.folder_sync()
    phone.sync(phone.folder("Inbox"))
    assert phone.subjects(phone.folder("Inbox")) == upstream_subjects(gateway, user, "Inbox")
    return phone


def test_devices_lists_and_device_shows_folders_and_keys(gateway: RunningGateway, synced: ModelPhone) -> None:
    listed = json.loads(cli(gateway, "devices", synced.user, "--json").stdout)
    assert [(d["device_id"], d["protocol_version"], d["policy"], d["wipe"]) for d in listed] == [
        (synced.device, "14.1", "provisioned", None)]
    assert listed[0]["user_agent"] == "eas-gateway-tests/1"
    assert synced.device in cli(gateway, "devices").stdout  # all users, as a table
    shown = json.loads(cli(gateway, "device", synced.user, synced.device, "--json").stdout)
    inbox = next(f for f in shown["folders"] if f["name"] == "Inbox")
    assert (inbox["items"], inbox["sync_key"], inbox["pending"], inbox["listing"]) == (
        30, int(synced.keys[synced.folder("Inbox")]), 0, False)
    assert shown["device"]["folder_sync_key"] == int(synced.folder_key)


def _reset(gw: RunningGateway, phone: ModelPhone, how: str, path: str) -> None:
    inbox = phone.folder("Inbox")
    if path == "cli":
        args = {"reset-device": [phone.user, phone.device], "reset-user": [phone.user],
                "remove-device": [phone.user, phone.device], "resync-folder": [phone.user, "Inbox"]}[how]
        cli(gw, how, *args)
    else:
        variables = {"reset-device": {"device": phone.device}, "reset-user": {},
                     "remove-device": {"device": phone.device}, "resync-folder": {"folder": inbox}}[how]
        psql(gw, how.replace("-", "_") + ".sql", user=phone.user, **variables)


@pytest.mark.parametrize("path", ["cli", "sql"])
@pytest.mark.parametrize("how, ping_says, seen", [
    ("reset-device", "7", {"FolderSync 9", "Sync 3"}),
    ("reset-user", "7", {"FolderSync 9", "Sync 3"}),
    ("remove-device", "7", {"FolderSync 9", "Sync 3"}),
    ("resync-folder", "2", {"Sync 3"}),
])
def test_after_a_reset_the_phone_recovers_with_exactly_the_upstream_content(
        gateway: RunningGateway, synced: ModelPhone, how: str, ping_says: str, seen: set[str], path: str) -> None:
    inbox = synced.folder("Inbox")
    # A Ping held while the admin resets: the reset wakes it at once.
    answers: list[str] = []
    pinging = threading.Thread(target=lambda: answers.append(synced.ping([inbox], heartbeat=120)))
    started = time.monotonic()
    pinging.start()
    time.sleep(1.0)
    _reset(gateway, synced, how, path)
    # Mail keeps arriving meanwhile; the phone must get it too.
    deliver(gateway, synced.user, [message(f"after {n}") for n in range(3)])
    pinging.join(timeout=60)
    assert answers and time.monotonic() - started < 30, "the reset did not end the held Ping"
    if how != "remove-device":  # a removed device's held Ping was answered before; its next request re-provisions
        assert answers == [ping_says]
    synced.folder_sync()
    synced.sync(inbox)
    assert seen <= set(synced.statuses), synced.statuses
    assert synced.provisions == (2 if how == "remove-device" else 1)
    assert synced.subjects(inbox) == upstream_subjects(gateway, synced.user, "Inbox")
    assert sum(synced.subjects(inbox).values()) == 33


def test_resync_of_one_device_leaves_the_other_alone(gateway: RunningGateway, synced: ModelPhone) -> None:
    other = ModelPhone(gateway, synced.user)
    other.folder_sync()
    inbox = other.folder("Inbox")
    other.sync(inbox)
    cli(gateway, "resync-folder", synced.user, inbox, "--device", synced.device)
    other.sync(inbox)
    synced.sync(inbox)
    assert "Sync 3" not in other.statuses and "Sync 3" in synced.statuses
    assert other.subjects(inbox) == synced.subjects(inbox) == upstream_subjects(gateway, synced.user, "Inbox")


def test_resets_of_what_does_not_exist_say_so_and_change_nothing(gateway: RunningGateway,
                                                                 synced: ModelPhone) -> None:
    before = cli(gateway, "device", synced.user, synced.device, "--json").stdout
    for args in (["reset-device", synced.user, "NOPE"], ["remove-device", "nobody@example.com", synced.device],
                 ["resync-folder", synced.user, "No such folder"], ["cancel-wipe", synced.user, synced.device],
                 ["wipe", synced.user, synced.device, "--account-only"]):
        failed = cli(gateway, *args, ok=False)
        assert "has no" in failed.stderr or "needs 16.1" in failed.stderr, failed.stderr
    failed = psql(gateway, "reset_device.sql", ok=False, user=synced.user, device="NOPE")
    assert "has no device NOPE" in failed.stderr
    assert cli(gateway, "device", synced.user, synced.device, "--json").stdout == before


def _provision(gw: RunningGateway, phone: ModelPhone, body: etree._Element, version: str) -> etree._Element:
    answer = post(gw, "Provision", body, device_id=phone.device, user=phone.user, version=version,
                  policy_key=phone.policy_key)
    assert answer.status_code == 200, answer.text
    return wbxml.decode(answer.content)


def _ack(element: str, status: str) -> etree._Element:
    root = etree.Element(P + "Provision")
    etree.SubElement(etree.SubElement(root, P + element), P + "Status").text = status
    return root


def _device(gw: RunningGateway, phone: ModelPhone) -> dict[str, Any]:
    return json.loads(cli(gw, "device", phone.user, phone.device, "--json").stdout)["device"]


@pytest.mark.parametrize("version, kind, element", [
    ("14.1", "device", "RemoteWipe"), ("16.1", "account", "AccountOnlyRemoteWipe")])
def test_remote_wipe_is_delivered_and_its_acknowledgement_shown(gateway: RunningGateway, version: str, kind: str,
                                                                element: str) -> None:
    user = new_user(gateway)
    phone = ModelPhone(gateway, user, version=version)
    phone.folder_sync()
    cli(gateway, "wipe", user, phone.device, *(["--account-only"] if kind == "account" else []))
    assert _device(gateway, phone)["wipe"] == f"{kind} wipe requested"
    # MS-ASCMD 2.2.2: Status 140 on any command but Provision.
    answer = post(gateway, "FolderSync", etree.Element("{FolderHierarchy:}FolderSync"), device_id=phone.device,
                  user=user, version=version, policy_key=phone.policy_key)
    assert wbxml.decode(answer.content).findtext("{FolderHierarchy:}Status") == "140"
    # The phone's empty Provision gets the directive (MS-ASPROV 3.1.5.1.1) ...
    directive = _provision(gateway, phone, etree.Element(P + "Provision"), version)
    assert directive.findtext(P + "Status") == "1" and directive.find(P + element) is not None
    assert directive.find(P + "Policies") is None
    # ... a failure report gets Status 2 and the directive again (MS-ASPROV 3.2.5.1.2.2) ...
    again = _provision(gateway, phone, _ack(element, "2"), version)
    assert again.findtext(P + "Status") == "2" and again.find(P + element) is not None
    assert _device(gateway, phone)["wipe"] == f"{kind} wipe failed (Status 2)"
    # ... and success is recorded for the admin.
    done = _provision(gateway, phone, _ack(element, "1"), version)
    assert done.findtext(P + "Status") == "1" and done.find(P + element) is None
    shown = _device(gateway, phone)
    assert shown["wipe"] == f"{kind} wipe done" and shown["wipe_acknowledged_at"]
    # Until an admin removes it, the device gets nothing else.
    assert ModelPhone._status(post(gateway, "FolderSync", etree.Element("{FolderHierarchy:}FolderSync"),
                                   device_id=phone.device, user=user, version=version,
                                   policy_key=phone.policy_key)) == "140"


def test_wipe_below_14_is_http_449_and_can_be_cancelled(gateway: RunningGateway) -> None:
    user = new_user(gateway)
    phone = ModelPhone(gateway, user, version="12.1")
    phone.folder_sync()
    psql(gateway, "request_wipe.sql", user=user, device=phone.device)
    answer = post(gateway, "FolderSync", etree.Element("{FolderHierarchy:}FolderSync"), device_id=phone.device,
                  user=user, version="12.1", policy_key=phone.policy_key)
    assert answer.status_code == 449
    assert "device wipe requested" in psql(gateway, "list_devices.sql", user=user).stdout
    cli(gateway, "cancel-wipe", user, phone.device)
    phone.folder_sync()
    assert phone.provisions == 1
