"""SendMail, SmartReply, SmartForward (MS-ASCMD 2.2.1.16/18/19).

14.0+ sends a ComposeMail document (ClientId, SaveInSentItems, ReplaceMime,
Source, Mime); 12.x sends the MIME itself (Content-Type message/rfc822) with
SaveInSent, ItemId and CollectionId in the query. Success is an empty body.

The message is prepared (items.compose: envelope, From, quoting the
original), stored upstream as a $draft in Drafts, submitted with the user's
Identity (JMAP EmailSubmission), moved to Sent if asked, else removed once
sent. Exactly once (usm.outgoing): a request with a ClientId this device
used before sends nothing again and answers success; 12.x requests, which
have no ClientId, are known by their Message-ID or, lacking one, their bytes.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass

from lxml import etree

import wbxml
from eas_gateway.context import Context
from eas_gateway.errors import CommandStatus
from eas_gateway.items import compose, email
from eas_gateway.xml import child_text
from usm import ids, outgoing, sync_state
from usm.upstream import BodyRequest, Credentials, MailStore, NotFound, SubmissionRefused

log = logging.getLogger(__name__)

C = "{ComposeMail:}"
# MS-ASCMD 2.2.2 common status codes used here.
INVALID_XML, SERVER_ERROR, SUBMISSION_FAILED, NOT_FOUND = 103, 110, 120, 150


@dataclass
class Request:
    kind: str  # SendMail, SmartReply, SmartForward
    raw: bytes
    client_id: str
    save_in_sent: bool
    replace_mime: bool = False
    folder_id: str | None = None  # Source
    item_id: str | None = None
    long_id: str | None = None


async def handle_send(ctx: Context, body: etree._Element | bytes | None) -> bytes:
    return await send(ctx, _parse(ctx, body, "SendMail"))


async def handle_reply(ctx: Context, body: etree._Element | bytes | None) -> bytes:
    return await send(ctx, _parse(ctx, body, "SmartReply"))


async def handle_forward(ctx: Context, body: etree._Element | bytes | None) -> bytes:
    return await send(ctx, _parse(ctx, body, "SmartForward"))


def _parse(ctx: Context, body: etree._Element | bytes | None, kind: str) -> Request:
    if isinstance(body, bytes):  # 12.x: the MIME itself, parameters in the query
        try:
            msg_id = compose.parse(body).get("message-id")
        except compose.ComposeError as exc:  # (found by the HTTP fuzz test: a body that is no MIME)
            log.info("%s: device %s: %s", kind, ctx.line.device_id, exc)
            raise CommandStatus(exc.status, str(exc)) from exc
        client_id = f"mid:{str(msg_id).strip()}" if msg_id else "sha:" + hashlib.sha256(body).hexdigest()
        return Request(kind, body, client_id, ctx.line.save_in_sent, folder_id=ctx.line.params.get("CollectionId"),
                       item_id=ctx.line.params.get("ItemId"), long_id=ctx.line.params.get("LongId"))
    if body is None or body.tag != C + kind:
        raise CommandStatus(INVALID_XML, f"{kind} request without a {kind} element")
    mime = body.find(C + "Mime")
    client_id = child_text(body, C + "ClientId") or ""
    if mime is None or not client_id:
        raise CommandStatus(INVALID_XML, f"{kind} request without Mime or ClientId")
    source = body.find(C + "Source")
    request = Request(kind, wbxml.element_bytes(mime), client_id.strip(),
                      save_in_sent=body.find(C + "SaveInSentItems") is not None,
                      replace_mime=body.find(C + "ReplaceMime") is not None)
    if source is not None:
        request.folder_id = child_text(source, C + "FolderId")
        request.item_id = child_text(source, C + "ItemId")
        request.long_id = child_text(source, C + "LongId")
    return request


async def send(ctx: Context, request: Request) -> bytes:
    """Send a message once per (device, ClientId): a retry finds it sent (usm.outgoing).
    Also what other commands send on the user's behalf (a MeetingResponse's counter-proposal)."""
    user, device = ctx.user, ctx.line.device_id
    async with ctx.db.acquire() as conn:
        record = await outgoing.begin(conn, user, device, request.client_id)
    if record.state == "sent":
        log.info("%s: device %s sent ClientId %r before; not sending it again", request.kind, device,
                 request.client_id)
        return b""
    original_id = await _original_id(ctx, request) if request.kind != "SendMail" else None
    upstream, creds = ctx.upstream.mailstore, ctx.credentials
    roles = {f.role: f.id for f in await upstream.folders(creds) if f.role}
    drafts = roles.get("drafts") or roles.get("sent")
    if drafts is None:
        raise CommandStatus(SERVER_ERROR, "the user has neither a Drafts nor a Sent folder to send from")
    sent_folder = roles.get("sent") if request.save_in_sent else None
    identities = await upstream.identities(creds)
    try:
        msg = compose.parse(request.raw)
        original = await _original(upstream, creds, original_id, forward=request.kind == "SmartForward") \
            if original_id else None
        prepared = compose.prepare(msg, identities, replace_mime=request.replace_mime,
                                   reply_to=original if request.kind == "SmartReply" else None,
                                   forward=original if request.kind == "SmartForward" else None)
    except compose.ComposeError as exc:
        log.info("%s: device %s, ClientId %r: %s", request.kind, device, request.client_id, exc)
        raise CommandStatus(exc.status, str(exc)) from exc
    # Only a retry can find a copy stored before: a fresh record skips the look-up.
    email_id, already_sent = (None, False) if record.fresh else await _stored_copy(upstream, creds, record.marker)
    if email_id is None:
        email_id = await upstream.import_message(creds, prepared.raw, drafts, {"$draft", "$seen", record.marker})
        async with ctx.db.acquire() as conn:
            await outgoing.stored(conn, user, device, request.client_id, email_id)
    if not already_sent:
        try:
            await upstream.submit(creds, email_id, prepared.identity.id, prepared.sender, prepared.recipients,
                                  move=(drafts, sent_folder) if sent_folder and sent_folder != drafts else None)
        except SubmissionRefused as exc:
            log.warning("%s: device %s, ClientId %r: %s", request.kind, device, request.client_id, exc)
            await upstream.destroy_messages(creds, [email_id])
            raise CommandStatus(SUBMISSION_FAILED, str(exc)) from exc
    else:
        log.info("%s: ClientId %r was sent before the gateway could record it; recording it now",
                 request.kind, request.client_id)
    async with ctx.db.acquire() as conn:
        await outgoing.finish(conn, user, device, request.client_id)
    if sent_folder is None:
        await upstream.destroy_messages(creds, [email_id])
    if original_id is not None:
        verb = "$answered" if request.kind == "SmartReply" else "$forwarded"
        await upstream.update_messages(creds, {original_id: {f"keywords/{verb}": True}})
    log.info("%s: device %s sent ClientId %r to %d recipients", request.kind, device, request.client_id,
             len(prepared.recipients))
    return b""


async def _stored_copy(upstream: MailStore, creds: Credentials, marker: str) -> tuple[str | None, bool]:
    """(the copy stored by an earlier try, whether it was sent): see usm.outgoing."""
    found = await upstream.find_by_keyword(creds, marker)
    if not found:
        return None, False
    messages = await upstream.messages(creds, found[:1], BodyRequest())
    copy = messages.get(found[0])
    if copy is None:
        return None, False
    return copy.id, "$draft" not in copy.keywords


async def _original_id(ctx: Context, request: Request) -> str:
    if request.long_id:  # a Search result (MS-ASCMD 2.2.3.93.1): the message wherever it is
        email_id = email.parse_long_id(request.long_id)
        if email_id is None:
            raise CommandStatus(NOT_FOUND, f"{request.kind}: LongId {request.long_id!r} is not one of ours")
        return email_id
    folder, item = request.folder_id or "", request.item_id or ""
    cid = ids.number(folder)
    number = sync_state.item_number(cid, item) if cid is not None else None
    uid = None
    if number is not None:
        async with ctx.db.acquire() as conn:
            uid = await sync_state.item(conn, ctx.user, ctx.line.device_id, int(folder), number)
    if uid is None:
        raise CommandStatus(NOT_FOUND, f"{request.kind}: no item {item!r} in folder {folder!r} on this device")
    return uid


async def _original(upstream: MailStore, creds: Credentials, uid: str, *, forward: bool) -> compose.Original:
    found = await upstream.messages(creds, [uid], BodyRequest(text=True, html=True))
    if uid not in found:
        raise CommandStatus(NOT_FOUND, f"the original message {uid} is gone upstream")
    message = found[uid]
    attachments = []
    if forward:
        for part in message.attachments:
            try:
                content = await upstream.download(creds, part.blob_id, type=part.type, name=part.name or "part")
            except NotFound as exc:
                raise CommandStatus(NOT_FOUND, f"an attachment of the original is gone: {exc}") from exc
            attachments.append((part.type, part.name, content))
    return compose.Original(message, attachments)
