"""A phone for the chaos run: raw EAS 14.1 over WBXML, one folder of one class, keeping a
replica the way a phone does, resending what failed and what it lost the answer to.

Every answer it acts on is an answer to a request it may have sent several times: a lost
answer (``lose``) makes it send the same request again, with the same SyncKey and the same
commands, as a phone does after a dropped connection. The gateway must replay, not redo.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
from lxml import etree

import wbxml
from eas_gateway.items import timezone

A = "{AirSync:}"
F = "{FolderHierarchy:}"
FIELDS = {  # what the phone keeps of each item, by class: (namespace, tag)
    "mail": (("{Email:}", "Subject"), ("{Email:}", "Read")),
    "contacts": (("{Contacts:}", "FirstName"), ("{Contacts:}", "LastName"), ("{Contacts:}", "JobTitle")),
    "calendar": (("{Calendar:}", "Subject"), ("{Calendar:}", "Location")),
}
FOLDER_TYPES = {"mail": "2", "contacts": "9", "calendar": "8"}
RETRYABLE = {500, 502, 503, 504}


class GaveUp(AssertionError):
    pass


class ChaosPhone:
    def __init__(self, url: str, user: str, secret: str, kind: str, rng: random.Random, *, lose: float) -> None:
        self.url, self.user, self.secret, self.kind = url, user, secret, kind
        self.rng, self.lose = rng, lose
        self.device = f"CHAOS{kind.upper()}{rng.randrange(10**8)}"
        self.policy_key = "0"
        self.key = "0"
        self.folder = ""
        self.items: dict[str, dict[str, str]] = {}
        self.stats: Counter[str] = Counter()
        self.made = 0

    # -- transport ---------------------------------------------------------------------------------------------------

    def request(self, command: str, body: etree._Element) -> etree._Element:
        data = wbxml.encode(body)
        for _ in range(600):
            try:
                answer = httpx.post(self.url + "/Microsoft-Server-ActiveSync", content=data, timeout=60,
                                    params={"Cmd": command, "User": self.user, "DeviceId": self.device,
                                            "DeviceType": "ChaosPhone"},
                                    headers={"MS-ASProtocolVersion": "14.1", "X-MS-PolicyKey": self.policy_key,
                                             "Content-Type": "application/vnd.ms-sync.wbxml"},
                                    auth=(self.user, self.secret))
            except httpx.TransportError:
                self.stats["no answer (gateway down)"] += 1
                time.sleep(0.2)
                continue
            if answer.status_code in RETRYABLE:
                self.stats[f"HTTP {answer.status_code}"] += 1
                time.sleep(0.1)
                continue
            if answer.status_code == 449 or (answer.status_code == 200 and self._provision_again(answer)):
                self.stats["provision again"] += 1
                self.provision()
                continue
            if answer.status_code != 200:
                raise GaveUp(f"{command}: HTTP {answer.status_code}: {answer.text}")
            if self.rng.random() < self.lose:
                self.stats["answer lost, resent"] += 1
                continue
            return wbxml.decode(answer.content) if answer.content else etree.Element(A + "Sync")
        raise GaveUp(f"{command}: no answer after 600 tries")

    @staticmethod
    def _provision_again(answer: httpx.Response) -> bool:
        if not answer.content:
            return False
        tree = wbxml.decode(answer.content)
        return any(etree.QName(c).localname == "Status" and c.text in ("142", "144") for c in tree)

    def provision(self) -> None:
        self.policy_key = "0"
        for phase in ("first", "second"):
            root = etree.Element("{Provision:}Provision")
            policy = etree.SubElement(etree.SubElement(root, "{Provision:}Policies"), "{Provision:}Policy")
            etree.SubElement(policy, "{Provision:}PolicyType").text = "MS-EAS-Provisioning-WBXML"
            if phase == "second":
                etree.SubElement(policy, "{Provision:}PolicyKey").text = self.policy_key
                etree.SubElement(policy, "{Provision:}Status").text = "1"
            tree = self.request("Provision", root)
            self.policy_key = tree.findtext(".//{Provision:}PolicyKey") or "0"

    def start(self) -> None:
        self.provision()
        root = etree.Element(F + "FolderSync")
        etree.SubElement(root, F + "SyncKey").text = "0"
        tree = self.request("FolderSync", root)
        wanted = FOLDER_TYPES[self.kind]
        self.folder = next(a.findtext(F + "ServerId") for a in tree.iter(F + "Add") if a.findtext(F + "Type") == wanted)
        self.settle()

    # -- what the phone does -----------------------------------------------------------------------------------------

    def act(self, run: int) -> str:
        """One seeded operation: a change, a delete, an add (contacts, calendar) or a plain sync."""
        choices = ["sync", "change", "delete"] + (["add", "add"] if self.kind != "mail" else ["change"])
        what = self.rng.choice(choices)
        if what in ("change", "delete") and not self.items:
            what = "add" if self.kind != "mail" else "sync"
        commands = etree.Element(A + "Commands")
        if what == "add":
            self.made += 1
            fields = self._new_fields(f"{self.kind[:3]}-{run}-{self.made}")
            add = etree.SubElement(commands, A + "Add")
            etree.SubElement(add, A + "ClientId").text = f"c{self.made}"
            add.append(self._data(fields))
        elif what == "change":
            server_id = self.rng.choice(sorted(self.items))
            fields = dict(self.items[server_id])
            if self.kind == "mail":
                fields = {"Read": "0" if fields.get("Read") == "1" else "1"}
            elif self.kind == "contacts":
                fields["JobTitle"] = f"title-{run}"
            else:
                fields["Location"] = f"room-{run}"
            change = etree.SubElement(commands, A + "Change")
            etree.SubElement(change, A + "ServerId").text = server_id
            change.append(self._data(fields))
        elif what == "delete":
            server_id = self.rng.choice(sorted(self.items))
            etree.SubElement(etree.SubElement(commands, A + "Delete"), A + "ServerId").text = server_id
        self.sync(commands if len(commands) else None)
        return what

    def settle(self) -> None:
        """Sync until the gateway has nothing more to send."""
        for _ in range(200):
            if not self.sync(None):
                return
        raise GaveUp("the folder never settled")

    def sync(self, commands: etree._Element | None) -> bool:
        """One Sync (with ``commands``); True when more is to come (MoreAvailable, or changes sent)."""
        root = etree.Element(A + "Sync")
        c = etree.SubElement(etree.SubElement(root, A + "Collections"), A + "Collection")
        etree.SubElement(c, A + "SyncKey").text = self.key
        etree.SubElement(c, A + "CollectionId").text = self.folder
        if self.key != "0":
            etree.SubElement(c, A + "GetChanges").text = "1"
            etree.SubElement(c, A + "WindowSize").text = "50"
            if commands is not None:
                c.append(commands)
        tree = self.request("Sync", root)
        status = tree.findtext(f".//{A}Collection/{A}Status") or tree.findtext(A + "Status")
        if status == "3":  # MS-ASCMD 2.2.3.177.17: start over
            self.stats["Sync 3 (start over)"] += 1
            self.key, self.items = "0", {}
            return True
        if status is None and tree.find(f".//{A}Collection") is None:
            return False  # the empty answer: nothing changed
        if status != "1":
            raise GaveUp(f"Sync Status {status}: {etree.tostring(tree)!r}")
        first = self.key == "0"
        self.key = tree.findtext(f".//{A}Collection/{A}SyncKey") or self.key
        if first:
            self.items = {}
            return True
        self._responses(tree, commands)
        incoming = tree.find(f".//{A}Collection/{A}Commands")
        for cmd in incoming if incoming is not None else ():
            server_id = cmd.findtext(A + "ServerId") or ""
            name = etree.QName(cmd).localname
            if name == "Add":
                if server_id in self.items:
                    raise GaveUp(f"the gateway added {server_id} twice")
                self.items[server_id] = self._fields(cmd)
            elif name == "Change":
                self.items.setdefault(server_id, {}).update(self._fields(cmd))
            elif name in ("Delete", "SoftDelete"):
                self.items.pop(server_id, None)
        return tree.find(f".//{A}MoreAvailable") is not None or incoming is not None

    def _responses(self, tree: etree._Element, commands: etree._Element | None) -> None:
        sent = {} if commands is None else {
            (cmd.findtext(A + "ClientId") or cmd.findtext(A + "ServerId")): cmd for cmd in commands}
        answered = tree.find(f".//{A}Collection/{A}Responses")
        statuses = {(r.findtext(A + "ClientId") or r.findtext(A + "ServerId")): r for r in
                    (answered if answered is not None else ())}
        for ref, cmd in sent.items():
            name = etree.QName(cmd).localname
            response = statuses.get(ref)
            status = response.findtext(A + "Status") if response is not None else "1"
            self.stats[f"{name} {status}"] += 1
            if name == "Add" and status == "1" and response is not None:
                self.items[response.findtext(A + "ServerId") or ""] = self._fields(cmd)
            elif name == "Change" and status == "1":
                self.items.setdefault(ref, {}).update(self._fields(cmd))
            elif name == "Change" and status == "8":
                self.items.pop(ref, None)  # gone upstream meanwhile
            elif name == "Delete":
                self.items.pop(ref, None)

    def values(self) -> Counter[tuple[str, ...]]:
        names = [tag for _, tag in FIELDS[self.kind]]
        return Counter(tuple(item.get(n, "") for n in names) for item in self.items.values())

    # -- items -------------------------------------------------------------------------------------------------------

    def _new_fields(self, name: str) -> dict[str, str]:
        if self.kind == "contacts":
            return {"FirstName": name, "LastName": "Chaos", "JobTitle": "new"}
        return {"Subject": name, "Location": "lobby"}

    def _data(self, fields: dict[str, str]) -> etree._Element:
        data = etree.Element(A + "ApplicationData")
        namespace = FIELDS[self.kind][0][0]
        if self.kind == "calendar" and "Subject" in fields:
            start = datetime(2027, 1, 4, 9, tzinfo=UTC) + timedelta(hours=self.rng.randrange(2000))
            for tag, text in (("Timezone", _UTC_BLOB), ("AllDayEvent", "0"),
                              ("StartTime", start.strftime("%Y%m%dT%H%M%SZ")),
                              ("EndTime", (start + timedelta(hours=1)).strftime("%Y%m%dT%H%M%SZ")),
                              ("BusyStatus", "2"), ("Sensitivity", "0"), ("MeetingStatus", "0")):
                etree.SubElement(data, namespace + tag).text = text
        for tag, text in fields.items():
            etree.SubElement(data, namespace + tag).text = text
        return data

    def _fields(self, element: etree._Element) -> dict[str, str]:
        data = element.find(A + "ApplicationData")
        if data is None:
            return {}
        return {tag: data.findtext(ns + tag) or "" for ns, tag in FIELDS[self.kind] if data.find(ns + tag) is not None}


# MS-ASDTYPE 2.6.4: the blob of UTC (no daylight time).
_UTC_BLOB = timezone.for_zone(ZoneInfo("UTC"), datetime(2027, 1, 1, tzinfo=UTC)).to_base64()
