"""Outgoing mail: the phone's MIME made ready for submission (pure; no I/O).

- the envelope: recipients from To, Cc and Bcc; the Bcc header is removed,
  so that recipients never see it;
- From is the user's own address (a JMAP Identity): a phone may leave it out
  or write its display name only, and Exchange, too, sends as the mailbox;
- Date and Message-ID are added where the phone left them out;
- SmartReply / SmartForward (MS-ASCMD 2.2.1.18/19): unless ReplaceMime, the
  original is quoted below the phone's text in each text part (plain and
  HTML), Exchange style, and a forward carries the original's attachments;
  a reply gets In-Reply-To and References for threading.
"""

from __future__ import annotations

import base64
import email.policy
import html
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.headerregistry import Address as HeaderAddress
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import format_datetime, getaddresses, make_msgid

from lxml import etree

from eas_gateway.items.email import html_to_text, parse_file_reference
from usm.upstream import Address, Identity, Message


class ComposeError(ValueError):
    """The phone's message cannot be sent as it is (``status``: MS-ASCMD common status)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


INVALID_MIME, NO_RECIPIENT = 107, 119


@dataclass
class Outgoing:
    raw: bytes  # RFC 5322, CRLF line ends, no Bcc header
    sender: str
    recipients: list[str]
    identity: Identity


@dataclass
class Original:
    """The message a SmartReply/SmartForward refers to, with what is needed of it."""

    message: Message
    attachments: list[tuple[str, str | None, bytes]]  # (type, name, content): forward only


def parse(raw: bytes) -> EmailMessage:
    if not raw.strip():
        raise ComposeError(INVALID_MIME, "the message is empty")
    msg = BytesParser(policy=email.policy.default).parsebytes(raw)
    if msg.defects and not msg.keys():
        raise ComposeError(INVALID_MIME, f"the message is not MIME: {msg.defects[0]!r}")
    return msg


def prepare(msg: EmailMessage, identities: list[Identity], *, reply_to: Original | None = None,
            forward: Original | None = None, replace_mime: bool = False) -> Outgoing:
    if not identities:
        raise ComposeError(INVALID_MIME, "the user has no identity to send from")
    try:
        recipients = [addr for _, addr in getaddresses([str(v) for h in ("to", "cc", "bcc")
                                                        for v in msg.get_all(h, [])]) if "@" in addr]
    except (ValueError, TypeError, IndexError) as exc:
        raise ComposeError(INVALID_MIME, f"unreadable recipient headers: {exc}") from exc
    recipients = list(dict.fromkeys(recipients))
    if not recipients:
        raise ComposeError(NO_RECIPIENT, "the message has no recipient")
    del msg["bcc"]
    identity = _identity(msg, identities)
    del msg["from"]
    msg["From"] = HeaderAddress(display_name=identity.name or "", addr_spec=identity.email)
    if "date" not in msg:
        msg["Date"] = format_datetime(datetime.now(UTC))
    if "message-id" not in msg:
        msg["Message-ID"] = make_msgid(domain=identity.email.rpartition("@")[2] or None)
    original = reply_to or forward
    if reply_to is not None and reply_to.message.message_id:
        mid = f"<{reply_to.message.message_id}>"
        if "in-reply-to" not in msg:
            msg["In-Reply-To"] = mid
        if "references" not in msg:
            msg["References"] = " ".join([f"<{r}>" for r in reply_to.message.references] + [mid])
    if original is not None and not replace_mime:
        _quote(msg, original.message, forward=forward is not None)
        if forward is not None and forward.attachments:
            if msg.get_content_maintype() != "multipart" or msg.get_content_subtype() != "mixed":
                msg.make_mixed()
            for type, name, content in forward.attachments:
                msg.attach(_attachment(type, name, content))
    try:
        raw = msg.as_bytes(policy=email.policy.SMTP)
    except (ValueError, TypeError, LookupError) as exc:
        raise ComposeError(INVALID_MIME, f"the message cannot be written out: {exc}") from exc
    return Outgoing(raw, identity.email, recipients, identity)


def _attachment(type: str, name: str | None, content: bytes) -> EmailMessage:
    part = EmailMessage(policy=email.policy.default)
    if type.lower() == "message/rfc822":
        # RFC 2046 5.2.1: never base64; the message goes in as it is.
        part.set_content(BytesParser(policy=email.policy.default).parsebytes(content))
    else:
        part["Content-Type"] = type
        part["Content-Transfer-Encoding"] = "base64"
        part.set_payload(base64.encodebytes(content).decode("ascii"))
    part.add_header("Content-Disposition", "attachment", **({"filename": name} if name else {}))
    return part


def _identity(msg: EmailMessage, identities: list[Identity]) -> Identity:
    try:
        given = [addr.lower() for _, addr in getaddresses([str(v) for v in msg.get_all("from", [])])]
    except (ValueError, TypeError, IndexError):
        given = []
    for identity in identities:
        if identity.email.lower() in given:
            return identity
    return identities[0]


def _quote(msg: EmailMessage, original: Message, *, forward: bool) -> None:
    """Append the original below the phone's text, in its plain and HTML parts."""
    header = _header(original, forward=forward)
    plain = msg.get_body(preferencelist=("plain",))
    markup = msg.get_body(preferencelist=("html",))
    original_text = original.text.text if original.text else html_to_text(original.html.text if original.html else "")
    if original.html and not original.html_is_text:
        original_html = original.html.text
    else:
        original_html = "<pre>" + html.escape(original_text) + "</pre>"
    if plain is not None:
        text = plain.get_content()
        quoted = "\n".join(original_text.splitlines()) if forward else \
            "\n".join("> " + line for line in original_text.splitlines())
        plain.set_content(text.rstrip("\n") + "\n\n" + header + "\n\n" + quoted + "\n", charset="utf-8")
    if markup is not None:
        page = markup.get_content()
        block = ("<hr><div>" + html.escape(header).replace("\n", "<br>") + "</div>"
                 + ("<blockquote>" + original_html + "</blockquote>" if not forward else original_html))
        lower = page.lower()
        at = lower.rfind("</body>")
        page = page[:at] + block + page[at:] if at >= 0 else page + block
        markup.set_content(page, subtype="html", charset="utf-8")
    if plain is None and markup is None:
        msg.set_content(header + "\n\n" + original_text + "\n", charset="utf-8")


def _header(original: Message, *, forward: bool) -> str:
    lines = ["-----Original Message-----" if not forward else "---------- Forwarded message ----------",
             "From: " + _names(original.sender), "Sent: " + format_datetime(original.received_at),
             "To: " + _names(original.to)]
    if original.cc:
        lines.append("Cc: " + _names(original.cc))
    lines.append("Subject: " + (original.subject or ""))
    return "\n".join(lines)


def _names(addresses: list[Address]) -> str:
    return ", ".join(f"{a.name} <{a.email}>" if a.name else a.email for a in addresses)


AIRSYNCBASE, EMAIL, EMAIL2 = "{AirSyncBase:}", "{Email:}", "{Email2:}"


def draft(data: etree._Element | None, element_bytes: Callable[[etree._Element], bytes],
          base: bytes | None = None) -> bytes:
    """An RFC 5322 message from the ApplicationData of a draft the phone adds
    (MS-ASEMAIL 16.0: Body of Type 4 is the whole MIME message; Types 1/2 a
    text or HTML body with To, Cc, Bcc, Subject and Importance beside it, and
    AirSyncBase:Attachments/Add with their Content).

    ``base``: the draft as stored, which a Change of the draft revises: the
    fields sent replace the stored ones, the rest stays (body, attachments
    but those in Attachments/Delete, headers)."""
    if data is None:
        raise ComposeError(INVALID_MIME, "a draft without ApplicationData")
    body = data.find(AIRSYNCBASE + "Body")
    kind = (body.findtext(AIRSYNCBASE + "Type") or "1").strip() if body is not None else None
    content = body.find(AIRSYNCBASE + "Data") if body is not None else None
    if kind == "4":
        if content is None:
            raise ComposeError(INVALID_MIME, "a MIME draft without Data")
        msg = parse(element_bytes(content))
    elif kind in ("1", "2", None):
        old = parse(base) if base is not None else None
        msg = EmailMessage(policy=email.policy.default)
        for name, value in (old.items() if old is not None else ()):
            if not name.lower().startswith(("content-", "mime-version")):
                msg[name] = value
        _fields(msg, data)
        if kind is not None:
            text = element_bytes(content).decode("utf-8", "replace") if content is not None else ""
            msg.set_content(text, subtype="html" if kind == "2" else "plain", charset="utf-8")
        else:
            _keep_body(msg, old)
        for type, kept_name, part_content in _kept_attachments(old, data):
            _attach(msg, type, kept_name, part_content)
        for add in data.iterfind(f"{AIRSYNCBASE}Attachments/{AIRSYNCBASE}Add"):
            raw = add.find(AIRSYNCBASE + "Content")
            if raw is None:
                raise ComposeError(INVALID_MIME, "a draft attachment without Content")
            type = (add.findtext(AIRSYNCBASE + "ContentType") or "application/octet-stream").strip()
            _attach(msg, type, add.findtext(AIRSYNCBASE + "DisplayName"), element_bytes(raw))
    else:
        raise ComposeError(INVALID_MIME, f"a draft with a body of Type {kind}")
    if "date" not in msg:
        msg["Date"] = format_datetime(datetime.now(UTC))
    try:
        return msg.as_bytes(policy=email.policy.SMTP)
    except (ValueError, TypeError, LookupError) as exc:
        raise ComposeError(INVALID_MIME, f"the draft cannot be written out: {exc}") from exc


def _fields(msg: EmailMessage, data: etree._Element) -> None:
    """The header fields the phone sent replace the message's (an empty one clears it)."""
    for tag, header in ((EMAIL + "To", "To"), (EMAIL + "Cc", "Cc"), (EMAIL2 + "Bcc", "Bcc"),
                        (EMAIL + "Subject", "Subject")):
        value = data.findtext(tag)
        if value is not None:
            del msg[header]
            if value:
                msg[header] = value
    importance = data.findtext(EMAIL + "Importance")
    if importance is not None:
        del msg["Importance"]
        if importance.strip() in ("0", "2"):
            msg["Importance"] = "low" if importance.strip() == "0" else "high"


def _keep_body(msg: EmailMessage, old: EmailMessage | None) -> None:
    part = old.get_body(preferencelist=("html", "plain")) if old is not None else None
    if part is None:
        msg.set_content("", charset="utf-8")
        return
    msg.set_content(part.get_content(), subtype=part.get_content_subtype(), charset="utf-8")


def _kept_attachments(old: EmailMessage | None, data: etree._Element) -> list[tuple[str, str | None, bytes]]:
    """The stored draft's attachments but those the phone deletes. A FileReference
    (items.email.file_reference) names the upstream blob of a part, which the MIME
    does not carry: a part is matched by its name and type instead."""
    if old is None:
        return []
    gone = set()
    for ref in data.iterfind(f"{AIRSYNCBASE}Attachments/{AIRSYNCBASE}Delete/{AIRSYNCBASE}FileReference"):
        parsed = parse_file_reference((ref.text or "").strip())
        if parsed is None:
            raise ComposeError(INVALID_MIME, f"Attachments/Delete of an unknown FileReference {ref.text!r}")
        gone.add((parsed[1].lower(), parsed[2]))
    kept = []
    for part in old.iter_attachments():
        type, name = part.get_content_type(), part.get_filename()
        if (type, name or "attachment") in gone:
            continue
        if type == "message/rfc822":  # the payload is a message, not bytes
            kept.append((type, name, part.get_content().as_bytes(policy=email.policy.SMTP)))
        else:
            kept.append((type, name, part.get_payload(decode=True) or b""))
    return kept


def _attach(msg: EmailMessage, type: str, name: str | None, content: bytes) -> None:
    if msg.get_content_maintype() != "multipart":
        msg.make_mixed()
    msg.attach(_attachment(type, name, content))
