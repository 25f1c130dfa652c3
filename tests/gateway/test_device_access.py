"""Device access (usm/access.py, sql/014): rules by DeviceType, User-Agent and DeviceId, for
one user or everyone; quarantine; the sync-loop autoblock; the CLI that manages them and the
audit log of every admin action, on the real database and upstream."""

from __future__ import annotations

import json
import uuid

import httpx
import pytest
from lxml import etree

import wbxml
from tests.conftest import RunningGateway, running_gateway
from tests.gateway.helpers import folder_sync, new_device_id, new_user, password, provision
from tests.gateway.test_admin import cli, psql

pytestmark = [pytest.mark.postgres, pytest.mark.upstream]

F = "{FolderHierarchy:}"


def request(gw: RunningGateway, user: str, device: str, device_type: str, *, version: str = "14.1",
            key: str | None = None, agent: str = "eas-gateway-tests/1") -> httpx.Response:
    """A FolderSync of a provisioned device (``key``: its PolicyKey)."""
    headers = {"MS-ASProtocolVersion": version, "Content-Type": "application/vnd.ms-sync.wbxml",
               "User-Agent": agent, **({"X-MS-PolicyKey": key} if key else {})}
    return httpx.post(gw.endpoint, params={"Cmd": "FolderSync", "User": user, "DeviceId": device,
                                           "DeviceType": device_type},
                      content=wbxml.encode(folder_sync("0")), headers=headers, auth=(user, password(user)), timeout=30)


def status(answer: httpx.Response) -> str | None:
    assert answer.status_code == 200, answer.text
    return wbxml.decode(answer.content).findtext(F + "Status")


@pytest.fixture
def quick(cyrus: str, database_url: str) -> RunningGateway:
    with running_gateway(cyrus, database_url, access_reload_seconds=0.0, loop_limit=5) as gw:
        yield gw


def test_rules_by_type_agent_and_device_first_match_wins_and_every_change_is_audited(quick: RunningGateway) -> None:
    user, other = new_user(quick), new_user(quick)
    kind = "Evil" + uuid.uuid4().hex[:8]
    mine, spare = new_device_id(), new_device_id()
    key = provision(quick, mine, user=user)
    assert status(request(quick, user, mine, kind, key=key)) == "1"
    added = json.loads(cli(quick, "rule-add", "device_type", kind.lower() + "*", "block", "--json").stdout)["done"]
    rule = added.split(":")[0].removeprefix("rule ")
    try:
        assert status(request(quick, user, mine, kind, key=key)) == "129"  # blocked for this user (MS-ASCMD 2.2.2)
        assert request(quick, user, mine, kind, version="12.1").status_code == 403
        assert status(request(quick, user, spare, "Fine" + kind, key=provision(quick, spare, user=user))) == "1"
        # The user's own rule for this DeviceId comes before everyone's rule for the type.
        cli(quick, "rule-add", "device_id", mine, "allow", "--user", user)
        assert status(request(quick, user, mine, kind, key=key)) == "1"
        third = new_device_id()
        assert status(request(quick, other, third, kind, key=provision(quick, third, user=other))) == "129"
        cli(quick, "rule-add", "user_agent", "*quarantine-me*", "quarantine", "--user", other)
        fourth = new_device_id()
        assert status(request(quick, other, fourth, "Other", key=provision(quick, fourth, user=other),
                              agent="x/quarantine-me/1")) == "129"
        cli(quick, "rule-add", "device_type", "x", "sometimes", ok=False)  # no such access level: nothing added
    finally:
        for row in json.loads(cli(quick, "rules", "--json").stdout):
            if row["user_name"] in (user, other) or row["pattern"] == kind.lower() + "*":
                cli(quick, "rule-remove", str(row["id"]))
    audit = json.loads(cli(quick, "audit", "--json", "--limit", "50").stdout)
    mine = [a for a in audit if kind.lower() in a["detail"] or user in a["detail"] or other in a["detail"] or
            a["detail"] == f"rule {rule} removed"]
    actions = [a["action"] for a in mine]
    assert actions.count("rule-add") == 3 and "rule-remove" in actions
    assert all(a["actor"].startswith("cli:") for a in mine)


def test_a_device_in_a_loop_is_blocked_then_let_in_again(quick: RunningGateway) -> None:
    user = new_user(quick)
    looping, calm = new_device_id(), new_device_id()
    key = provision(quick, looping, user=user)
    answers = [status(request(quick, user, looping, "Loopy", key=key)) for _ in range(6)]
    assert answers[:5] == ["1"] * 5 and answers[5] == "129"  # the 6th identical request within a minute
    assert status(request(quick, user, calm, "Loopy", key=provision(quick, calm, user=user))) == "1"
    blocked = json.loads(cli(quick, "blocks", "--json").stdout)
    assert any(b["device_id"] == looping and "loop" in b["reason"] for b in blocked)
    psql(quick, "unblock_device.sql", user=user, device=looping)  # as an admin with psql would
    assert status(request(quick, user, looping, "Loopy", key=key)) == "1"
    cli(quick, "unblock", user, looping, ok=False)  # not blocked any more: says so, changes nothing
    audit = json.loads(cli(quick, "audit", "--json", "--limit", "20").stdout)
    assert any(a["actor"].startswith("sql:") and a["action"] == "unblock" and looping in a["detail"] for a in audit)



def test_pings_and_empty_requests_do_not_count_as_a_loop(quick: RunningGateway) -> None:
    """Under a stream of new mail a phone Pings again and again with the same body, and an
    empty Sync means "as last time": neither is a loop."""
    from tests.gateway.helpers import Phone, collection

    user = new_user(quick)
    phone = Phone(quick, user)
    key = phone.sync(collection(phone.inbox, "0")).findtext(".//{AirSync:}SyncKey")
    phone.sync(collection(phone.inbox, key))
    root = etree.Element("{Ping:}Ping")
    etree.SubElement(root, "{Ping:}HeartbeatInterval").text = "10"  # below the minimum: answered at once
    folder = etree.SubElement(etree.SubElement(root, "{Ping:}Folders"), "{Ping:}Folder")
    etree.SubElement(folder, "{Ping:}Id").text = phone.inbox
    etree.SubElement(folder, "{Ping:}Class").text = "Email"
    for _ in range(8):
        answer = phone.post("Ping", root)
        assert wbxml.decode(answer.content).findtext("{Ping:}Status") == "5"
    for _ in range(8):
        assert phone.post("Sync", None).status_code == 200
    assert not any(b["device_id"] == phone.device for b in json.loads(cli(quick, "blocks", "--json").stdout))
