"""The Email class (MS-ASEMAIL): a JMAP message as ApplicationData.

Bodies follow MS-ASAIRS: the representation is chosen from the phone's
BodyPreference (items.options), cut to TruncationSize at a character
boundary (or left out entirely with AllOrNone), with EstimatedDataSize the
size of the whole body. MIME is the stored RFC 5322 message, byte for byte.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote, unquote

import lxml.html
from lxml import etree

import wbxml
from eas_gateway.items.body import data as body_data
from eas_gateway.items.options import HTML, MIME, PLAIN, Options
from eas_gateway.xml import E
from usm.upstream import Address, BodyRequest, Message, conversation_id

M = "{Email:}"
M2 = "{Email2:}"
B = "{AirSyncBase:}"

SEEN, FLAGGED, ANSWERED, FORWARDED = "$seen", "$flagged", "$answered", "$forwarded"
SYSTEM_KEYWORDS = {"$seen", "$flagged", "$answered", "$forwarded", "$draft", "$recent", "$junk", "$notjunk",
                   "$phishing", "$mdnsent"}
IMPORTANCE = {"low": 0, "normal": 1, "high": 2}


@dataclass(frozen=True)
class ClientChange:
    """What a phone's Sync Change of an email asks for (MS-ASEMAIL 2.2.2: the
    fields a client may change). None: the field was not sent, keep it."""

    keywords: dict[str, bool]  # $seen / $flagged set or cleared
    categories: frozenset[str] | None  # the full new set of category keywords


class ItemError(ValueError):
    """ApplicationData the gateway cannot turn into an upstream change."""


def parse_change(data: etree._Element | None) -> ClientChange:
    """MS-ASEMAIL Read, Flag (Status 0 clear, 1 complete, 2 active) and Categories."""
    keywords: dict[str, bool] = {}
    categories: frozenset[str] | None = None
    for el in data if data is not None else []:
        if el.tag == M + "Read":
            value = (el.text or "").strip()
            if value not in ("0", "1"):
                raise ItemError(f"Email Read {value!r} is not 0 or 1")
            keywords[SEEN] = value == "1"
        elif el.tag == M + "Flag":
            status = (el.findtext(M + "Status") or "0").strip()
            if status not in ("0", "1", "2"):
                raise ItemError(f"Email Flag Status {status!r} is not 0, 1 or 2")
            # JMAP has no "complete": a completed flag is no flag any more.
            keywords[FLAGGED] = status == "2"
        elif el.tag == M + "Categories":
            categories = frozenset(category_keyword(c.text or "") for c in el.iterfind(M + "Category"))
            categories -= {""}
    return ClientChange(keywords, categories)


_KEYWORD_SAFE = frozenset(b"!#'+,-./0123456789:;<=>?@^_`abcdefghijklmnopqrstuvwxyz|}~")


def category_keyword(name: str) -> str:
    """The JMAP keyword for a category name. Keywords (RFC 8621 4.1.1) are IMAP
    atoms and case-insensitive: the name is lower-cased, and every UTF-8 byte a
    keyword cannot hold (space, non-ASCII, specials, "&", "$") becomes "&xx"
    in hex, so that ``category_name`` gives the name back."""
    out = []
    for byte in name.strip().lower().encode():
        out.append(chr(byte) if byte in _KEYWORD_SAFE else f"&{byte:02x}")
    return "".join(out)[:255]


def category_name(keyword: str) -> str:
    """The category a keyword shows as (the inverse of ``category_keyword``)."""
    if "&" not in keyword:
        return keyword
    data, i = bytearray(), 0
    while i < len(keyword):
        if keyword[i] == "&" and re.fullmatch(r"[0-9a-f]{2}", keyword[i + 1:i + 3]):
            data.append(int(keyword[i + 1:i + 3], 16))
            i += 3
        else:
            data.extend(keyword[i].encode())
            i += 1
    return data.decode("utf-8", "replace")


def body_request(options: Options) -> BodyRequest:
    """Which bodies to fetch from the upstream for these options."""
    chosen = options.chosen_body()
    preview = options.preview() > 0
    if chosen.type == MIME:
        return BodyRequest(text=preview, max_bytes=1024 if preview else None)
    limit = chosen.truncation
    if limit is not None:
        limit += 1  # one byte more tells "longer than the limit" from "exactly the limit"
    if preview and limit is not None:
        limit = max(limit, 1024)
    return BodyRequest(text=chosen.type == PLAIN or preview, html=chosen.type == HTML, max_bytes=limit)


def wants_mime(options: Options) -> bool:
    return options.chosen_body().type == MIME


def application_data(parent: etree._Element, message: Message, options: Options, version: float,
                     mime: bytes | None = None, meeting: Callable[[etree._Element], str] | None = None) -> None:
    """Append the Email ApplicationData children of ``message`` to ``parent``
    (an ApplicationData or ItemOperations Properties element). ``meeting``: the message
    is an invitation; it writes the MeetingRequest element and gives the MessageClass."""
    E(parent, M + "To", _addresses(message.to))
    if message.cc:
        E(parent, M + "Cc", _addresses(message.cc))
    E(parent, M + "From", _addresses(message.sender))
    E(parent, M + "Subject", message.subject or "")
    if message.reply_to:
        E(parent, M + "ReplyTo", _addresses(message.reply_to))
    E(parent, M + "DateReceived", eas_date(message.received_at))
    E(parent, M + "DisplayTo", display_names(message.to))
    E(parent, M + "ThreadTopic", message.subject or "")
    E(parent, M + "Importance", IMPORTANCE.get(message.importance or "normal", 1))
    E(parent, M + "Read", 1 if SEEN in message.keywords else 0)
    if message.attachments:
        attachments = E(parent, B + "Attachments")
        for number, attachment in enumerate(message.attachments):
            el = E(attachments, B + "Attachment")
            E(el, B + "DisplayName", attachment.name or f"attachment-{number + 1}")
            E(el, B + "FileReference", file_reference(attachment.blob_id, attachment.type, attachment.name))
            E(el, B + "Method", 1)
            E(el, B + "EstimatedDataSize", attachment.size)
            if attachment.content_id:
                E(el, B + "ContentId", attachment.content_id.strip("<>"))
            if attachment.inline:
                E(el, B + "IsInline", 1)
    body(parent, message, options, version, mime)
    class_element = E(parent, M + "MessageClass", "IPM.Note")
    if meeting is not None:
        class_element.text = meeting(parent)
    E(parent, M + "InternetCPID", 65001)
    flags(parent, message, version)
    E(parent, M + "ContentClass", "urn:content-classes:message")
    E(parent, B + "NativeBodyType", HTML if message.html is not None and not message.html_is_text else PLAIN)
    if version >= 14.0:
        if message.thread_id:
            wbxml.set_opaque(E(parent, M2 + "ConversationId"), conversation_id(message.thread_id))
        categories(parent, message)


def flags(parent: etree._Element, message: Message, version: float) -> None:
    """Read state is sent by the caller; this adds Flag (and, 14.0+, LastVerbExecuted)."""
    flag = E(parent, M + "Flag")
    if FLAGGED in message.keywords:
        E(flag, M + "Status", 2)
        E(flag, M + "FlagType", "Flag for follow up")
    if version >= 14.0 and (ANSWERED in message.keywords or FORWARDED in message.keywords):
        E(parent, M2 + "LastVerbExecuted", 1 if ANSWERED in message.keywords else 3)


def categories(parent: etree._Element, message: Message) -> None:
    names = sorted(category_name(k) for k in message.keywords if not k.startswith("$"))
    el = E(parent, M + "Categories")
    for name in names:
        E(el, M + "Category", name)


def change_data(parent: etree._Element, message: Message, version: float) -> None:
    """What a Change carries: the parts of a message that change in place."""
    E(parent, M + "Read", 1 if SEEN in message.keywords else 0)
    flags(parent, message, version)
    if version >= 14.0:
        categories(parent, message)


def body(parent: etree._Element, message: Message, options: Options, version: float,
         mime: bytes | None) -> None:
    chosen = options.chosen_body()
    el = E(parent, B + "Body")
    if chosen.type == MIME and mime is not None:
        E(el, B + "Type", MIME)
        body_data(el, chosen, mime, len(mime), complete=True, raw=True)
    else:
        kind = HTML if chosen.type == HTML else PLAIN
        text, complete, upstream_size = _representation(message, kind)
        encoded = text.encode()
        E(el, B + "Type", kind)
        body_data(el, chosen, encoded, len(encoded) if complete else max(len(encoded), upstream_size),
              complete=complete)
    preview = options.preview()
    if preview and version >= 14.0:
        E(el, B + "Preview", _one_line(_representation(message, PLAIN)[0])[:preview])


def _representation(message: Message, kind: int) -> tuple[str, bool, int]:
    """(text, whether it is the whole body, upstream size) in the representation asked for,
    converted from the other one where the message lacks it."""
    own, other = (message.html, message.text) if kind == HTML else (message.text, message.html)
    converted = message.html_is_text if kind == HTML else message.text_is_html
    source = own if own is not None else other
    if source is None:
        return "", True, 0
    if source is own and not converted:
        return source.text, not source.truncated, source.size
    text = _to_html(source.text) if kind == HTML else html_to_text(source.text)
    return text, not source.truncated, source.size


def _to_html(text: str) -> str:
    return "<html><body><pre>" + html.escape(text) + "</pre></body></html>"


def html_to_text(markup: str) -> str:
    """The text of an HTML body (for a phone that wants plain text, or a quoted original)."""
    if not markup.strip():
        return ""
    try:
        return str(lxml.html.fromstring(markup).text_content())
    except (etree.ParserError, ValueError):
        return re.sub(r"<[^>]*>", "", markup)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def preview_text(message: Message, length: int) -> str:
    """The first ``length`` characters of the body on one line (Find's Preview)."""
    return _one_line(_representation(message, PLAIN)[0])[:length]


def display_names(addresses: list[Address]) -> str:
    """DisplayTo (and Find's DisplayCc): the names, else the addresses."""
    return "; ".join(a.name or a.email for a in addresses)


def addresses_text(addresses: list[Address]) -> str:
    """Addresses as a header would write them (Email From/To)."""
    return _addresses(addresses)


def _addresses(addresses: list[Address]) -> str:
    out = []
    for a in addresses:
        if a.name:
            name = a.name.replace("\\", "\\\\").replace('"', '\\"')
            out.append(f'"{name}" <{a.email}>')
        else:
            out.append(a.email)
    return ", ".join(out)


def eas_date(value: datetime) -> str:
    """MS-ASDTYPE 2.3: 2026-11-22T10:15:00.000Z."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


LONG_ID_PREFIX = "jmap:"


def long_id(email_id: str) -> str:
    """The LongId of a search result (MS-ASCMD 2.2.3.93): the message, wherever it is."""
    return LONG_ID_PREFIX + email_id


def parse_long_id(text: str | None) -> str | None:
    """The email id a LongId names; None for one the gateway never gave out."""
    if not text or not text.startswith(LONG_ID_PREFIX) or len(text) > 256:
        return None
    found = text[len(LONG_ID_PREFIX):]
    return found if found and found.isascii() and found.isprintable() and "/" not in found else None


def file_reference(blob_id: str, type: str, name: str | None) -> str:
    """An attachment's FileReference: what ItemOperations needs to download it."""
    return "|".join(_quote(p) for p in (blob_id, type, name or "attachment"))


def parse_file_reference(reference: str) -> tuple[str, str, str] | None:
    parts = reference.split("|")
    if len(parts) != 3 or not all(parts[:2]):
        return None
    blob_id, type, name = (unquote(p) for p in parts)
    return blob_id, type, name


def _quote(value: str) -> str:
    return quote(value, safe="@/+=-_.:")
