"""Drafts at EAS 16.x, beyond their creation (classes.email_writes._adds): a Sync
Change in Drafts that carries content (To, Cc, Bcc, Subject, Importance, Body,
Attachments/Add and /Delete) revises the draft, and email2:Send in an Add or
a Change sends it (MS-ASEMAIL 2.2.2.69; MS-ASCMD 2.2.3.7.2, 2.2.3.24).

JMAP mail is immutable, so a revised draft is a new upstream email that takes
over the phone's ServerId; the old one is destroyed. Sending submits the
(revised) draft with the user's Identity, Bcc out of the headers and in the
envelope, and moves it to Sent: the next Sync of Drafts, the same request's
included, tells the phone it left Drafts (Exchange does the same).

Exactly once: every new upstream copy carries a marker keyword derived from
the device, the item and the content of the request (usm.outgoing.marker).
A retried request finds its copy by it: revised already, or, without $draft
(the upstream drops it on successful submission), sent already.
"""

from __future__ import annotations

import hashlib
import logging

from lxml import etree

import wbxml
from eas_gateway.context import Context
from eas_gateway.items import compose
from usm import outgoing
from usm.upstream import BodyRequest, Message, NotFound, SubmissionRefused, UpstreamError, keywords_version

log = logging.getLogger(__name__)

EMAIL, EMAIL2, BASE = "{Email:}", "{Email2:}", "{AirSyncBase:}"
CONTENT = frozenset({EMAIL + "To", EMAIL + "Cc", EMAIL2 + "Bcc", EMAIL + "Subject", EMAIL + "Importance",
                     BASE + "Body", BASE + "Attachments", EMAIL2 + "Send"})
MARKER_PREFIX = "$eas-out-"


class DraftFailed(Exception):
    """The draft cannot be revised or sent (the reason; the item gets a Status)."""


def edits_draft(data: etree._Element | None) -> bool:
    """Whether a Change's ApplicationData touches more than Read/Flag/Categories."""
    return data is not None and any(child.tag in CONTENT for child in data)


def sends(data: etree._Element | None) -> bool:
    return data is not None and data.find(EMAIL2 + "Send") is not None


def request_marker(ctx: Context, kind: str, collection_id: int, item: str, data: etree._Element) -> str:
    digest = hashlib.sha256(etree.tostring(data, method="c14n")).hexdigest()
    return outgoing.marker(ctx.user, ctx.line.device_id, f"{kind}:{collection_id}:{item}:{digest}")


async def revise(ctx: Context, collection_id: int, server_id: str, message: Message | None,
                 data: etree._Element, drafts: str) -> tuple[str, str]:
    """Revise (and with Send, send) the draft ``message``; the upstream id that now
    stands for the item and the version (keyword set) the phone shows.

    Order: store the new copy, submit it, then destroy the old draft; a retry
    after a crash at any point finds the copy by its marker and finishes."""
    send = sends(data)
    marker = request_marker(ctx, "send" if send else "change", collection_id, server_id, data)
    done = await _earlier(ctx, marker)
    if done is not None and not (send and "$draft" in done.keywords):
        log.info("Sync: the %s of draft %s was done before the gateway recorded it",
                 "sending" if send else "revision", server_id)
        if message is not None and message.id != done.id:
            await _destroy_quietly(ctx, message.id)
        return done.id, keywords_version(set(done.keywords))
    if message is None:
        raise DraftFailed(f"draft {server_id} is gone upstream")
    raw, prepared = await _content(ctx, message, data, send)
    if done is None:
        keywords = {k for k in message.keywords if not k.startswith(MARKER_PREFIX)} | {"$draft", marker}
        new_id = await ctx.upstream.mailstore.import_message(ctx.credentials, prepared.raw if prepared else raw, drafts,
                                                   keywords)
    else:  # stored by an earlier try that did not get to submit it
        new_id, keywords = done.id, set(done.keywords)
    if prepared is not None:
        await submit(ctx, new_id, prepared, drafts)
        keywords.discard("$draft")
    if new_id != message.id:  # identical bytes are the same email upstream (Email/import alreadyExists)
        await _destroy_quietly(ctx, message.id)
    return new_id, keywords_version(keywords)


async def _content(ctx: Context, message: Message, data: etree._Element,
                   send: bool) -> tuple[bytes, compose.Outgoing | None]:
    """The revised draft, and with Send what goes out (Bcc in the envelope only)."""
    try:
        base = await ctx.upstream.mailstore.download(ctx.credentials, message.blob_id, type="message/rfc822",
                                                     name="draft")
    except NotFound as exc:
        raise DraftFailed(f"the draft {message.id} is gone upstream") from exc
    try:
        raw = compose.draft(data, wbxml.element_bytes, base=base) if edits_content(data) else base
        if not send:
            return raw, None
        return raw, compose.prepare(compose.parse(raw), await ctx.upstream.mailstore.identities(ctx.credentials))
    except compose.ComposeError as exc:
        raise DraftFailed(str(exc)) from exc


def edits_content(data: etree._Element) -> bool:
    return any(child.tag in CONTENT - {EMAIL2 + "Send"} for child in data)


async def submit(ctx: Context, email_id: str, prepared: compose.Outgoing, drafts: str) -> None:
    """Send a stored draft; it moves to Sent (or, without a Sent folder, goes away)."""
    sent = next((f.id for f in await ctx.upstream.mailstore.folders(ctx.credentials) if f.role == "sent"), None)
    try:
        await ctx.upstream.mailstore.submit(ctx.credentials, email_id, prepared.identity.id, prepared.sender,
                                  prepared.recipients, move=(drafts, sent) if sent and sent != drafts else None)
    except SubmissionRefused as exc:
        raise DraftFailed(f"the upstream refused to send it: {exc}") from exc
    if sent is None:
        await _destroy_quietly(ctx, email_id)
    log.info("Sync: device %s sent draft %s to %d recipients", ctx.line.device_id, email_id,
             len(prepared.recipients))


async def _earlier(ctx: Context, marker: str) -> Message | None:
    """The copy an earlier try of the same request stored, if any."""
    found = await ctx.upstream.mailstore.find_by_keyword(ctx.credentials, marker)
    if not found:
        return None
    return (await ctx.upstream.mailstore.messages(ctx.credentials, found[:1], BodyRequest())).get(found[0])


async def _destroy_quietly(ctx: Context, email_id: str) -> None:
    try:
        failed = await ctx.upstream.mailstore.destroy_messages(ctx.credentials, [email_id])
    except UpstreamError as exc:
        failed = {email_id: str(exc)}
    if failed:  # a stale copy stays in Drafts; nothing is lost
        log.warning("Sync: the replaced draft %s was not destroyed: %s", email_id, failed[email_id])
