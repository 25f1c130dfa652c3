"""Talking to a running gateway: raw MS-ASHTTP requests, pyactivesync, and
direct JMAP calls to the upstream (to change things behind the phone's back)."""

from __future__ import annotations

import asyncio
import base64
import email.policy
import json
import smtplib
import struct
import subprocess
import threading
import uuid
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Any

import asyncpg
import httpx
from lxml import etree
from pyactivesync import Client

import wbxml
from tests.conftest import RADICALE_USERS, ROOT, RunningGateway


def password(user: str) -> str:
    """Test users' passwords are their names (scripts/cyrus-upstream.sh)."""
    return user.split("@")[0]


def new_user(gw: RunningGateway) -> str:
    """A fresh upstream user with an empty mailbox, so that tests do not see each other's mail."""
    name = "u" + uuid.uuid4().hex[:10]
    port = gw.upstream.rsplit(":", 1)[1]
    subprocess.run(["bash", str(ROOT / "scripts" / "cyrus-upstream.sh"), "adduser", str(gw.cyrus_dir), port, name],
                   check=True, timeout=60, capture_output=True)
    if RADICALE_USERS.exists():
        with RADICALE_USERS.open("a") as users:
            users.write(f"{name}@example.com:{name}\n")
    return f"{name}@example.com"


def deliver(gw: RunningGateway, user: str, messages: list[EmailMessage]) -> None:
    """Deliver mail the way an MTA does: LMTP into the user's INBOX."""
    with smtplib.LMTP(str(gw.cyrus_dir / "socket" / "lmtp")) as lmtp:
        for message in messages:
            refused = lmtp.send_message(message, "sender@example.org", [user])
            assert not refused, refused


def new_device_id() -> str:
    return "T" + uuid.uuid4().hex[:20]


def pyactivesync_client(gw: RunningGateway, device_id: str, user: str = "alice@example.com") -> Client:
    client = Client("unused", user, password(user), device_id=device_id, timeout=60)
    # pyactivesync always speaks HTTPS; the test gateway listens on plain HTTP.
    client._transport.base_url = gw.endpoint
    return client


def post(gw: RunningGateway, command: str, body: etree._Element | bytes | None, *, device_id: str,
         user: str = "alice@example.com", secret: str | None = None, version: str = "14.1",
         policy_key: str | None = None, query_user: str | None = None, params: dict[str, str] | None = None,
         content_type: str = "application/vnd.ms-sync.wbxml", token: str | None = None) -> httpx.Response:
    """A plain-query POST, as most phones send it (``params``: more query parameters; ``token``:
    an OAuth bearer token instead of the password)."""
    headers = {"MS-ASProtocolVersion": version, "Content-Type": content_type,
               "User-Agent": "eas-gateway-tests/1"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    if policy_key is not None:
        headers["X-MS-PolicyKey"] = policy_key
    params = {"Cmd": command, "User": query_user or user, "DeviceId": device_id, "DeviceType": "TestPhone",
              **(params or {})}
    data = wbxml.encode(body) if isinstance(body, etree._Element) else (body or b"")
    return httpx.post(gw.endpoint, params=params, content=data, headers=headers,
                      auth=None if token is not None else (user, secret or password(user)), timeout=60)


def base64_query(command_code: int, *, device_id: str, user: str, version: int = 141,
                 policy_key: int | None = None, device_type: str = "TestPhone") -> str:
    """MS-ASHTTP 2.2.1.1.1.1: the packed query Exchange-era clients send."""
    out = bytes([version, command_code]) + struct.pack("<H", 0x0409)
    out += bytes([len(device_id)]) + device_id.encode()
    out += b"\x04" + struct.pack("<I", policy_key) if policy_key is not None else b"\x00"
    out += bytes([len(device_type)]) + device_type.encode()
    out += bytes([8, len(user)]) + user.encode()
    return base64.b64encode(out).decode()


def provision(gw: RunningGateway, device_id: str, user: str = "alice@example.com", version: str = "14.1",
              token: str | None = None) -> str:
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
                              version=version, token=token).content)
    temporary = first.findtext(".//{Provision:}PolicyKey")
    second = wbxml.decode(post(gw, "Provision", request(temporary), device_id=device_id, user=user,
                               version=version, policy_key=temporary, token=token).content)
    final = second.findtext(".//{Provision:}PolicyKey")
    assert final and final != temporary
    return final


def ping_request(folder_id: str, interval: int, folder_class: str = "Email") -> etree._Element:
    """A Ping on one folder."""
    root = etree.Element("{Ping:}Ping")
    etree.SubElement(root, "{Ping:}HeartbeatInterval").text = str(interval)
    folder = etree.SubElement(etree.SubElement(root, "{Ping:}Folders"), "{Ping:}Folder")
    etree.SubElement(folder, "{Ping:}Id").text = folder_id
    etree.SubElement(folder, "{Ping:}Class").text = folder_class
    return root


def folder_sync(key: str) -> etree._Element:
    root = etree.Element("{FolderHierarchy:}FolderSync")
    etree.SubElement(root, "{FolderHierarchy:}SyncKey").text = key
    return root


def jmap(gw: RunningGateway, calls: list[list[Any]], user: str = "alice@example.com") -> list[list[Any]]:
    """JMAP method calls straight to the upstream, as another client of the user."""
    auth = (user, password(user))
    session = httpx.get(gw.upstream + "/.well-known/jmap", auth=auth, follow_redirects=True).json()
    for call in calls:
        call[1].setdefault("accountId", session["primaryAccounts"]["urn:ietf:params:jmap:mail"])
    response = httpx.post(httpx.URL(gw.upstream).join(session["apiUrl"]), auth=auth, json={
        "using": ["urn:ietf:params:jmap:core", "urn:ietf:params:jmap:mail"], "methodCalls": calls})
    response.raise_for_status()
    return response.json()["methodResponses"]


def device_rows(gw: RunningGateway, device_id: str) -> int:
    """The devices table's rows of ``device_id`` (0: the gateway never touched the device)."""
    async def count() -> int:
        conn = await asyncpg.connect(gw.database_url)
        try:
            return int(await conn.fetchval("SELECT count(*) FROM devices WHERE device_id = $1", device_id))
        finally:
            await conn.close()

    return asyncio.run(count())


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


A = "{AirSync:}"
B = "{AirSyncBase:}"


def emails(gw: RunningGateway, user: str) -> dict[str, dict[str, Any]]:
    """subject -> the user's JMAP Email (id, keywords, mailboxIds, blobId), read upstream."""
    [(_, _, _), (_, got, _)] = jmap(gw, [
        ["Email/query", {"limit": 1000}, "q"],
        ["Email/get", {"#ids": {"resultOf": "q", "name": "Email/query", "path": "/ids"},
                       "properties": ["subject", "keywords", "mailboxIds", "blobId"]}, "g"]], user=user)
    return {e["subject"]: e for e in got["list"]}


def relayed(gw: RunningGateway, subject: str) -> list[tuple[dict[str, Any], bytes]]:
    """(envelope, message) of everything the upstream handed to the SMTP relay with this
    subject (scripts/smtp-relay.py keeps every message)."""
    out = []
    for meta in sorted((gw.cyrus_dir / "sent").glob("*.json"), key=lambda p: int(p.stem)):
        raw = meta.with_suffix(".eml").read_bytes()
        parsed = BytesParser(policy=email.policy.default).parsebytes(raw)
        if parsed["subject"] == subject:
            out.append((json.loads(meta.read_text()), raw))
    return out


def message(subject: str, *, text: str | None = None, html: str | None = None,
            attachments: list[tuple[str, str, bytes]] = (), sender: str = "Sender <sender@example.org>",
            to: str = "someone@example.com") -> EmailMessage:
    """A test message: plain and/or HTML body, attachments as (name, type, bytes)."""
    m = EmailMessage()
    m["From"], m["To"], m["Subject"] = sender, to, subject
    m["Message-ID"] = f"<{uuid.uuid4().hex}@example.org>"
    if text is not None:
        m.set_content(text)
    if html is not None:
        if text is None:
            m.set_content(html, subtype="html")
        else:
            m.add_alternative(html, subtype="html")
    for name, content_type, data in attachments:
        maintype, subtype = content_type.split("/")
        m.add_attachment(data, maintype=maintype, subtype=subtype, filename=name)
    return m


class Phone:
    """A provisioned device speaking raw WBXML (no client library), for one user."""

    def __init__(self, gw: RunningGateway, user: str, version: str = "14.1", token: str | None = None) -> None:
        self.gw, self.user, self.version, self.token = gw, user, version, token
        self.device = new_device_id()
        self.policy_key = provision(gw, self.device, user=user, version=version, token=token)
        answer = self.post("FolderSync", folder_sync("0"))
        tree = wbxml.decode(answer.content)
        F = "{FolderHierarchy:}"
        self.folders = {a.findtext(F + "DisplayName"): a.findtext(F + "ServerId") for a in tree.iter(F + "Add")}
        self.types = {a.findtext(F + "Type"): a.findtext(F + "ServerId") for a in tree.iter(F + "Add")}

    @property
    def inbox(self) -> str:
        return self.types["2"]

    def post(self, command: str, body: etree._Element | bytes | None, **more: Any) -> httpx.Response:
        more.setdefault("token", self.token)
        answer = post(self.gw, command, body, device_id=self.device, user=self.user, version=self.version,
                      policy_key=self.policy_key, **more)
        assert answer.status_code == 200, answer.text
        return answer

    def sync(self, *collections: etree._Element, **top: str) -> etree._Element | None:
        root = etree.Element(A + "Sync")
        if collections:
            parent = etree.SubElement(root, A + "Collections")
            for c in collections:
                parent.append(c)
        for name, value in top.items():
            etree.SubElement(root, A + name).text = value
        content = self.post("Sync", root).content
        return wbxml.decode(content) if content else None

    def sync_all(self, collection_id: str, *, window: int = 100, options: etree._Element | None = None,
                 ) -> tuple[str, list[etree._Element]]:
        """Key 0, then Sync until no MoreAvailable; (last key, every Add)."""
        tree = self.sync(collection(collection_id, "0", options=options))
        key = tree.findtext(f".//{A}SyncKey")
        adds: list[etree._Element] = []
        for _ in range(1000):
            tree = self.sync(collection(collection_id, key, window=window))
            key = tree.findtext(f".//{A}SyncKey")
            assert tree.findtext(f".//{A}Status") == "1"
            adds.extend(tree.iter(A + "Add"))
            if tree.find(f".//{A}MoreAvailable") is None:
                return key, adds
        raise AssertionError("MoreAvailable forever")


def hold_pings(phones: list[Phone], interval: int = 600) -> tuple[list[threading.Thread], list[Any]]:
    """Each phone's Ping (its inbox), on a thread of its own, started: the threads and the list
    their answers (httpx.Response) or errors go to as they end."""
    answers: list[Any] = []

    def hold(phone: Phone) -> None:
        try:
            answers.append(phone.post("Ping", ping_request(phone.inbox, interval)))
        except BaseException as exc:  # the caller's assertions say what went wrong
            answers.append(exc)

    threads = [threading.Thread(target=hold, args=(p,)) for p in phones]
    for t in threads:
        t.start()
    return threads, answers


def collection(collection_id: str, key: str, *, window: int | None = None, options: etree._Element | None = None,
               get_changes: bool | None = None, commands: etree._Element | None = None) -> etree._Element:
    el = etree.Element(A + "Collection")
    etree.SubElement(el, A + "SyncKey").text = key
    etree.SubElement(el, A + "CollectionId").text = collection_id
    if get_changes is not None:
        etree.SubElement(el, A + "GetChanges").text = "1" if get_changes else "0"
    if window is not None:
        etree.SubElement(el, A + "WindowSize").text = str(window)
    if options is not None:
        el.append(options)
    if commands is not None:
        el.append(commands)
    return el


def options(*, filter_type: int | None = None, body: list[tuple[int, int | None, bool]] = (),
            mime_support: int | None = None, preview: int | None = None) -> etree._Element:
    """Sync Options: BodyPreference as (Type, TruncationSize, AllOrNone)."""
    el = etree.Element(A + "Options")
    if filter_type is not None:
        etree.SubElement(el, A + "FilterType").text = str(filter_type)
    for body_type, truncation, all_or_none in body:
        pref = etree.SubElement(el, B + "BodyPreference")
        etree.SubElement(pref, B + "Type").text = str(body_type)
        if truncation is not None:
            etree.SubElement(pref, B + "TruncationSize").text = str(truncation)
        if all_or_none:
            etree.SubElement(pref, B + "AllOrNone").text = "1"
        if preview is not None:
            etree.SubElement(pref, B + "Preview").text = str(preview)
    if mime_support is not None:
        etree.SubElement(el, A + "MIMESupport").text = str(mime_support)
    return el
