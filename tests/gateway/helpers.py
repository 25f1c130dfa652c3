"""Talking to a running gateway: raw MS-ASHTTP requests, pyactivesync, and
direct JMAP calls to the upstream (to change things behind the phone's back)."""

from __future__ import annotations

import asyncio
import base64
import json
import struct
import uuid
from typing import Any

import asyncpg
import httpx
from lxml import etree
from pyactivesync import Client

import wbxml
from tests.conftest import RunningGateway

PASSWORDS = {"alice@example.com": "alice", "bob@example.com": "bob"}


def new_device_id() -> str:
    return "T" + uuid.uuid4().hex[:20]


def pyactivesync_client(gw: RunningGateway, device_id: str, user: str = "alice@example.com") -> Client:
    client = Client("unused", user, PASSWORDS[user], device_id=device_id, timeout=60)
    # pyactivesync always speaks HTTPS; the test gateway listens on plain HTTP.
    client._transport.base_url = gw.endpoint
    return client


def post(gw: RunningGateway, command: str, body: etree._Element | bytes | None, *, device_id: str,
         user: str = "alice@example.com", password: str | None = None, version: str = "14.1",
         policy_key: str | None = None, query_user: str | None = None) -> httpx.Response:
    """A plain-query POST, as most phones send it."""
    headers = {"MS-ASProtocolVersion": version, "Content-Type": "application/vnd.ms-sync.wbxml",
               "User-Agent": "eas-gateway-tests/1"}
    if policy_key is not None:
        headers["X-MS-PolicyKey"] = policy_key
    params = {"Cmd": command, "User": query_user or user, "DeviceId": device_id, "DeviceType": "TestPhone"}
    data = wbxml.encode(body) if isinstance(body, etree._Element) else (body or b"")
    return httpx.post(gw.endpoint, params=params, content=data, headers=headers,
                      auth=(user, password or PASSWORDS[user]), timeout=60)


def base64_query(command_code: int, *, device_id: str, user: str, version: int = 141,
                 policy_key: int | None = None, device_type: str = "TestPhone") -> str:
    """MS-ASHTTP 2.2.1.1.1.1: the packed query Exchange-era clients send."""
    out = bytes([version, command_code]) + struct.pack("<H", 0x0409)
    out += bytes([len(device_id)]) + device_id.encode()
    out += b"\x04" + struct.pack("<I", policy_key) if policy_key is not None else b"\x00"
    out += bytes([len(device_type)]) + device_type.encode()
    out += bytes([8, len(user)]) + user.encode()
    return base64.b64encode(out).decode()


def provision(gw: RunningGateway, device_id: str, user: str = "alice@example.com", version: str = "14.1") -> str:
    """Both Provision phases over raw WBXML; the final PolicyKey."""
    def request(key: str | None) -> etree._Element:
        root = etree.Element("{Provision:}Provision")
        policy = etree.SubElement(etree.SubElement(root, "{Provision:}Policies"), "{Provision:}Policy")
        etree.SubElement(policy, "{Provision:}PolicyType").text = "MS-EAS-Provisioning-WBXML"
        if key is not None:
            etree.SubElement(policy, "{Provision:}PolicyKey").text = key
            etree.SubElement(policy, "{Provision:}Status").text = "1"
        return root

    first = wbxml.decode(post(gw, "Provision", request(None), device_id=device_id, user=user,
                              version=version).content)
    temporary = first.findtext(".//{Provision:}PolicyKey")
    second = wbxml.decode(post(gw, "Provision", request(temporary), device_id=device_id, user=user,
                               version=version, policy_key=temporary).content)
    final = second.findtext(".//{Provision:}PolicyKey")
    assert final and final != temporary
    return final


def folder_sync(key: str) -> etree._Element:
    root = etree.Element("{FolderHierarchy:}FolderSync")
    etree.SubElement(root, "{FolderHierarchy:}SyncKey").text = key
    return root


def jmap(gw: RunningGateway, calls: list[list[Any]], user: str = "alice@example.com") -> list[list[Any]]:
    """JMAP method calls straight to the upstream, as another client of the user."""
    auth = (user, PASSWORDS[user])
    session = httpx.get(gw.upstream + "/.well-known/jmap", auth=auth, follow_redirects=True).json()
    for call in calls:
        call[1].setdefault("accountId", session["primaryAccounts"]["urn:ietf:params:jmap:mail"])
    response = httpx.post(httpx.URL(gw.upstream).join(session["apiUrl"]), auth=auth, json={
        "using": ["urn:ietf:params:jmap:core", "urn:ietf:params:jmap:mail"], "methodCalls": calls})
    response.raise_for_status()
    return response.json()["methodResponses"]


def device_information(gw: RunningGateway, device_id: str) -> dict[str, str]:
    """What the gateway stored of the device's DeviceInformation."""
    async def fetch() -> dict[str, str]:
        conn = await asyncpg.connect(gw.database_url)
        try:
            raw = await conn.fetchval("SELECT device_information FROM devices WHERE device_id = $1", device_id)
            return dict(json.loads(raw))
        finally:
            await conn.close()

    return asyncio.run(fetch())
