"""Sync, read direction, over raw WBXML at 14.1 (and 12.1, 16.1) against the
real Cyrus: windows and MoreAvailable, body preferences, upstream changes,
the lost-response replay, stale keys, FilterType, several collections, the
empty and partial request, and the waiting Sync."""

from __future__ import annotations

import email.policy
import threading
import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from lxml import etree

import wbxml
from tests.conftest import RunningGateway
from tests.gateway.helpers import (
    A,
    B,
    Phone,
    base64_query,
    collection,
    deliver,
    folder_sync,
    jmap,
    message,
    new_device_id,
    new_user,
    options,
    password,
    post,
    provision,
)

pytestmark = [pytest.mark.postgres, pytest.mark.upstream]
M = "{Email:}"


def _ids(gw: RunningGateway, user: str) -> dict[str, str]:
    """subject -> JMAP Email id of the user's messages."""
    [(_, query, _), (_, got, _)] = jmap(gw, [
        ["Email/query", {"limit": 1000}, "q"],
        ["Email/get", {"#ids": {"resultOf": "q", "name": "Email/query", "path": "/ids"},
                       "properties": ["subject"]}, "g"]], user=user)
    return {e["subject"]: e["id"] for e in got["list"]}


def _mailbox(gw: RunningGateway, user: str, role: str) -> str:
    [(_, result, _)] = jmap(gw, [["Mailbox/get", {"ids": None}, "0"]], user=user)
    return next(m["id"] for m in result["list"] if m["role"] == role)


def test_windows_with_more_available_deliver_every_message_once(gateway: RunningGateway) -> None:
    user = new_user(gateway)
    deliver(gateway, user, [message(f"Nachricht {i} – Grüße", text=f"Körper {i}") for i in range(45)])
    phone = Phone(gateway, user)
    tree = phone.sync(collection(phone.inbox, "0"))
    assert tree.findtext(f".//{A}SyncKey") == "1" and tree.find(f".//{A}Commands") is None
    key, seen, dates, rounds = "1", [], [], 0
    while True:
        tree = phone.sync(collection(phone.inbox, key, window=10))
        rounds += 1
        key = tree.findtext(f".//{A}SyncKey")
        seen += [(a.findtext(A + "ServerId"), a.findtext(f".//{M}Subject")) for a in tree.iter(A + "Add")]
        dates += [a.findtext(f".//{M}DateReceived") for a in tree.iter(A + "Add")]
        if tree.find(f".//{A}MoreAvailable") is None:
            break
        assert len(list(tree.iter(A + "Add"))) == 10
    assert rounds == 5
    assert len({sid for sid, _ in seen}) == 45
    assert sorted(s for _, s in seen) == sorted(f"Nachricht {i} – Grüße" for i in range(45))
    assert dates == sorted(dates, reverse=True)  # newest first
    # Nothing more: the same key again, no commands.
    again = phone.sync(collection(phone.inbox, key))
    assert again.findtext(f".//{A}SyncKey") == key and again.find(f".//{A}Commands") is None


def test_a_first_sync_in_listing_pages_ends_with_the_folder_as_it_is(gateway: RunningGateway,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """The first sync lists the Inbox 7 ids at a time (usm.sync.LISTING_PAGE, 2,000 in
    production) while the phone takes windows of 5; between windows the last message sent (the
    listing's anchor) is deleted, a message arrives and an old one is flagged. The phone ends
    with exactly the Inbox: every message once, the deleted gone, the flag on."""
    from usm import sync

    monkeypatch.setattr(sync, "LISTING_PAGE", 7)
    user = new_user(gateway)
    deliver(gateway, user, [message(f"Alt {i}", text="x") for i in range(30)])
    phone = Phone(gateway, user)
    key = phone.sync(collection(phone.inbox, "0")).findtext(f".//{A}SyncKey")
    on_phone: dict[str, str] = {}  # ServerId -> subject
    flagged: set[str] = set()
    targets: set[str] = set()  # the messages flagged meanwhile
    rounds = 0
    while True:
        tree = phone.sync(collection(phone.inbox, key, window=5))
        rounds += 1
        assert rounds < 40
        key = tree.findtext(f".//{A}SyncKey")
        added = [(a.findtext(A + "ServerId"), a.findtext(f".//{M}Subject")) for a in tree.iter(A + "Add")]
        for sid, subject in added:
            assert sid not in on_phone and subject not in on_phone.values(), subject
            on_phone[sid] = subject
        flagged |= {a.findtext(f".//{M}Subject") for a in tree.iter(A + "Add")
                    if a.findtext(f".//{M}Flag/{M}Status") == "2"}
        for d in tree.iter(A + "Delete"):
            del on_phone[d.findtext(A + "ServerId")]
        for c in tree.iter(A + "Change"):
            if c.findtext(f".//{M}Flag/{M}Status") == "2":
                flagged.add(on_phone[c.findtext(A + "ServerId")])
        if rounds in (2, 4) and added:
            ids = _ids(gateway, user)
            gone = added[-1][1]
            # An old one (messages delivered in the same second come in any order: not always
            # "Alt {rounds}", which an earlier round may have deleted as its last one sent).
            old = next(s for s in (f"Alt {n}" for n in range(rounds, 30)) if s in ids and s != gone)
            targets.add(old)
            jmap(gateway, [["Email/set", {"destroy": [ids[gone]],
                                          "update": {ids[old]: {"keywords/$flagged": True}}}, "0"]],
                 user=user)
            deliver(gateway, user, [message(f"Neu {rounds}", text="y")])
        if tree.find(f".//{A}MoreAvailable") is None:
            break
    inbox = _ids(gateway, user)
    assert sorted(on_phone.values()) == sorted(inbox)
    assert len(targets) == 2 and targets & set(inbox) <= flagged


def test_resent_key_replays_the_lost_answer_and_older_keys_are_refused(gateway: RunningGateway) -> None:
    user = new_user(gateway)
    deliver(gateway, user, [message(f"m{i}", text="x") for i in range(6)])
    phone = Phone(gateway, user)
    phone.sync(collection(phone.inbox, "0"))
    first = phone.post("Sync", _sync_body(collection(phone.inbox, "1", window=4))).content
    # The answer to key 1 was lost: the phone sends key 1 again and gets the same bytes.
    assert phone.post("Sync", _sync_body(collection(phone.inbox, "1", window=4))).content == first
    tree = wbxml.decode(first)
    assert tree.findtext(f".//{A}SyncKey") == "2" and len(list(tree.iter(A + "Add"))) == 4
    rest = phone.sync(collection(phone.inbox, "2", window=4))
    assert rest.findtext(f".//{A}SyncKey") == "3" and len(list(rest.iter(A + "Add"))) == 2
    servers = [a.findtext(A + "ServerId") for t in (tree, rest) for a in t.iter(A + "Add")]
    assert len(set(servers)) == 6
    # Key 1 is now two generations old.
    stale = phone.sync(collection(phone.inbox, "1"))
    assert stale.findtext(f".//{A}Status") == "3"
    assert phone.sync(collection(phone.inbox, "abc")).findtext(f".//{A}Status") == "3"


def _sync_body(*collections: etree._Element) -> bytes:
    root = etree.Element(A + "Sync")
    parent = etree.SubElement(root, A + "Collections")
    for c in collections:
        parent.append(c)
    return wbxml.encode(root)


def test_upstream_read_flag_move_and_delete_arrive_as_changes_and_deletes(gateway: RunningGateway) -> None:
    user = new_user(gateway)
    deliver(gateway, user, [message(s, text=s) for s in ("read me", "flag me", "move me", "delete me", "keep")])
    phone = Phone(gateway, user)
    key, adds = phone.sync_all(phone.inbox)
    server_ids = {a.findtext(f".//{M}Subject"): a.findtext(A + "ServerId") for a in adds}
    ids = _ids(gateway, user)
    archive = _mailbox(gateway, user, "archive")
    inbox = _mailbox(gateway, user, "inbox")
    jmap(gateway, [["Email/set", {"update": {
        ids["read me"]: {"keywords/$seen": True},
        ids["flag me"]: {"keywords/$flagged": True, "keywords/Urgent": True},
        ids["move me"]: {"mailboxIds": {archive: True}},
    }, "destroy": [ids["delete me"]]}, "0"]], user=user)
    tree = phone.sync(collection(phone.inbox, key))
    changes = {c.findtext(A + "ServerId"): c for c in tree.iter(A + "Change")}
    deletes = {d.findtext(A + "ServerId") for d in tree.iter(A + "Delete")}
    assert set(changes) == {server_ids["read me"], server_ids["flag me"]}
    assert deletes == {server_ids["move me"], server_ids["delete me"]}
    assert changes[server_ids["read me"]].findtext(f".//{M}Read") == "1"
    flagged = changes[server_ids["flag me"]]
    assert flagged.findtext(f".//{M}Flag/{M}Status") == "2"
    assert [c.text for c in flagged.iter(M + "Category")] == ["urgent"]
    # The moved message is in the Archive collection.
    _, archived = phone.sync_all(phone.folders["Archive"])
    assert [a.findtext(f".//{M}Subject") for a in archived] == ["move me"]
    # And back: it returns to the inbox as a new item.
    jmap(gateway, [["Email/set", {"update": {ids["move me"]: {"mailboxIds": {inbox: True}}}}, "0"]], user=user)
    back = phone.sync(collection(phone.inbox, tree.findtext(f".//{A}SyncKey")))
    assert [a.findtext(f".//{M}Subject") for a in back.iter(A + "Add")] == ["move me"]
    assert back.find(f".//{A}Add/{A}ServerId").text not in server_ids.values()


def test_body_preferences_truncation_all_or_none_html_and_mime(gateway: RunningGateway) -> None:
    user = new_user(gateway)
    text = "Grüße aus Köln! " * 20  # 360 bytes of UTF-8 with two-byte characters
    deliver(gateway, user, [message("both", text=text, html="<p>Hallo <b>Welt</b> – ünïcode</p>",
                                    attachments=[("data.bin", "application/octet-stream", bytes(range(256)))])])
    phone = Phone(gateway, user)
    _, [add] = phone.sync_all(phone.inbox, options=options(body=[(1, 25, False)], preview=40))
    body = add.find(f".//{B}Body")
    assert body.findtext(B + "Type") == "1" and body.findtext(B + "Truncated") == "1"
    data = body.findtext(B + "Data")
    assert len(data.encode()) <= 25 and text.startswith(data)  # cut at a character, never inside one
    assert int(body.findtext(B + "EstimatedDataSize")) >= len(text.encode())
    assert body.findtext(B + "Preview").startswith("Grüße aus Köln!")
    attachment = add.find(f".//{B}Attachment")
    assert attachment.findtext(B + "DisplayName") == "data.bin"
    assert attachment.findtext(B + "EstimatedDataSize") == "256"

    _, [add] = phone.sync_all(phone.inbox, options=options(body=[(1, 25, True)]))
    body = add.find(f".//{B}Body")
    assert body.findtext(B + "Truncated") == "1" and body.find(B + "Data") is None

    _, [add] = phone.sync_all(phone.inbox, options=options(body=[(2, None, False)]))
    body = add.find(f".//{B}Body")
    assert body.findtext(B + "Type") == "2" and "<b>Welt</b> – ünïcode" in body.findtext(B + "Data")
    assert body.find(B + "Truncated") is None
    assert add.findtext(f".//{B}NativeBodyType") == "2"

    _, [add] = phone.sync_all(phone.inbox, options=options(body=[(4, None, False)], mime_support=2))
    body = add.find(f".//{B}Body")
    assert body.findtext(B + "Type") == "4"
    mime = wbxml.element_bytes(body.find(B + "Data"))
    [(_, got, _)] = jmap(gateway, [["Email/get", {"ids": [_ids(gateway, user)["both"]],
                                                  "properties": ["blobId"]}, "0"]], user=user)
    session = httpx.get(gateway.upstream + "/jmap/", auth=(user, password(user))).json()
    url = session["downloadUrl"].replace("{accountId}", user).replace(
        "{blobId}", got["list"][0]["blobId"]).replace("{name}", "m.eml").replace("{type}", "message/rfc822")
    original = httpx.get(httpx.URL(gateway.upstream).join(url), auth=(user, password(user))).content
    assert mime == original and b"data.bin" in mime
    assert int(body.findtext(B + "EstimatedDataSize")) == len(original)


def test_filter_type_limits_by_date_and_a_new_filter_relists(gateway: RunningGateway) -> None:
    user = new_user(gateway)
    deliver(gateway, user, [message("recent", text="now")])
    _import_old_message(gateway, user, "ancient", datetime.now(UTC) - timedelta(days=40))
    phone = Phone(gateway, user)
    key, adds = phone.sync_all(phone.inbox, options=options(filter_type=3))  # one week
    assert [a.findtext(f".//{M}Subject") for a in adds] == ["recent"]
    # The phone widens the filter: the old message comes, the recent one is not sent again.
    tree = phone.sync(collection(phone.inbox, key, options=options(filter_type=0)))
    assert [a.findtext(f".//{M}Subject") for a in tree.iter(A + "Add")] == ["ancient"]
    # And narrows it: the old one goes.
    tree = phone.sync(collection(phone.inbox, tree.findtext(f".//{A}SyncKey"), options=options(filter_type=5)))
    assert len(list(tree.iter(A + "Delete"))) == 1 and not list(tree.iter(A + "Add"))


def _import_old_message(gw: RunningGateway, user: str, subject: str, received: datetime) -> None:
    raw = message(subject, text="old").as_bytes(policy=email.policy.SMTP)
    session = httpx.get(gw.upstream + "/jmap/", auth=(user, password(user))).json()
    upload = session["uploadUrl"].replace("{accountId}", user)
    blob = httpx.post(httpx.URL(gw.upstream).join(upload), content=raw, auth=(user, password(user)),
                      headers={"Content-Type": "message/rfc822"}).json()["blobId"]
    inbox = _mailbox(gw, user, "inbox")
    [(name, result, _)] = jmap(gw, [["Email/import", {"emails": {"e": {
        "blobId": blob, "mailboxIds": {inbox: True},
        "receivedAt": received.strftime("%Y-%m-%dT%H:%M:%SZ")}}}, "0"]], user=user)
    assert (result.get("created") or {}).get("e"), result


def test_several_collections_the_empty_and_the_partial_request(gateway: RunningGateway) -> None:
    user = new_user(gateway)
    deliver(gateway, user, [message("in inbox", text="x")])
    phone = Phone(gateway, user)
    archive, inbox = phone.folders["Archive"], phone.inbox
    tree = phone.sync(collection(inbox, "0"), collection(archive, "0"))
    assert [c.findtext(A + "SyncKey") for c in tree.iter(A + "Collection")] == ["1", "1"]
    tree = phone.sync(collection(inbox, "1"), collection(archive, "1"))
    keys = {c.findtext(A + "CollectionId"): c.findtext(A + "SyncKey") for c in tree.iter(A + "Collection")}
    assert keys == {inbox: "2", archive: "1"}
    # Empty request: "the same as last time", at the current keys.
    deliver(gateway, user, [message("second", text="y")])
    tree = wbxml.decode(phone.post("Sync", None).content)
    assert [a.findtext(f".//{M}Subject") for a in tree.iter(A + "Add")] == ["second"]
    # Partial: only the inbox is named; the archive comes from the cache.
    archive_id = _mailbox(gateway, user, "archive")
    ids = _ids(gateway, user)
    jmap(gateway, [["Email/set", {"update": {ids["second"]: {"mailboxIds": {archive_id: True}}}}, "0"]], user=user)
    tree = phone.sync(collection(inbox, "3"), Partial="")
    by_id = {c.findtext(A + "CollectionId"): c for c in tree.iter(A + "Collection")}
    assert set(by_id) == {inbox, archive}
    assert [a.findtext(f".//{M}Subject") for a in by_id[archive].iter(A + "Add")] == ["second"]
    assert len(list(by_id[inbox].iter(A + "Delete"))) == 1


def test_unknown_collection_and_bad_intervals(gateway: RunningGateway) -> None:
    user = new_user(gateway)
    phone = Phone(gateway, user)
    # An empty request before any full one: nothing to stand for (Status 13).
    assert wbxml.decode(phone.post("Sync", b"").content).findtext(A + "Status") == "13"
    tree = phone.sync(collection("9999", "0"))
    assert tree.findtext(f".//{A}Status") == "12"
    tree = phone.sync(collection(phone.inbox, "0"), HeartbeatInterval="30")
    assert (tree.findtext(A + "Status"), tree.findtext(A + "Limit")) == ("14", "60")
    tree = phone.sync(collection(phone.inbox, "0"), Wait="60")
    assert (tree.findtext(A + "Status"), tree.findtext(A + "Limit")) == ("14", "3540")
    # Now the empty request stands for the last full one.
    tree = wbxml.decode(phone.post("Sync", b"").content)
    assert tree.findtext(f".//{A}CollectionId") == "9999" and tree.findtext(f".//{A}Status") == "12"


def test_waiting_sync_answers_when_mail_arrives(gateway: RunningGateway) -> None:
    user = new_user(gateway)
    phone = Phone(gateway, user)
    key, _ = phone.sync_all(phone.inbox)
    threading.Timer(1.0, deliver, args=(gateway, user, [message("pushed", text="z")])).start()
    started = time.monotonic()
    tree = phone.sync(collection(phone.inbox, key), HeartbeatInterval="60")
    assert time.monotonic() - started < 30
    assert [a.findtext(f".//{M}Subject") for a in tree.iter(A + "Add")] == ["pushed"]


@pytest.mark.parametrize("version", ["12.1", "16.1"])
def test_other_versions(gateway: RunningGateway, version: str) -> None:
    user = new_user(gateway)
    deliver(gateway, user, [message("versioned", text="v", html="<i>v</i>")])
    phone = Phone(gateway, user, version=version)
    _, [add] = phone.sync_all(phone.inbox, options=options(body=[(2, 1000, False)]))
    assert add.findtext(f".//{M}Subject") == "versioned"
    has_conversation = add.find(".//{Email2:}ConversationId") is not None
    assert has_conversation == (version == "16.1")


def test_exchange_style_client_at_14_1_with_the_base64_query(gateway: RunningGateway) -> None:
    """The whole read path as an Exchange-era client sends it: base64 query
    (MS-ASHTTP 2.2.1.1.1.1), no MS-ASProtocolVersion header, 14.1 Options with
    BodyPreference and MIMESupport, then a lost answer and its replay."""
    user = new_user(gateway)
    deliver(gateway, user, [message("exchange style", text="hello", html="<p>hello</p>")])
    device = new_device_id()
    key = int(provision(gateway, device, user=user))

    def send(code: int, body: etree._Element) -> bytes:
        query = base64_query(code, device_id=device, user=user, policy_key=key)
        answer = httpx.post(f"{gateway.endpoint}?{query}", content=wbxml.encode(body), auth=(user, password(user)),
                            headers={"Content-Type": "application/vnd.ms-sync.wbxml"}, timeout=60)
        assert answer.status_code == 200, answer.text
        return answer.content

    hierarchy = wbxml.decode(send(9, folder_sync("0")))
    inbox = next(a.findtext("{FolderHierarchy:}ServerId") for a in hierarchy.iter("{FolderHierarchy:}Add")
                 if a.findtext("{FolderHierarchy:}Type") == "2")
    sync_body = etree.Element(A + "Sync")
    etree.SubElement(sync_body, A + "Collections").append(
        collection(inbox, "0", options=options(body=[(2, 500, False)], mime_support=0)))
    assert wbxml.decode(send(0, sync_body)).findtext(f".//{A}SyncKey") == "1"
    sync_body = etree.Element(A + "Sync")
    etree.SubElement(sync_body, A + "Collections").append(collection(inbox, "1", window=50))
    first = send(0, sync_body)
    assert send(0, sync_body) == first  # the answer was lost; the same bytes again
    tree = wbxml.decode(first)
    [add] = tree.iter(A + "Add")
    assert add.findtext(f".//{B}Type") == "2" and "<p>hello</p>" in add.findtext(f".//{B}Data")
    assert add.find(".//{Email2:}ConversationId") is not None



def test_a_failure_mid_request_leaves_the_last_generation_intact(gateway: RunningGateway) -> None:
    """The upstream fails after the window was planned, before the commit: the
    phone gets 503, and the same key then brings every item, once."""
    from tests.conftest import running_gateway
    from usm.upstream import UpstreamUnavailable
    from usm.upstream.jmap import JMAPUpstream

    class FailsOnce(JMAPUpstream):
        failed = False

        async def messages(self, credentials, ids, body):  # type: ignore[no-untyped-def]
            if not self.failed:
                self.failed = True
                raise UpstreamUnavailable("injected: the upstream went away mid-Sync")
            return await super().messages(credentials, ids, body)

    user = new_user(gateway)
    deliver(gateway, user, [message(f"safe {i}", text="x") for i in range(3)])
    with running_gateway(gateway.upstream, gateway.database_url, upstream=FailsOnce(gateway.upstream)) as flaky:
        phone = Phone(flaky, user)
        phone.sync(collection(phone.inbox, "0"))
        failed = post(flaky, "Sync", _sync_body(collection(phone.inbox, "1")), device_id=phone.device, user=user,
                      policy_key=phone.policy_key)
        assert failed.status_code == 503
        tree = phone.sync(collection(phone.inbox, "1"))
        assert tree.findtext(f".//{A}SyncKey") == "2"
        assert sorted(a.findtext(f".//{M}Subject") for a in tree.iter(A + "Add")) == ["safe 0", "safe 1", "safe 2"]
        assert phone.sync(collection(phone.inbox, "2")).find(f".//{A}Commands") is None
