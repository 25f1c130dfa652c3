"""SendMail, SmartReply, SmartForward against the real Cyrus and its SMTP relay:
the recipient gets the message once (also when the phone retries, and when
the request dies between the upstream's send and the gateway's record), Bcc
stays hidden, Sent keeps a copy when asked, replies quote and thread,
forwards carry the original's attachments, and errors change nothing."""

from __future__ import annotations

import email.policy
import uuid
from email.message import EmailMessage
from email.parser import BytesParser

import httpx
import pytest
from lxml import etree

import wbxml
from tests.conftest import RunningGateway, running_gateway
from tests.gateway.helpers import A, Phone, deliver, jmap, message, new_user, post, relayed
from usm.upstream import UpstreamUnavailable
from usm.upstream.jmap import JMAPUpstream

pytestmark = [pytest.mark.postgres, pytest.mark.upstream]
C = "{ComposeMail:}"
M = "{Email:}"


def _mime(sender: str, to: str, subject: str, text: str, *, bcc: str | None = None) -> bytes:
    m = EmailMessage()
    m["From"], m["To"], m["Subject"] = sender, to, subject
    if bcc:
        m["Bcc"] = bcc
    m["Message-ID"] = f"<{uuid.uuid4().hex}@phone.example>"
    m.set_content(text)
    return m.as_bytes()


def _compose(kind: str, mime: bytes, client_id: str, *, save: bool = True, source: tuple[str, str] | None = None,
             replace_mime: bool = False) -> etree._Element:
    root = etree.Element(C + kind)
    etree.SubElement(root, C + "ClientId").text = client_id
    if source is not None:
        s = etree.SubElement(root, C + "Source")
        etree.SubElement(s, C + "FolderId").text = source[0]
        etree.SubElement(s, C + "ItemId").text = source[1]
    if save:
        etree.SubElement(root, C + "SaveInSentItems")
    if replace_mime:
        etree.SubElement(root, C + "ReplaceMime")
    wbxml.set_opaque(etree.SubElement(root, C + "Mime"), mime)
    return root


def _mailbox(gw: RunningGateway, user: str, role: str) -> list[dict]:
    [(_, boxes, _)] = jmap(gw, [["Mailbox/get", {"ids": None}, "0"]], user=user)
    box = next(m["id"] for m in boxes["list"] if m["role"] == role)
    [(_, _, _), (_, got, _)] = jmap(gw, [
        ["Email/query", {"filter": {"inMailbox": box}}, "q"],
        ["Email/get", {"#ids": {"resultOf": "q", "name": "Email/query", "path": "/ids"},
                       "properties": ["subject", "keywords", "blobId"]}, "g"]], user=user)
    return got["list"]


def _received(gw: RunningGateway, user: str, subject: str) -> list[EmailMessage]:
    out = []
    for e in _mailbox(gw, user, "inbox"):
        if e["subject"] == subject:
            raw = httpx.get(f"{gw.upstream}/jmap/download/{user}/{e['blobId']}/m", auth=(user, user.split("@")[0]))
            out.append(BytesParser(policy=email.policy.default).parsebytes(raw.content))
    return out


def test_sendmail_reaches_the_recipient_once_keeps_bcc_hidden_and_a_copy_in_sent(gateway: RunningGateway) -> None:
    alice, bob, carol = new_user(gateway), new_user(gateway), new_user(gateway)
    phone = Phone(gateway, alice)
    subject = f"Hallo Bob – {uuid.uuid4().hex[:6]}"
    request = _compose("SendMail", _mime(alice, bob, subject, "Grüße!", bcc=carol), "c-1")
    answer = phone.post("SendMail", request)
    assert answer.status_code == 200 and answer.content == b""
    # The phone did not hear the answer and sends again: nothing more leaves.
    assert phone.post("SendMail", request).content == b""
    [(envelope, _)] = relayed(gateway, subject)
    assert sorted(envelope["to"]) == sorted([bob, carol]) and envelope["from"] == alice
    [got] = _received(gateway, bob, subject)
    assert got["bcc"] is None and got.get_content().strip() == "Grüße!" and alice in got["from"]
    assert len(_received(gateway, carol, subject)) == 1
    assert [e["subject"] for e in _mailbox(gateway, alice, "sent")] == [subject]
    assert _mailbox(gateway, alice, "drafts") == []
    # Without SaveInSentItems nothing stays behind.
    other = f"no copy {uuid.uuid4().hex[:6]}"
    assert phone.post("SendMail", _compose("SendMail", _mime(alice, bob, other, "x"), "c-2", save=False)).content == b""
    assert len(relayed(gateway, other)) == 1
    assert [e["subject"] for e in _mailbox(gateway, alice, "sent")] == [subject]
    assert _mailbox(gateway, alice, "drafts") == []


def test_errors_answer_a_status_and_send_nothing(gateway: RunningGateway) -> None:
    alice = new_user(gateway)
    phone = Phone(gateway, alice)
    nobody = f"nobody {uuid.uuid4().hex[:6]}"
    m = EmailMessage()
    m["Subject"] = nobody
    m.set_content("to no one")
    cases = [(_compose("SendMail", m.as_bytes(), "e-1"), "119"),
             (_compose("SmartReply", _mime(alice, "x@example.org", nobody, "re"), "e-2",
                       source=(phone.inbox, f"{phone.inbox}:777")), "150")]
    for request, status in cases:
        tree = wbxml.decode(phone.post(request.tag.split("}")[1], request).content)
        assert tree.findtext(C + "Status") == status
    assert relayed(gateway, nobody) == []
    assert _mailbox(gateway, alice, "drafts") == [] and _mailbox(gateway, alice, "sent") == []


def test_smartreply_quotes_and_threads_and_smartforward_carries_attachments(gateway: RunningGateway) -> None:
    alice, bob = new_user(gateway), new_user(gateway)
    original = message("Quarterly numbers", text="The numbers are attached.\nRegards",
                       html="<p>The numbers are <b>attached</b>.</p>", sender=f"Bob <{bob}>", to=alice,
                       attachments=[("numbers.csv", "text/csv", b"q,value\n1,42\n"),
                                    ("chart.png", "image/png", bytes(range(256)) * 4)])
    deliver(gateway, alice, [original])
    phone = Phone(gateway, alice)
    _, adds = phone.sync_all(phone.inbox)
    [item] = [a.findtext(A + "ServerId") for a in adds]
    reply = _compose("SmartReply", _mime(alice, bob, "Re: Quarterly numbers", "Thanks, looks good."), "r-1",
                     source=(phone.inbox, item))
    assert phone.post("SmartReply", reply).content == b""
    [got] = _received(gateway, bob, "Re: Quarterly numbers")
    text = got.get_body(preferencelist=("plain",)).get_content()
    assert text.startswith("Thanks, looks good.") and "> The numbers are attached." in text
    assert "-----Original Message-----" in text
    assert got["In-Reply-To"] == original["Message-ID"] and original["Message-ID"] in got["References"]
    forward = _compose("SmartForward", _mime(alice, bob, "Fw: Quarterly numbers", "FYI"), "f-1",
                       source=(phone.inbox, item))
    assert phone.post("SmartForward", forward).content == b""
    [got] = _received(gateway, bob, "Fw: Quarterly numbers")
    parts = {p.get_filename(): p.get_content() for p in got.iter_attachments()}
    assert parts["chart.png"] == bytes(range(256)) * 4
    assert parts["numbers.csv"].replace("\r\n", "\n") == "q,value\n1,42\n"
    assert "The numbers are attached." in got.get_body(preferencelist=("plain",)).get_content()
    # ReplaceMime: the phone's message goes as it is.
    plain = _compose("SmartReply", _mime(alice, bob, "Re: only mine", "Only this."), "r-2",
                     source=(phone.inbox, item), replace_mime=True)
    assert phone.post("SmartReply", plain).content == b""
    [got] = _received(gateway, bob, "Re: only mine")
    assert got.get_content().strip() == "Only this."
    # The original now shows as answered and forwarded.
    [mail] = _mailbox(gateway, alice, "inbox")
    assert mail["keywords"].get("$answered") and mail["keywords"].get("$forwarded")


def test_sendmail_in_the_12_1_form(gateway: RunningGateway) -> None:
    alice, bob = new_user(gateway), new_user(gateway)
    phone = Phone(gateway, alice, version="12.1")
    subject = f"twelve one {uuid.uuid4().hex[:6]}"
    raw = _mime(alice, bob, subject, "old style")
    for _ in range(2):  # a retry of the same message sends nothing more
        answer = phone.post("SendMail", raw, params={"SaveInSent": "T"}, content_type="message/rfc822")
        assert answer.content == b""
    assert len(relayed(gateway, subject)) == 1 and len(_received(gateway, bob, subject)) == 1
    assert [e["subject"] for e in _mailbox(gateway, alice, "sent")] == [subject]
    # 12.x SendMail has no Status element (MS-ASCMD 2.2.3.177.14): failures are HTTP statuses.
    no_recipient = _mime(alice, bob, "nobody", "x").replace(f"To: {bob}".encode(), b"To: nobody")
    assert b"To: nobody" in no_recipient
    refused = post(gateway, "SmartReply", no_recipient, device_id=phone.device, user=alice, version="12.1",
                   policy_key=phone.policy_key, params={"ItemId": "1:999", "CollectionId": phone.inbox},
                   content_type="message/rfc822")
    assert refused.status_code == 404 and "Status 150" in refused.text
    refused = post(gateway, "SendMail", no_recipient, device_id=phone.device, user=alice, version="12.1",
                   policy_key=phone.policy_key, content_type="message/rfc822")
    assert refused.status_code == 400 and "Status 119" in refused.text


class _DiesAfterSubmitting(JMAPUpstream):
    """The upstream sends, then the request dies before the gateway records it."""

    async def submit(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        await super().submit(*args, **kwargs)
        raise UpstreamUnavailable("connection lost right after EmailSubmission/set")


def test_a_request_that_dies_after_the_send_is_not_sent_again(gateway: RunningGateway) -> None:
    alice, bob = new_user(gateway), new_user(gateway)
    subject = f"exactly once {uuid.uuid4().hex[:6]}"
    phone = Phone(gateway, alice)
    request = _compose("SendMail", _mime(alice, bob, subject, "once"), "crash-1")
    with running_gateway(gateway.upstream, gateway.database_url,
                         upstream=_DiesAfterSubmitting(gateway.upstream)) as dying:
        answer = post(dying, "SendMail", request, device_id=phone.device, user=alice,
                      policy_key=phone.policy_key)
        assert answer.status_code == 503
    assert len(relayed(gateway, subject)) == 1
    assert phone.post("SendMail", request).content == b""  # the retry finds it sent
    assert len(relayed(gateway, subject)) == 1 and len(_received(gateway, bob, subject)) == 1
    assert [e["subject"] for e in _mailbox(gateway, alice, "sent")] == [subject]
