"""Drafts at 16.1 beyond their creation (classes/email_drafts.py): a Change revises
the draft, email2:Send in an Add or a Change sends it, each exactly once, on
the real Cyrus and its SMTP relay."""

from __future__ import annotations

import uuid

from lxml import etree

import wbxml
from tests.conftest import RunningGateway, running_gateway
from tests.gateway.helpers import A, Phone, collection, emails, new_user, post, relayed
from tests.gateway.test_sync_write import _commands, _wrap
from usm.upstream import UpstreamUnavailable
from usm.upstream.jmap import JMAPUpstream

M, M2, B = "{Email:}", "{Email2:}", "{AirSyncBase:}"


def _data(parent: etree._Element, *, to: str | None = None, bcc: str | None = None, subject: str | None = None,
          text: str | None = None, send: bool = False, attach: tuple[str, bytes] | None = None,
          delete_attachment: str | None = None) -> etree._Element:
    data = etree.SubElement(parent, A + "ApplicationData")
    for tag, value in ((M + "To", to), (M2 + "Bcc", bcc), (M + "Subject", subject)):
        if value is not None:
            etree.SubElement(data, tag).text = value
    if text is not None:
        body = etree.SubElement(data, B + "Body")
        etree.SubElement(body, B + "Type").text = "1"
        etree.SubElement(body, B + "Data").text = text
    if attach is not None or delete_attachment is not None:
        attachments = etree.SubElement(data, B + "Attachments")
        if attach is not None:
            add = etree.SubElement(attachments, B + "Add")
            etree.SubElement(add, B + "ClientId").text = "a1"
            etree.SubElement(add, B + "DisplayName").text = attach[0]
            etree.SubElement(add, B + "ContentType").text = "application/octet-stream"
            wbxml.set_opaque(etree.SubElement(add, B + "Content"), attach[1])
        if delete_attachment is not None:
            gone = etree.SubElement(attachments, B + "Delete")
            etree.SubElement(gone, B + "FileReference").text = delete_attachment
    if send:
        etree.SubElement(data, M2 + "Send")
    return data


def _add(client_id: str, **fields: object) -> etree._Element:
    add = etree.Element(A + "Add")
    etree.SubElement(add, A + "ClientId").text = client_id
    _data(add, **fields)  # type: ignore[arg-type]
    return add


def _change(server_id: str, **fields: object) -> etree._Element:
    change = etree.Element(A + "Change")
    etree.SubElement(change, A + "ServerId").text = server_id
    _data(change, **fields)  # type: ignore[arg-type]
    return change


def _drafts_phone(gw: RunningGateway) -> tuple[Phone, str, str]:
    phone = Phone(gw, new_user(gw), version="16.1")
    drafts = phone.types["3"]
    key = phone.sync(collection(drafts, "0")).findtext(f".//{A}SyncKey")
    key = phone.sync(collection(drafts, key)).findtext(f".//{A}SyncKey")
    return phone, drafts, key


def _in(gw: RunningGateway, user: str, role: str) -> dict[str, dict[str, object]]:
    from tests.gateway.helpers import jmap

    [(_, boxes, _)] = jmap(gw, [["Mailbox/get", {}, "m"]], user=user)
    box = next(b["id"] for b in boxes["list"] if b["role"] == role)
    return {s: e for s, e in emails(gw, user).items() if box in e["mailboxIds"]}


def test_an_add_with_send_sends_once_and_leaves_drafts(gateway: RunningGateway) -> None:
    phone, drafts, key = _drafts_phone(gateway)
    bob = new_user(gateway)
    subject = f"sent from drafts {uuid.uuid4().hex[:6]}"
    request = _wrap(collection(drafts, key, commands=_commands(
        _add("s-1", to=bob, bcc="hidden@example.com", subject=subject, text="hello bob", send=True))))
    tree = wbxml.decode(phone.post("Sync", request).content)
    [add] = tree.iterfind(f".//{A}Responses/{A}Add")
    assert add.findtext(A + "Status") == "1"
    server_id = add.findtext(A + "ServerId")
    # The same answer tells the phone the draft left Drafts.
    assert [d.findtext(A + "ServerId") for d in tree.iter(A + "Delete")] == [server_id]
    [(envelope, raw)] = relayed(gateway, subject)
    assert sorted(envelope["to"]) == sorted([bob, "hidden@example.com"])
    assert b"hidden@example.com" not in raw and b"hello bob" in raw
    sent = _in(gateway, phone.user, "sent")[subject]
    assert "$draft" not in sent["keywords"] and not _in(gateway, phone.user, "drafts")
    # The answer was lost: the phone sends the same request again. Nothing is sent twice.
    again = wbxml.decode(phone.post("Sync", request).content)
    assert [a.findtext(A + "ServerId") for a in again.iterfind(f".//{A}Responses/{A}Add")] == [server_id]
    assert len(relayed(gateway, subject)) == 1


def test_a_change_revises_the_draft_without_an_echo_then_a_change_sends_it(gateway: RunningGateway) -> None:
    phone, drafts, key = _drafts_phone(gateway)
    bob = new_user(gateway)
    second = f"second words {uuid.uuid4().hex[:6]}"
    tree = phone.sync(collection(drafts, key, commands=_commands(
        _add("c-1", to="someone@example.org", subject="first words", text="v1", attach=("old.bin", b"\x00old")))))
    server_id = tree.findtext(f".//{A}Responses/{A}Add/{A}ServerId")
    key = tree.findtext(f".//{A}SyncKey")
    # The phone learns the attachment's FileReference from a Fetch of its draft.
    options = etree.Element(A + "Options")
    etree.SubElement(etree.SubElement(options, B + "BodyPreference"), B + "Type").text = "1"
    fetch = etree.Element(A + "Fetch")
    etree.SubElement(fetch, A + "ServerId").text = server_id
    tree = phone.sync(collection(drafts, key, options=options, commands=_commands(fetch)))
    key = tree.findtext(f".//{A}SyncKey")
    reference = tree.findtext(f".//{A}Fetch//{B}Attachment/{B}FileReference")
    assert reference

    tree = phone.sync(collection(drafts, key, commands=_commands(
        _change(server_id, to=bob, subject=second, text="v2", attach=("new.bin", b"\x01new"),
                delete_attachment=reference))))
    key = tree.findtext(f".//{A}SyncKey")
    assert tree.find(f".//{A}Responses") is None and tree.find(f".//{A}Commands") is None  # no echo
    in_drafts = _in(gateway, phone.user, "drafts")
    assert list(in_drafts) == [second], in_drafts
    [draft] = in_drafts.items()
    assert draft[0] == second and "$draft" in draft[1]["keywords"]
    quiet = phone.sync(collection(drafts, key))
    assert quiet.find(f".//{A}Commands") is None
    key = quiet.findtext(f".//{A}SyncKey")

    tree = phone.sync(collection(drafts, key, commands=_commands(_change(server_id, send=True))))
    assert tree.find(f".//{A}Responses") is None
    assert [d.findtext(A + "ServerId") for d in tree.iter(A + "Delete")] == [server_id]
    [(envelope, raw)] = relayed(gateway, second)
    assert envelope["to"] == [bob]
    assert b"v2" in raw and b"new.bin" in raw and b"old.bin" not in raw
    assert second in _in(gateway, phone.user, "sent") and not _in(gateway, phone.user, "drafts")


class _DiesAfterSubmitting(JMAPUpstream):
    """The draft goes out, then the request dies before the old copy is destroyed and the state committed."""

    async def submit(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        await super().submit(*args, **kwargs)
        raise UpstreamUnavailable("connection lost right after EmailSubmission/set")


def test_a_change_with_send_that_dies_after_sending_is_not_sent_again(gateway: RunningGateway) -> None:
    phone, drafts, key = _drafts_phone(gateway)
    bob = new_user(gateway)
    subject = f"crash while sending {uuid.uuid4().hex[:6]}"
    tree = phone.sync(collection(drafts, key, commands=_commands(_add("k-1", to=bob, subject=subject, text="x"))))
    server_id = tree.findtext(f".//{A}Responses/{A}Add/{A}ServerId")
    key = tree.findtext(f".//{A}SyncKey")
    request = _wrap(collection(drafts, key, commands=_commands(_change(server_id, send=True))))
    with running_gateway(gateway.upstream, gateway.database_url,
                         upstream=_DiesAfterSubmitting(gateway.upstream)) as dying:
        answer = post(dying, "Sync", request, device_id=phone.device, user=phone.user, version="16.1",
                      policy_key=phone.policy_key)
        assert answer.status_code == 503
    assert len(relayed(gateway, subject)) == 1
    tree = wbxml.decode(phone.post("Sync", request).content)  # the retry finds it sent
    assert tree.find(f".//{A}Responses") is None
    assert [d.findtext(A + "ServerId") for d in tree.iter(A + "Delete")] == [server_id]
    assert len(relayed(gateway, subject)) == 1
    assert subject in _in(gateway, phone.user, "sent") and not _in(gateway, phone.user, "drafts")


def test_content_changes_outside_drafts_or_below_16_are_refused(gateway: RunningGateway) -> None:
    phone = Phone(gateway, new_user(gateway), version="16.1")
    inbox = phone.inbox
    from tests.gateway.helpers import deliver, message

    deliver(gateway, phone.user, [message("not a draft", text="x")])
    key, adds = phone.sync_all(inbox)
    server_id = adds[0].findtext(A + "ServerId")
    tree = phone.sync(collection(inbox, key, commands=_commands(_change(server_id, subject="rewritten"))))
    assert [r.findtext(A + "Status") for r in tree.iterfind(f".//{A}Responses/{A}Change")] == ["6"]
    assert "not a draft" in emails(gateway, phone.user)
