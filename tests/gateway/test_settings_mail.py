"""Settings Oof and UserInformation, and ItemOperations EmptyFolderContents,
over raw WBXML at 14.1 against the real Cyrus (and, for the Oof mapping the
Debian Cyrus cannot show, a JMAP upstream faked with httpx.MockTransport)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from lxml import etree

import wbxml
from tests.conftest import RunningGateway, running_gateway
from tests.gateway.helpers import A, Phone, collection, deliver, jmap, message, new_user
from usm.upstream.jmap import JMAPUpstream

pytestmark = [pytest.mark.postgres, pytest.mark.upstream]
S = "{Settings:}"
I = "{ItemOperations:}"


def _settings(*parts: etree._Element) -> etree._Element:
    root = etree.Element(S + "Settings")
    for part in parts:
        root.append(part)
    return root


def _oof_get() -> etree._Element:
    oof = etree.Element(S + "Oof")
    etree.SubElement(etree.SubElement(oof, S + "Get"), S + "BodyType").text = "Text"
    return oof


def _oof_set(state: int, reply: str, *, start: str | None = None, end: str | None = None) -> etree._Element:
    oof = etree.Element(S + "Oof")
    put = etree.SubElement(oof, S + "Set")
    etree.SubElement(put, S + "OofState").text = str(state)
    if start:
        etree.SubElement(put, S + "StartTime").text = start
        etree.SubElement(put, S + "EndTime").text = end
    for audience in ("AppliesToInternal", "AppliesToExternalKnown"):
        m = etree.SubElement(put, S + "OofMessage")
        etree.SubElement(m, S + audience)
        etree.SubElement(m, S + "Enabled").text = "1"
        etree.SubElement(m, S + "ReplyMessage").text = reply
        etree.SubElement(m, S + "BodyType").text = "Text"
    return oof


def test_user_information_lists_the_identities(gateway: RunningGateway) -> None:
    user = new_user(gateway)
    for version in ("14.1", "12.1"):
        phone = Phone(gateway, user, version=version)
        tree = wbxml.decode(phone.post("Settings", _settings(
            etree.fromstring('<S:UserInformation xmlns:S="Settings:"><S:Get/></S:UserInformation>'))).content)
        assert tree.findtext(f"{S}UserInformation/{S}Status") == "1"
        assert [a.text for a in tree.iter(S + "SmtpAddress")] == [user]
        if version == "14.1":
            assert tree.findtext(f".//{S}Account/{S}EmailAddresses/{S}PrimarySmtpAddress") == user


def test_oof_against_cyrus_3_6_answers_status_4_and_the_rest_of_settings_works(gateway: RunningGateway) -> None:
    # Debian's Cyrus 3.6 drops the connection on VacationResponse/get and /set
    # (httpd segfaults): the phone gets "server unavailable" for Oof only.
    user = new_user(gateway)
    phone = Phone(gateway, user)
    info = etree.fromstring('<S:UserInformation xmlns:S="Settings:"><S:Get/></S:UserInformation>')
    tree = wbxml.decode(phone.post("Settings", _settings(_oof_get(), info)).content)
    assert tree.findtext(f"{S}Status") == "1"
    assert tree.findtext(f"{S}Oof/{S}Status") == "4"
    assert tree.findtext(f"{S}UserInformation/{S}Status") == "1"


class _Vacation:
    """A JMAP server's VacationResponse in memory, everything else passed to Cyrus."""

    def __init__(self, cyrus: str) -> None:
        self.cyrus = httpx.Client(base_url=cyrus)
        self.singleton: dict[str, Any] = {"id": "singleton", "isEnabled": False, "fromDate": None, "toDate": None,
                                          "subject": None, "textBody": None, "htmlBody": None}
        self.requests: list[list[Any]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.method == "POST" and request.url.path.startswith("/jmap"):
            body = json.loads(request.content)
            calls = body["methodCalls"]
            if all(c[0].startswith("VacationResponse/") for c in calls):
                assert "urn:ietf:params:jmap:vacationresponse" in body["using"]
                out = []
                for name, args, tag in calls:
                    self.requests.append([name, args])
                    if name == "VacationResponse/get":
                        out.append([name, {"accountId": args["accountId"], "state": "1",
                                           "list": [dict(self.singleton)], "notFound": []}, tag])
                    else:
                        self.singleton.update(args["update"]["singleton"])
                        out.append([name, {"accountId": args["accountId"], "updated": {"singleton": None}}, tag])
                return httpx.Response(200, json={"methodResponses": out, "sessionState": "0"})
        answer = self.cyrus.request(request.method, request.url.raw_path.decode(), content=request.content,
                                    headers={k: v for k, v in request.headers.items()
                                             if k.lower() in ("authorization", "content-type", "accept")})
        headers = {k: v for k, v in answer.headers.items() if k.lower() in ("content-type", "location")}
        return httpx.Response(answer.status_code, headers=headers, content=answer.content)


def test_oof_set_and_get_map_to_vacation_response(gateway: RunningGateway) -> None:
    fake = _Vacation(gateway.upstream)
    upstream = JMAPUpstream(gateway.upstream, transport=httpx.MockTransport(fake))
    user = new_user(gateway)
    with fake.cyrus, running_gateway(gateway.upstream, gateway.database_url, upstream=upstream) as gw:
        phone = Phone(gw, user)
        tree = wbxml.decode(phone.post("Settings", _settings(_oof_set(
            2, "Bin im Urlaub – zurück am 3.", start="2026-12-20T00:00:00.000Z",
            end="2027-01-03T00:00:00.000Z"))).content)
        assert tree.findtext(f"{S}Oof/{S}Status") == "1"
        assert fake.singleton["isEnabled"] is True and fake.singleton["textBody"] == "Bin im Urlaub – zurück am 3."
        assert (fake.singleton["fromDate"], fake.singleton["toDate"]) == \
            ("2026-12-20T00:00:00Z", "2027-01-03T00:00:00Z")
        get = wbxml.decode(phone.post("Settings", _settings(_oof_get())).content).find(f"{S}Oof/{S}Get")
        assert get.findtext(S + "OofState") == "2" and get.findtext(S + "StartTime") == "2026-12-20T00:00:00.000Z"
        assert {m.findtext(S + "ReplyMessage") for m in get.iter(S + "OofMessage")} == {"Bin im Urlaub – zurück am 3."}
        assert len(list(get.iter(S + "OofMessage"))) == 3
        # Off again; bad input changes nothing.
        assert wbxml.decode(phone.post("Settings", _settings(_oof_set(0, ""))).content).findtext(
            f"{S}Oof/{S}Status") == "1"
        assert fake.singleton["isEnabled"] is False
        before = dict(fake.singleton)
        bad = _oof_set(2, "x", start="2027-01-03T00:00:00.000Z", end="2026-12-20T00:00:00.000Z")
        assert wbxml.decode(phone.post("Settings", _settings(bad)).content).findtext(f"{S}Oof/{S}Status") == "5"
        assert fake.singleton == before


def test_empty_folder_contents_with_and_without_subfolders(gateway: RunningGateway) -> None:
    user = new_user(gateway)
    deliver(gateway, user, [message(f"junk {i}") for i in range(5)])
    [(_, boxes, _)] = jmap(gateway, [["Mailbox/get", {"ids": None}, "0"]], user=user)
    roles = {m["role"]: m["id"] for m in boxes["list"] if m["role"]}
    [(_, query, _)] = jmap(gateway, [["Email/query", {"filter": {"inMailbox": roles["inbox"]}}, "0"]], user=user)
    # Everything to Trash; one of them also filed in Archive; a subfolder of Trash.
    jmap(gateway, [["Email/set", {"update": {
        uid: {"mailboxIds": {roles["trash"]: True, **({roles["archive"]: True} if n == 0 else {})}}
        for n, uid in enumerate(query["ids"])}}, "0"],
        ["Mailbox/set", {"create": {"s": {"name": "Old", "parentId": roles["trash"]}}}, "1"]], user=user)
    phone = Phone(gateway, user)
    trash = phone.types["4"]
    key, adds = phone.sync_all(trash)
    assert len(adds) == 5

    def empty(sub: bool) -> etree._Element:
        root = etree.Element(I + "ItemOperations")
        op = etree.SubElement(root, I + "EmptyFolderContents")
        etree.SubElement(op, A + "CollectionId").text = trash
        if sub:
            etree.SubElement(etree.SubElement(op, I + "Options"), I + "DeleteSubFolders")
        return wbxml.decode(phone.post("ItemOperations", root).content)

    tree = empty(sub=False)
    assert tree.findtext(f".//{I}EmptyFolderContents/{I}Status") == "1"
    [(_, left, _)] = jmap(gateway, [["Email/query", {}, "0"]], user=user)
    assert len(left["ids"]) == 1  # the one also in Archive stays there
    names = {m["name"] for m in jmap(gateway, [["Mailbox/get", {"ids": None}, "0"]], user=user)[0][1]["list"]}
    assert "Old" in names
    # The phone's Trash learns it through Sync: five Deletes.
    tree = phone.sync(collection(trash, key))
    assert len(list(tree.iter(A + "Delete"))) == 5
    assert empty(sub=True).findtext(f".//{I}EmptyFolderContents/{I}Status") == "1"
    names = {m["name"] for m in jmap(gateway, [["Mailbox/get", {"ids": None}, "0"]], user=user)[0][1]["list"]}
    assert "Old" not in names and "Trash" in names
