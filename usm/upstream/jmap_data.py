"""JMAP objects as the driver's data types, and the small conversions the JMAP driver shares
(pure: no I/O)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from usm.upstream import Address, Attachment, BodyRequest, BodyText, Message

GET_CHUNK = 500  # ids per Email/get

def to_message(email: dict[str, Any], body: BodyRequest) -> Message:
    values = email.get("bodyValues") or {}
    text = body_text(email.get("textBody"), values) if body.text else None
    html = body_text(email.get("htmlBody"), values) if body.html else None
    return Message(
        id=email["id"], blob_id=email["blobId"], thread_id=email.get("threadId"),
        folder_ids=frozenset(k for k, v in (email.get("mailboxIds") or {}).items() if v),
        keywords=frozenset(k.lower() for k, v in (email.get("keywords") or {}).items() if v),
        received_at=parse_date(email["receivedAt"]), size=int(email.get("size") or 0),
        subject=email.get("subject"), sender=to_addresses(email.get("from")), to=to_addresses(email.get("to")),
        cc=to_addresses(email.get("cc")), reply_to=to_addresses(email.get("replyTo")),
        message_id=(email.get("messageId") or [None])[0],
        importance=importance_of(email.get("header:Importance:asText"), email.get("header:X-Priority:asText")),
        text=text, html=html,
        html_is_text=body.html and not has_type(email.get("htmlBody"), "text/html"),
        text_is_html=body.text and not has_type(email.get("textBody"), "text/plain"),
        attachments=[to_attachment(part) for part in email.get("attachments") or [] if part.get("blobId")],
        references=list(email.get("references") or []),
    )


def body_text(parts: list[dict[str, Any]] | None, values: dict[str, Any]) -> BodyText | None:
    texts, size, truncated = [], 0, False
    for part in parts or []:
        value = values.get(str(part.get("partId")))
        if value is None or not str(part.get("type", "")).startswith("text/"):
            continue
        texts.append(value["value"])
        size += int(part.get("size") or 0)
        truncated = truncated or bool(value.get("isTruncated"))
    if not texts:
        return None
    return BodyText("\n".join(texts), size, truncated)


def has_type(parts: list[dict[str, Any]] | None, type: str) -> bool:
    return any(part.get("type") == type for part in parts or [])


def to_attachment(part: dict[str, Any]) -> Attachment:
    return Attachment(blob_id=part["blobId"], name=part.get("name"),
                      type=part.get("type") or "application/octet-stream",
                      size=int(part.get("size") or 0), content_id=(part.get("cid") or None),
                      inline=part.get("disposition") == "inline")


def to_addresses(value: list[dict[str, Any]] | None) -> list[Address]:
    return [Address(a.get("name") or None, a.get("email") or "") for a in value or []]


def importance_of(importance: str | None, priority: str | None) -> str | None:
    if importance and importance.strip().lower() in ("low", "normal", "high"):
        return importance.strip().lower()
    if priority and priority.strip()[:1].isdigit():
        level = int(priority.strip()[0])
        return "high" if level <= 2 else "low" if level >= 4 else "normal"
    return None


def parse_date(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def utc_text(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def chunks(items: list[str], size: int) -> list[list[str]]:
    return [items[i:i + size] for i in range(0, len(items), size)]
