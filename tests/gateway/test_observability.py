"""What operators see: per-request log fields, protocol traces switched at run
time, /healthz, /metrics, and forwarded client addresses from trusted proxies only."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import threading
import time

import httpx
import pytest

from eas_gateway.observability.logs import JSONFormatter
from tests.conftest import RunningGateway, free_port, running_gateway
from tests.gateway.helpers import deliver, folder_sync, message, new_user, post
from tests.gateway.model_phone import ModelPhone
from tests.gateway.test_admin import cli


def metric(gw: RunningGateway, name: str, **labels: str) -> float:
    text = httpx.get(gw.url + "/metrics").text
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        m = re.match(r"^(\w+)(?:\{(.*)\})? (\S+)$", line)
        if m and m.group(1) == name and ",".join(sorted((m.group(2) or "").split(","))) == want:
            return float(m.group(3))
    return 0.0


def request_records(caplog: pytest.LogCaptureFixture, device: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "eas_gateway.request" and getattr(r, "device", "") == device]


def test_healthz_says_what_is_reachable(gateway: RunningGateway) -> None:
    answer = httpx.get(gateway.url + "/healthz")
    assert (answer.status_code, answer.json()) == (200, {"status": "ok", "database": "ok", "upstream": "ok"})


def test_healthz_fails_with_the_upstream_down(gateway: RunningGateway) -> None:
    with running_gateway(f"http://127.0.0.1:{free_port()}", gateway.database_url) as down:
        answer = httpx.get(down.url + "/healthz")
    assert answer.status_code == 503
    assert answer.json()["database"] == "ok" and "unreachable" in answer.json()["upstream"]


def test_metrics_count_requests_upstream_calls_held_pings_and_the_pool(gateway: RunningGateway) -> None:
    before = metric(gateway, "eas_requests_total", command="FolderSync", status="200")
    calls_before = metric(gateway, "eas_upstream_calls_total", operation="Mailbox/get")
    phone = ModelPhone(gateway, new_user(gateway))
    phone.folder_sync()
    assert metric(gateway, "eas_requests_total", command="FolderSync", status="200") == before + 1
    assert metric(gateway, "eas_upstream_calls_total", operation="Mailbox/get") >= calls_before + 1
    assert metric(gateway, "eas_request_duration_seconds_count", command="FolderSync") >= 1
    assert metric(gateway, "eas_db_pool_connections") >= 1
    # A Ping held right now is counted; a refused request is counted by its status.
    phone.sync(phone.folder("Inbox"))
    pinging = threading.Thread(target=phone.ping, args=([phone.folder("Inbox")], 60))
    pinging.start()
    deadline = time.monotonic() + 10
    while metric(gateway, "eas_held_requests") < 1 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert metric(gateway, "eas_held_requests") >= 1
    deliver(gateway, phone.user, [message("wakes the Ping")])
    pinging.join(timeout=30)
    assert not pinging.is_alive()
    post(gateway, "FolderSync", folder_sync("0"), device_id=phone.device, user=phone.user)
    refused = metric(gateway, "eas_requests_total", command="FolderSync", status="eas-142")
    assert refused >= 1  # that FolderSync had no PolicyKey


def test_protocol_trace_switches_on_and_off_at_run_time(gateway: RunningGateway,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    phone = ModelPhone(gateway, new_user(gateway))
    phone.folder_sync()
    assert not [r for r in caplog.records if r.name == "eas_gateway.trace"]
    cli(gateway, "trace", phone.user, "--device", phone.device, "--minutes", "5")
    assert phone.device in cli(gateway, "traces").stdout

    def traced() -> list[str]:
        return [r.getMessage() for r in caplog.records if r.name == "eas_gateway.trace"]

    deadline = time.monotonic() + 10  # the NOTIFY reaches the gateway's listener
    while not traced() and time.monotonic() < deadline:
        phone.sync(phone.folder("Inbox"))
        time.sleep(0.2)
    messages = traced()
    assert any("Sync of" in m and "request" in m and "<Sync xmlns=\"AirSync:\">" in m for m in messages), messages
    assert any("response" in m and "<SyncKey>" in m for m in messages)
    cli(gateway, "trace", phone.user, "--device", phone.device, "--minutes", "0")
    time.sleep(1.0)
    caplog.clear()
    phone.folder_sync()
    assert not traced()


def test_request_log_lines_carry_fields_and_json_renders_them(gateway: RunningGateway,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    phone = ModelPhone(gateway, new_user(gateway))
    phone.folder_sync()
    [record] = [r for r in request_records(caplog, phone.device) if r.command == "FolderSync"]
    entry = json.loads(JSONFormatter().format(record))
    assert (entry["user"], entry["device"], entry["command"], entry["status"], entry["version"]) == (
        phone.user, phone.device, "FolderSync", "200", "14.1")
    assert entry["ms"] > 0 and entry["client"] == "127.0.0.1" and entry["level"] == "INFO"


@pytest.mark.parametrize("trusted, expected", [("", "127.0.0.1"), ("127.0.0.1", "203.0.113.9")])
def test_forwarded_client_address_is_believed_only_from_trusted_proxies(
        gateway: RunningGateway, caplog: pytest.LogCaptureFixture, trusted: str, expected: str) -> None:
    caplog.set_level(logging.INFO)
    with running_gateway(gateway.upstream, gateway.database_url, trusted_proxies=trusted) as gw:
        device = "TFWD" + trusted.replace(".", "")
        httpx.post(gw.endpoint, params={"Cmd": "FolderSync", "User": "alice@example.com", "DeviceId": device,
                                        "DeviceType": "TestPhone"},
                   headers={"MS-ASProtocolVersion": "14.1", "X-Forwarded-For": "203.0.113.9",
                            "X-Forwarded-Proto": "https"}, auth=("alice@example.com", "alice"), timeout=30)
    [record] = request_records(caplog, device)
    assert record.client == expected


def test_healthz_tells_a_stranger_what_fails_but_not_how(database_url: str) -> None:
    from eas_gateway.app import create_app
    from eas_gateway.config import Settings
    from eas_gateway.server import gateway_of

    app = create_app(Settings(upstream=f"http://127.0.0.1:{free_port()}", database_url=database_url,
                              dav_upstream="none"))
    gateway = gateway_of(app)

    async def ask(client: str) -> httpx.Response:
        transport = httpx.ASGITransport(app=app, client=(client, 4000))  # type: ignore[arg-type]
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as http:
            return await http.get("/healthz")

    async def go() -> tuple[httpx.Response, httpx.Response]:
        await gateway.start()
        try:
            return await ask("203.0.113.9"), await ask("127.0.0.1")
        finally:
            await gateway.stop()

    stranger, local = asyncio.run(go())
    assert (stranger.status_code, stranger.json()) == (503, {"status": "failing", "database": "ok",
                                                             "upstream": "failing"})
    assert "unreachable" in local.json()["upstream"]  # this machine gets the reason
