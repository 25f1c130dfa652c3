"""HTTP-layer fuzzing (issue 17, item 12): Hypothesis sends the running gateway random
commands, query strings, headers and bodies — garbage bytes, and well-formed WBXML of
random element trees rooted at each command's element — as a provisioned phone and as
strangers. Never a 500; a refused request (4xx, but 449 "provision first") leaves no
device row behind."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg
import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

import wbxml
from eas_gateway.commands import COMMANDS
from tests.gateway.helpers import Phone, new_user, password
from tests.wbxml.strategies import trees

pytestmark = [pytest.mark.postgres, pytest.mark.upstream]

COMMAND_NAMES = sorted(COMMANDS)


@st.composite
def bodies(draw: st.DrawFn, command: str) -> bytes:
    kind = draw(st.sampled_from(["empty", "garbage", "tree", "tree"]))
    if kind == "empty":
        return b""
    if kind == "garbage":
        return draw(st.binary(max_size=300))
    children = draw(st.lists(trees(raw=False), max_size=4))
    # A command without a WBXML document of its own (GetAttachment): any root will do.
    root = etree.Element(COMMANDS[command].root or "{AirSync:}Sync")
    root.extend(children)
    try:
        return wbxml.encode(root)
    except wbxml.WBXMLError:
        return b"\x03\x01\x6a\x00"


requests = st.fixed_dictionaries({
    "command": st.sampled_from(COMMAND_NAMES + ["", "Cmd\n", "Sync;"]),
    "version": st.sampled_from(["12.0", "12.1", "14.0", "14.1", "16.0", "16.1", "2.5", "", "99.9", "١٤.١"]),
    "policy": st.sampled_from([None, "0", "1", "4294967296", "²", "-1", "abc"]),
    "extra": st.dictionaries(st.sampled_from(["CollectionId", "ItemId", "LongId", "SaveInSent", "AttachmentName",
                                              "X"]), st.text(max_size=20), max_size=3),
    "content_type": st.sampled_from(["application/vnd.ms-sync.wbxml", "message/rfc822", "text/plain", ""]),
    "stranger": st.booleans(),
})


@pytest.fixture(scope="module")
def fuzz_phone(gateway: Any) -> Phone:
    return Phone(gateway, new_user(gateway))


def _device_rows(database_url: str, device: str) -> int:
    async def count() -> int:
        conn = await asyncpg.connect(database_url)
        try:
            return int(await conn.fetchval("SELECT count(*) FROM devices WHERE device_id = $1", device))
        finally:
            await conn.close()
    return asyncio.run(count())


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                   HealthCheck.too_slow])
@given(request=requests, data=st.data())
def test_no_request_gets_a_500_and_a_refused_one_changes_nothing(gateway: Any, fuzz_phone: Phone,
                                                                  request: dict[str, Any], data: st.DataObject) -> None:
    command = request["command"]
    body = data.draw(bodies(command)) if command in COMMANDS else data.draw(st.binary(max_size=100))
    device = "F" + uuid.uuid4().hex[:12] if request["stranger"] else fuzz_phone.device
    headers = {"MS-ASProtocolVersion": request["version"], "User-Agent": "fuzz"}
    if request["content_type"]:
        headers["Content-Type"] = request["content_type"]
    policy = fuzz_phone.policy_key if request["policy"] is None and not request["stranger"] else request["policy"]
    if policy is not None:
        headers["X-MS-PolicyKey"] = policy
    params = {"Cmd": command, "User": fuzz_phone.user, "DeviceId": device, "DeviceType": "Fuzz", **request["extra"]}
    if command in ("Ping", "Sync"):
        params["HeartbeatInterval"] = "60"
    try:
        answer = httpx.post(gateway.endpoint, params=params, content=body,
                            headers={k: v.encode() for k, v in headers.items()},  # raw bytes, UTF-8 and all
                            auth=(fuzz_phone.user, password(fuzz_phone.user)), timeout=5)
    except httpx.ReadTimeout:
        return  # a well-formed Ping or waiting Sync is held: that is no failure
    assert answer.status_code != 500, (command, request, body[:80], answer.text[:300])
    # Refused: any 4xx but 449, which (below 14.0) tells a phone to provision: recording the device
    # then is what Exchange does too (the admin sees a new phone).
    if request["stranger"] and answer.status_code >= 400 and answer.status_code != 449:
        assert _device_rows(gateway.database_url, device) == 0, (command, answer.status_code)


@pytest.mark.parametrize("command", ["SendMail", "SmartReply", "SmartForward"])
def test_a_12_x_mail_whose_body_is_no_mime_is_refused_not_a_500(gateway: Any, fuzz_phone: Phone, command: str) -> None:
    """What the fuzz run above found: at 12.x the body is the MIME itself, and one that is none
    (empty, no blank line after the headers) made compose.parse's error escape as a 500."""
    for body in (b"", b"no header separator"):
        answer = httpx.post(gateway.endpoint, content=body, timeout=10,
                            params={"Cmd": command, "User": fuzz_phone.user, "DeviceId": fuzz_phone.device,
                                    "DeviceType": "Fuzz", "SaveInSent": "T", "ItemId": "1:1", "CollectionId": "1"},
                            headers={"MS-ASProtocolVersion": "12.0", "Content-Type": "message/rfc822",
                                     "X-MS-PolicyKey": fuzz_phone.policy_key or ""},
                            auth=(fuzz_phone.user, password(fuzz_phone.user)))
        assert answer.status_code != 500 and answer.status_code < 600, (body, answer.status_code, answer.text[:200])
