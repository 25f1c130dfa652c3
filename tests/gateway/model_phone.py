"""A phone that behaves like the real ones when the server says "start over".

It keeps what a phone keeps (PolicyKey, FolderSync key, per-folder SyncKey
and items) and reacts to the statuses the way MS-ASCMD tells clients to:
HTTP 449 / Status 142/144 -> Provision and retry; FolderSync Status 9 ->
FolderSync from key 0; Sync Status 3 -> drop the folder's items, Sync from
key 0; Ping Status 7 -> FolderSync. The tests compare what it ends with to
the upstream: no duplicates, nothing missing.
"""

from __future__ import annotations

from collections import Counter

import httpx
from lxml import etree

import wbxml
from tests.conftest import RunningGateway
from tests.gateway.helpers import A, folder_sync, new_device_id, post, provision

F = "{FolderHierarchy:}"
E = "{Email:}"
PROVISION_AGAIN = {"142", "144"}


class ModelPhone:
    def __init__(self, gw: RunningGateway, user: str, version: str = "14.1") -> None:
        self.gw, self.user, self.version = gw, user, version
        self.device = new_device_id()
        self.policy_key: str | None = None
        self.folder_key = "0"
        self.folders: dict[str, str] = {}  # ServerId -> DisplayName
        self.keys: dict[str, str] = {}  # CollectionId -> SyncKey
        self.items: dict[str, dict[str, str]] = {}  # CollectionId -> ServerId -> Subject
        self.provisions = 0
        self.statuses: Counter[str] = Counter()  # "FolderSync 9", "Sync 3", ... seen

    def request(self, command: str, body: etree._Element) -> etree._Element:
        for _ in range(3):
            if self.policy_key is None:
                self.policy_key = provision(self.gw, self.device, user=self.user, version=self.version)
                self.provisions += 1
            answer = post(self.gw, command, body, device_id=self.device, user=self.user, version=self.version,
                          policy_key=self.policy_key)
            if answer.status_code == 449 or self._status(answer) in PROVISION_AGAIN:
                self.policy_key = None
                continue
            assert answer.status_code == 200, answer.text
            return wbxml.decode(answer.content)
        raise AssertionError(f"{command}: provisioning did not help")

    def folder_sync(self) -> None:
        tree = self.request("FolderSync", folder_sync(self.folder_key))
        status = tree.findtext(F + "Status")
        self.statuses[f"FolderSync {status}"] += 1
        if status == "9":
            self.folder_key, self.folders = "0", {}
            tree = self.request("FolderSync", folder_sync("0"))
            status = tree.findtext(F + "Status")
        assert status == "1", etree.tostring(tree)
        self.folder_key = tree.findtext(F + "SyncKey")
        for add in tree.iter(F + "Add", F + "Update"):
            self.folders[add.findtext(F + "ServerId")] = add.findtext(F + "DisplayName")
        for gone in tree.iter(F + "Delete"):
            self.folders.pop(gone.findtext(F + "ServerId"), None)

    def folder(self, name: str) -> str:
        return next(sid for sid, n in self.folders.items() if n == name)

    def sync(self, collection_id: str) -> None:
        """Sync one folder until nothing more is available, starting over when told to."""
        for _ in range(100):
            key = self.keys.get(collection_id, "0")
            root = etree.Element(A + "Sync")
            c = etree.SubElement(etree.SubElement(root, A + "Collections"), A + "Collection")
            etree.SubElement(c, A + "SyncKey").text = key
            etree.SubElement(c, A + "CollectionId").text = collection_id
            if key != "0":
                etree.SubElement(c, A + "WindowSize").text = "25"
            tree = self.request("Sync", root)
            status = tree.findtext(f".//{A}Collection/{A}Status") or tree.findtext(A + "Status")
            self.statuses[f"Sync {status}"] += 1
            if status == "3":
                self.keys[collection_id] = "0"
                self.items[collection_id] = {}  # MS-ASCMD 2.2.3.177.17: the client must start over
                continue
            assert status == "1", etree.tostring(tree)
            self.keys[collection_id] = tree.findtext(f".//{A}Collection/{A}SyncKey")
            if key == "0":
                self.items[collection_id] = {}
                continue
            self._apply(collection_id, tree)
            if tree.find(f".//{A}MoreAvailable") is None:
                return
        raise AssertionError("the folder never finished syncing")

    def ping(self, folders: list[str], heartbeat: int = 60) -> str:
        root = etree.Element("{Ping:}Ping")
        etree.SubElement(root, "{Ping:}HeartbeatInterval").text = str(heartbeat)
        out = etree.SubElement(root, "{Ping:}Folders")
        for folder_id in folders:
            f = etree.SubElement(out, "{Ping:}Folder")
            etree.SubElement(f, "{Ping:}Id").text = folder_id
            etree.SubElement(f, "{Ping:}Class").text = "Email"
        status = self.request("Ping", root).findtext("{Ping:}Status")
        self.statuses[f"Ping {status}"] += 1
        return status

    def subjects(self, collection_id: str) -> Counter[str]:
        return Counter(self.items.get(collection_id, {}).values())

    def _apply(self, collection_id: str, tree: etree._Element) -> None:
        items = self.items.setdefault(collection_id, {})
        commands = tree.find(f".//{A}Collection/{A}Commands")
        for cmd in commands if commands is not None else ():
            server_id = cmd.findtext(A + "ServerId")
            if cmd.tag == A + "Add":
                assert server_id not in items, f"Add of {server_id}, which the phone has"
                items[server_id] = cmd.findtext(f"{A}ApplicationData/{E}Subject")
            elif cmd.tag in (A + "Delete", A + "SoftDelete"):
                items.pop(server_id, None)

    @staticmethod
    def _status(answer: httpx.Response) -> str | None:
        if answer.status_code != 200 or not answer.content:
            return None
        tree = wbxml.decode(answer.content)
        # The common statuses (MS-ASCMD 2.2.2) sit right under the command's root.
        return next((c.text for c in tree if etree.QName(c).localname == "Status"), None)
