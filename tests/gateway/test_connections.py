"""Connections (issue 17, item 5): a client that trickles its request head (slowloris) or
opens a socket and says nothing is cut off after EAS_HEADER_TIMEOUT; a held Ping, whose
head came at once, is not; beyond EAS_MAX_CONNECTIONS new requests get 503; a phone that
hangs up halfway through its request's body is a hang-up, not a bug (500)."""

from __future__ import annotations

import base64
import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

import wbxml
from tests.conftest import RunningGateway, running_gateway
from tests.gateway.helpers import Phone, collection, new_user, ping_request
from tests.gateway.test_observability import metric

pytestmark = [pytest.mark.postgres, pytest.mark.upstream]


@pytest.fixture
def quick(cyrus: str, database_url: str) -> Iterator[RunningGateway]:
    with running_gateway(cyrus, database_url, header_timeout=1.0, heartbeat_min=3, poll_seconds=0.5,
                         dav_upstream="none") as gw:
        yield gw


def _closed_after(sock: socket.socket, trickle: bytes, limit: float) -> float:
    """Seconds until the server closes ``sock`` while ``trickle`` goes out a byte at a time."""
    started = time.monotonic()
    sock.settimeout(0.2)
    for byte in trickle:
        try:
            sock.sendall(bytes([byte]))
            if sock.recv(1) == b"":
                return time.monotonic() - started
        except (TimeoutError, BlockingIOError):
            pass
        except (ConnectionResetError, BrokenPipeError):
            return time.monotonic() - started
        if time.monotonic() - started > limit:
            break
    return float("inf")


def test_a_trickled_head_and_a_silent_socket_are_cut_off(quick: RunningGateway) -> None:
    host, port = quick.url.rsplit("/", 1)[1].split(":")
    with socket.create_connection((host, int(port))) as slow:
        head = b"POST /Microsoft-Server-ActiveSync HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 200
        assert _closed_after(slow, head, limit=10) < 3
    with socket.create_connection((host, int(port))) as silent:
        silent.settimeout(5)
        started = time.monotonic()
        assert silent.recv(1) == b"" and time.monotonic() - started < 3


def test_a_held_ping_is_not_cut_off(quick: RunningGateway) -> None:
    user = new_user(quick)
    phone = Phone(quick, user)
    key = phone.sync(collection(phone.inbox, "0")).findtext(".//{AirSync:}SyncKey") or ""
    phone.sync(collection(phone.inbox, key))
    P = "{Ping:}"
    ping = ping_request(phone.inbox, 3, "Email")
    started = time.monotonic()
    answer = wbxml.decode(phone.post("Ping", ping).content)
    assert answer.findtext(P + "Status") == "1" and time.monotonic() - started >= 2.5  # held past the 1 s limit


def test_beyond_the_connection_cap_requests_get_503(cyrus: str, database_url: str) -> None:
    with running_gateway(cyrus, database_url, max_connections=3, dav_upstream="none") as gw:
        host, port = gw.url.rsplit("/", 1)[1].split(":")
        held: list[Any] = [socket.create_connection((host, int(port))) for _ in range(3)]
        try:
            time.sleep(0.2)
            assert httpx.get(gw.url + "/healthz", timeout=10).status_code == 503
        finally:
            for s in held:
                s.close()
        time.sleep(0.3)
        assert httpx.get(gw.url + "/healthz", timeout=10).status_code == 200


def test_a_phone_hanging_up_halfway_through_its_body_is_a_hang_up(quick: RunningGateway) -> None:
    user = new_user(quick)
    host, port = quick.url.rsplit("/", 1)[1].split(":")
    auth = base64.b64encode(f"{user}:{user.split('@')[0]}".encode()).decode()
    head = (f"POST /Microsoft-Server-ActiveSync?Cmd=Sync&User={user}&DeviceId=halfway&DeviceType=Test HTTP/1.1\r\n"
            f"Host: x\r\nAuthorization: Basic {auth}\r\nMS-ASProtocolVersion: 14.1\r\n"
            "Content-Type: application/vnd.ms-sync.wbxml\r\nContent-Length: 500\r\n\r\n").encode()
    with socket.create_connection((host, int(port))) as phone:
        phone.sendall(head + b"\x03\x01\x6a\x00")  # 4 of the 500 bytes it announced
        time.sleep(0.5)
    deadline = time.monotonic() + 10
    while metric(quick, "eas_requests_total", command="Sync", status="hung-up") < 1:
        assert time.monotonic() < deadline, "the request was not counted as hung up"
        time.sleep(0.1)
    assert metric(quick, "eas_requests_total", command="Sync", status="500") == 0
