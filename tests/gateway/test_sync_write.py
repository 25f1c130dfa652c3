"""Sync, write direction, over raw WBXML at 14.1 against the real Cyrus: the
phone's Change (Read, Flag, Categories) and Delete reach the upstream once,
come back to the phone as no echo, merge with upstream changes per field,
fail per item without failing the batch, and survive the lost answer."""

from __future__ import annotations

import pytest
from lxml import etree

import wbxml
from tests.conftest import RunningGateway, running_gateway
from tests.gateway.helpers import A, Phone, collection, deliver, jmap, message, new_user, post
from tests.gateway.helpers import emails as upstream_emails
from usm.upstream import UpstreamUnavailable
from usm.upstream.jmap import JMAPUpstream

pytestmark = [pytest.mark.postgres, pytest.mark.upstream]
M = "{Email:}"


def _roles(gw: RunningGateway, user: str) -> dict[str, str]:
    [(_, result, _)] = jmap(gw, [["Mailbox/get", {"ids": None}, "0"]], user=user)
    return {m["role"]: m["id"] for m in result["list"] if m["role"]}


def _commands(*items: etree._Element) -> etree._Element:
    el = etree.Element(A + "Commands")
    for item in items:
        el.append(item)
    return el


def _change(server_id: str, *, read: int | None = None, flag: int | None = None,
            categories: list[str] | None = None) -> etree._Element:
    el = etree.Element(A + "Change")
    etree.SubElement(el, A + "ServerId").text = server_id
    data = etree.SubElement(el, A + "ApplicationData")
    if read is not None:
        etree.SubElement(data, M + "Read").text = str(read)
    if flag is not None:
        f = etree.SubElement(data, M + "Flag")
        if flag:
            etree.SubElement(f, M + "Status").text = str(flag)
            etree.SubElement(f, M + "FlagType").text = "Flag for follow up"
    if categories is not None:
        c = etree.SubElement(data, M + "Categories")
        for name in categories:
            etree.SubElement(c, M + "Category").text = name
    return el


def _delete(server_id: str) -> etree._Element:
    el = etree.Element(A + "Delete")
    etree.SubElement(el, A + "ServerId").text = server_id
    return el


def _synced(gw: RunningGateway, subjects: list[str]) -> tuple[Phone, str, str, dict[str, str]]:
    """A fresh user with these messages, fully synced: (phone, user, key, subject -> ServerId)."""
    user = new_user(gw)
    deliver(gw, user, [message(s, text=f"body of {s}") for s in subjects])
    phone = Phone(gw, user)
    key, adds = phone.sync_all(phone.inbox)
    ids = {a.findtext(f".//{M}Subject"): a.findtext(A + "ServerId") for a in adds}
    return phone, user, key, ids


def test_read_flag_and_categories_reach_the_upstream_without_an_echo(gateway: RunningGateway) -> None:
    phone, user, key, ids = _synced(gateway, ["one", "two", "three"])
    tree = phone.sync(collection(phone.inbox, key, commands=_commands(
        _change(ids["one"], read=1), _change(ids["two"], flag=2),
        _change(ids["three"], categories=["Work Items", "Ünïcode"]))))
    new_key = tree.findtext(f".//{A}SyncKey")
    assert new_key == str(int(key) + 1) and tree.findtext(f".//{A}Status") == "1"
    # Success is silent (MS-ASCMD: Responses only for failed Changes), and no echo.
    assert tree.find(f".//{A}Responses") is None and tree.find(f".//{A}Commands") is None
    emails = upstream_emails(gateway, user)
    assert emails["one"]["keywords"].get("$seen") and not emails["one"]["keywords"].get("$flagged")
    assert emails["two"]["keywords"].get("$flagged") and not emails["two"]["keywords"].get("$seen")
    assert {k for k in emails["three"]["keywords"] if not k.startswith("$")} == {"work&20items",
                                                                               "&c3&bcn&c3&afcode"}
    # The next Sync has nothing: the phone's own changes are not sent back.
    again = phone.sync(collection(phone.inbox, new_key))
    assert again.find(f".//{A}Commands") is None and again.findtext(f".//{A}SyncKey") == new_key
    # A second device sees them as the phone meant them.
    other = Phone(gateway, user)
    _, adds = other.sync_all(other.inbox)
    shown = {a.findtext(f".//{M}Subject"): a for a in adds}
    assert shown["one"].findtext(f".//{M}Read") == "1"
    assert shown["two"].findtext(f".//{M}Flag/{M}Status") == "2"
    assert sorted(c.text for c in shown["three"].iter(M + "Category")) == ["work items", "ünïcode"]
    # Clearing: unread, flag cleared (empty Flag), no categories.
    tree = phone.sync(collection(phone.inbox, new_key, commands=_commands(
        _change(ids["one"], read=0), _change(ids["two"], flag=0), _change(ids["three"], categories=[]))))
    assert tree.findtext(f".//{A}Status") == "1"
    emails = upstream_emails(gateway, user)
    assert set(emails["one"]["keywords"]) == set() and set(emails["two"]["keywords"]) == set()
    assert set(emails["three"]["keywords"]) == set()


def test_delete_moves_to_trash_or_destroys_and_unknown_items_fail_alone(gateway: RunningGateway) -> None:
    phone, user, key, ids = _synced(gateway, ["keep", "to trash", "destroy"])
    roles = _roles(gateway, user)
    tree = phone.sync(collection(phone.inbox, key, commands=_commands(
        _delete(ids["to trash"]), _delete(f"{phone.inbox}:999999"), _change("nonsense", read=1),
        _change(ids["keep"], read=1))))
    key = tree.findtext(f".//{A}SyncKey")
    responses = {(etree.QName(r).localname, r.findtext(A + "ServerId")): r.findtext(A + "Status")
                 for r in tree.find(f".//{A}Responses")}
    assert responses == {("Delete", f"{phone.inbox}:999999"): "8", ("Change", "nonsense"): "8"}
    emails = upstream_emails(gateway, user)
    assert emails["to trash"]["mailboxIds"] == {roles["trash"]: True}
    assert emails["keep"]["keywords"] == {"$seen": True}
    # DeletesAsMoves 0: destroyed for good.
    c = collection(phone.inbox, key, commands=_commands(_delete(ids["destroy"])))
    etree.SubElement(c, A + "DeletesAsMoves").text = "0"
    c.insert(2, c[-1])  # DeletesAsMoves comes before Commands (MS-ASCMD 2.2.3.45)
    tree = phone.sync(c)
    assert tree.findtext(f".//{A}Status") == "1" and tree.find(f".//{A}Responses") is None
    assert "destroy" not in upstream_emails(gateway, user)
    key = tree.findtext(f".//{A}SyncKey")
    assert phone.sync(collection(phone.inbox, key)).find(f".//{A}Commands") is None


def test_conflict_server_wins_per_field_and_the_phone_learns_the_server_value(gateway: RunningGateway) -> None:
    phone, user, key, ids = _synced(gateway, ["contested"])
    uid = upstream_emails(gateway, user)["contested"]["id"]
    # Upstream (another client) flags it; the phone, not knowing, marks it read and unflags it.
    jmap(gateway, [["Email/set", {"update": {uid: {"keywords/$flagged": True}}}, "0"]], user=user)
    tree = phone.sync(collection(phone.inbox, key, commands=_commands(_change(ids["contested"], read=1, flag=0))))
    emails = upstream_emails(gateway, user)
    # Read merged (the server did not touch it); the flag stays the server's.
    assert emails["contested"]["keywords"] == {"$seen": True, "$flagged": True}
    # The same response, or the next, tells the phone the server's flag.
    changes = list(tree.iter(A + "Change"))
    if not changes:
        tree = phone.sync(collection(phone.inbox, tree.findtext(f".//{A}SyncKey")))
        changes = list(tree.iter(A + "Change"))
    assert [c.findtext(f".//{M}Flag/{M}Status") for c in changes] == ["2"]
    assert [c.findtext(f".//{M}Read") for c in changes] == ["1"]


def test_conflict_client_wins_when_the_collection_asks(gateway: RunningGateway) -> None:
    phone, user, key, ids = _synced(gateway, ["mine"])
    uid = upstream_emails(gateway, user)["mine"]["id"]
    jmap(gateway, [["Email/set", {"update": {uid: {"keywords/$flagged": True}}}, "0"]], user=user)
    c = collection(phone.inbox, key, commands=_commands(_change(ids["mine"], flag=0)))
    opts = etree.Element(A + "Options")
    etree.SubElement(opts, A + "Conflict").text = "0"
    c.insert(2, opts)
    tree = phone.sync(c)
    assert tree.findtext(f".//{A}Status") == "1"
    assert upstream_emails(gateway, user)["mine"]["keywords"] == {}
    assert tree.find(f".//{A}Commands") is None


def test_a_lost_answer_is_replayed_and_the_change_is_not_applied_twice(gateway: RunningGateway) -> None:
    phone, user, key, ids = _synced(gateway, ["once"])
    request = collection(phone.inbox, key, commands=_commands(_change(ids["once"], read=1)))
    first = phone.post("Sync", _wrap(request)).content
    # Meanwhile someone marks it unread upstream; the phone resends the same request.
    uid = upstream_emails(gateway, user)["once"]["id"]
    jmap(gateway, [["Email/set", {"update": {uid: {"keywords/$seen": None}}}, "0"]], user=user)
    second = phone.post("Sync", _wrap(request)).content
    assert second == first
    assert upstream_emails(gateway, user)["once"]["keywords"] == {}  # the replay wrote nothing


def _wrap(c: etree._Element) -> etree._Element:
    root = etree.Element(A + "Sync")
    etree.SubElement(root, A + "Collections").append(c)
    return root


MV = "{Move:}"


def _move(phone: Phone, *moves: tuple[str, str, str]) -> list[tuple[str, str, str | None]]:
    root = etree.Element(MV + "MoveItems")
    for message_id, source, destination in moves:
        m = etree.SubElement(root, MV + "Move")
        etree.SubElement(m, MV + "SrcMsgId").text = message_id
        etree.SubElement(m, MV + "SrcFldId").text = source
        etree.SubElement(m, MV + "DstFldId").text = destination
    tree = wbxml.decode(phone.post("MoveItems", root).content)
    return [(r.findtext(MV + "SrcMsgId"), r.findtext(MV + "Status"), r.findtext(MV + "DstMsgId"))
            for r in tree.iter(MV + "Response")]


def test_moveitems_moves_once_with_new_server_ids_and_checks_each_move(gateway: RunningGateway) -> None:
    phone, user, key, ids = _synced(gateway, ["file me", "stay"])
    archive, outbox = phone.folders["Archive"], phone.types["6"]
    tree = phone.sync(collection(archive, "0"))
    archive_key = tree.findtext(f".//{A}SyncKey")
    archive_key = phone.sync(collection(archive, archive_key)).findtext(f".//{A}SyncKey")
    answers = _move(phone, (ids["file me"], phone.inbox, archive), (ids["stay"], phone.inbox, outbox),
                    (ids["stay"], phone.inbox, phone.inbox), (f"{phone.inbox}:424242", phone.inbox, archive),
                    (ids["stay"], "999999", archive))
    status = {(m, s) for m, s, _ in answers}
    assert answers[0][1] == "3" and answers[0][2].startswith(f"{archive}:")
    assert status == {(ids["file me"], "3"), (ids["stay"], "2"), (ids["stay"], "4"),
                      (f"{phone.inbox}:424242", "1"), (ids["stay"], "1")}
    roles = _roles(gateway, user)
    assert upstream_emails(gateway, user)["file me"]["mailboxIds"] == {roles["archive"]: True}
    # Neither folder sends the move back.
    assert phone.sync(collection(phone.inbox, key)).find(f".//{A}Commands") is None
    assert phone.sync(collection(archive, archive_key)).find(f".//{A}Commands") is None
    # The new ServerId names the item: a Change through it works.
    tree = phone.sync(collection(archive, archive_key, commands=_commands(_change(answers[0][2], read=1))))
    assert tree.find(f".//{A}Responses") is None
    assert upstream_emails(gateway, user)["file me"]["keywords"] == {"$seen": True}
    # The same move again (its answer was lost): the same answer, nothing moved twice.
    assert _move(phone, (ids["file me"], phone.inbox, archive)) == [(ids["file me"], "3", answers[0][2])]
    assert upstream_emails(gateway, user)["file me"]["mailboxIds"] == {roles["archive"]: True}
    # Elsewhere from the old ServerId fails: the item is no longer there.
    assert _move(phone, (ids["file me"], phone.inbox, phone.types["4"]))[0][1] == "1"


class _DiesAfterStoring(JMAPUpstream):
    """The upstream stores the draft, then the request dies before the commit."""

    async def import_message(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        await super().import_message(*args, **kwargs)
        raise UpstreamUnavailable("connection lost right after Email/import")


def _draft_add(client_id: str, subject: str, to: str) -> etree._Element:
    add = etree.Element(A + "Add")
    etree.SubElement(add, A + "ClientId").text = client_id
    data = etree.SubElement(add, A + "ApplicationData")
    etree.SubElement(data, M + "To").text = to
    etree.SubElement(data, M + "Subject").text = subject
    body = etree.SubElement(data, "{AirSyncBase:}Body")
    etree.SubElement(body, "{AirSyncBase:}Type").text = "1"
    etree.SubElement(body, "{AirSyncBase:}Data").text = "draft text"
    etree.SubElement(data, M + "Read").text = "1"
    return add


def test_a_draft_add_that_dies_after_the_upstream_write_is_not_stored_twice(gateway: RunningGateway) -> None:
    user = new_user(gateway)
    phone = Phone(gateway, user, version="16.1")
    drafts = phone.types["3"]
    key = phone.sync(collection(drafts, "0")).findtext(f".//{A}SyncKey")
    key = phone.sync(collection(drafts, key)).findtext(f".//{A}SyncKey")
    request = _wrap(collection(drafts, key, commands=_commands(_draft_add("d-1", "half written", "x@example.org"))))
    with running_gateway(gateway.upstream, gateway.database_url,
                         upstream=_DiesAfterStoring(gateway.upstream)) as dying:
        answer = post(dying, "Sync", request, device_id=phone.device, user=user, version="16.1",
                      policy_key=phone.policy_key)
        assert answer.status_code == 503
    assert [e["subject"] for e in upstream_emails(gateway, user).values()] == ["half written"]
    # The phone retries the same request: the stored draft is found, not stored again.
    tree = wbxml.decode(phone.post("Sync", request).content)
    [add] = tree.iter(A + "Add")
    assert add.findtext(A + "Status") == "1" and add.findtext(A + "ClientId") == "d-1"
    server_id = add.findtext(A + "ServerId")
    assert [e["subject"] for e in upstream_emails(gateway, user).values()] == ["half written"]
    # And once more, after the commit (its answer lost): the same ServerId, still one draft.
    again = wbxml.decode(phone.post("Sync", request).content)
    assert [a.findtext(A + "ServerId") for a in again.iter(A + "Add")] == [server_id]
    assert len(upstream_emails(gateway, user)) == 1
    # A draft Add below 16.0, or outside Drafts, is refused and stores nothing.
    old = Phone(gateway, user, version="14.1")
    k = old.sync(collection(old.types["3"], "0")).findtext(f".//{A}SyncKey")
    tree = old.sync(collection(old.types["3"], k, commands=_commands(_draft_add("d-2", "too old", "y@example.org"))))
    assert [a.findtext(A + "Status") for a in tree.iterfind(f".//{A}Responses/{A}Add")] == ["6"]
    assert len(upstream_emails(gateway, user)) == 1
