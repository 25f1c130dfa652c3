"""ItemOperations (MS-ASCMD 2.2.1.10): Fetch of a mail item by ServerId, and
of an attachment by FileReference, with body preferences and Range.

EmptyFolderContents deletes a folder's messages (and with DeleteSubFolders
its subfolders). Move is not offered (Status 2 in its own element; phones
use MoveItems). Each operation has its own Status, so one bad reference does
not fail the rest.
"""

from __future__ import annotations

import base64
import logging
import re

from lxml import etree

from eas_gateway import classes
from eas_gateway.classes import attachments
from eas_gateway.classes.email import EmailClass
from eas_gateway.context import Context
from eas_gateway.errors import CommandStatus
from eas_gateway.items import email
from eas_gateway.items.options import OptionsError
from eas_gateway.items.options import parse as parse_options
from eas_gateway.xml import E, child_text
from usm import folders, hierarchy, ids, sync_state
from usm.upstream import (
    BodyRequest,
    FolderRefused,
    NotFound,
)

log = logging.getLogger(__name__)

I = "{ItemOperations:}"
A = "{AirSync:}"
B = "{AirSyncBase:}"
# MS-ASCMD 2.2.3.177.7 ItemOperations Status values.
OK, PROTOCOL_ERROR, SERVER_ERROR, NOT_FOUND, BAD_RANGE, UNKNOWN_STORE = 1, 2, 3, 6, 8, 9
BAD_ATTACHMENT = 15
# Phones fetch an attachment or a few items at a time; a request of thousands stalls everyone else.
MAX_OPERATIONS = 100
RANGE = re.compile(r"^([0-9]{1,10})-([0-9]{1,10})$")  # ASCII digits only: the d class of re takes "١"


async def handle(ctx: Context, tree: etree._Element | None) -> etree._Element:
    if tree is None or tree.tag != I + "ItemOperations":
        raise CommandStatus(PROTOCOL_ERROR, "ItemOperations request without an ItemOperations element")
    if len(tree) > MAX_OPERATIONS:
        raise CommandStatus(PROTOCOL_ERROR, f"ItemOperations with {len(tree)} operations (at most {MAX_OPERATIONS})")
    root = E(None, I + "ItemOperations")
    E(root, I + "Status", OK)
    response = E(root, I + "Response")
    for operation in tree:
        name = etree.QName(operation).localname
        if name == "Fetch":
            await _fetch(ctx, operation, E(response, I + "Fetch"))
        elif name == "EmptyFolderContents":
            await _empty(ctx, operation, E(response, I + "EmptyFolderContents"))
        else:
            log.info("ItemOperations %s is not offered yet (device %s)", name, ctx.line.device_id)
            E(E(response, operation.tag), I + "Status", PROTOCOL_ERROR)
    return root


async def _empty(ctx: Context, request: etree._Element, out: etree._Element) -> None:
    """EmptyFolderContents (MS-ASCMD 2.2.3.56): every message of a mail folder
    deleted for good (one also filed in another folder only leaves this one),
    and with DeleteSubFolders its subfolders too. The device learns it through
    the folder's next Sync (Deletes) and FolderSync."""
    collection_id = child_text(request, A + "CollectionId") or ""
    E(out, I + "Status", OK)
    E(out, A + "CollectionId", collection_id)
    status = out.find(I + "Status")
    async with ctx.db.acquire() as conn:
        cid = ids.number(collection_id)
        found = await folders.upstream_ids(conn, ctx.user, [cid]) if cid is not None else {}
    folder_id = found.get(cid) if cid is not None else None
    if folder_id is None or not folder_id.startswith("jmap:"):
        log.info("ItemOperations EmptyFolderContents: device %s named no mail folder (%r)",
                 ctx.line.device_id, collection_id)
        status.text = str(PROTOCOL_ERROR)
        return
    _, uids = await ctx.upstream.mailstore.mail(ctx.credentials).listing(folder_id, None)
    current = await ctx.upstream.mailstore.messages(ctx.credentials, uids, BodyRequest()) if uids else {}
    elsewhere = {uid: {f"mailboxIds/{folder_id}": None} for uid, m in current.items() if len(m.folder_ids) > 1}
    failed = await ctx.upstream.mailstore.update_messages(ctx.credentials, elsewhere) if elsewhere else {}
    failed.update(await ctx.upstream.mailstore.destroy_messages(ctx.credentials,
                                                      [uid for uid in current if uid not in elsewhere]))
    if request.find(f"{I}Options/{I}DeleteSubFolders") is not None:
        for child in hierarchy.descendants(await ctx.upstream.mailstore.folders(ctx.credentials), folder_id):
            if child.role:
                continue
            try:
                await ctx.upstream.mailstore.destroy_folder(ctx.credentials, child.id)
            except (NotFound, FolderRefused) as exc:
                failed[child.id] = str(exc)
    if failed:
        log.warning("ItemOperations EmptyFolderContents of %s: the upstream refused %d: %s", folder_id,
                    len(failed), sorted(failed.items())[:5])
        status.text = str(SERVER_ERROR)
    else:
        log.info("ItemOperations EmptyFolderContents: %d messages of %s deleted", len(current), folder_id)


async def _fetch(ctx: Context, request: etree._Element, out: etree._Element) -> None:
    store = child_text(request, I + "Store")
    if store is None or store.lower() != "mailbox":
        log.info("ItemOperations Fetch from store %r: only Mailbox is offered", store)
        E(out, I + "Status", UNKNOWN_STORE)
        return
    reference = child_text(request, B + "FileReference")
    if reference is not None:
        await _attachment(ctx, request, reference, out)
        return
    long_id = child_text(request, "{Search:}LongId")
    if long_id is not None:
        await _by_long_id(ctx, request, long_id, out)
        return
    collection_id, server_id = child_text(request, A + "CollectionId"), child_text(request, A + "ServerId")
    if server_id is not None and email.parse_long_id(server_id) is not None:  # a Find result's ServerId
        await _by_long_id(ctx, request, server_id, out)
        return
    if collection_id is None or server_id is None:
        E(out, I + "Status", PROTOCOL_ERROR)
        return
    await _item(ctx, request, collection_id, server_id, out)


async def _by_long_id(ctx: Context, request: etree._Element, long_id: str, out: etree._Element) -> None:
    """A Search result, by its LongId (MS-ASCMD 2.2.3.93.2): the message wherever it is."""
    email_id = email.parse_long_id(long_id)
    try:
        options = parse_options(request.findall(I + "Options"))
    except OptionsError as exc:
        log.info("ItemOperations Fetch: %s", exc)
        E(out, I + "Status", PROTOCOL_ERROR)
        return
    data = (await EmailClass().whole_items(ctx, None, [email_id], options)).get(email_id) if email_id else None
    if data is None:
        log.info("ItemOperations Fetch: LongId %r is no message of %s", long_id, ctx.user)
        E(out, I + "Status", NOT_FOUND)
        E(out, "{Search:}LongId", long_id)
        return
    E(out, I + "Status", OK)
    E(out, "{Search:}LongId", long_id)
    E(out, A + "Class", "Email")
    properties = E(out, I + "Properties")
    for child in list(data):
        properties.append(child)


async def _item(ctx: Context, request: etree._Element, collection_id: str, server_id: str,
                out: etree._Element) -> None:
    try:
        options = parse_options(request.findall(I + "Options"))
    except OptionsError as exc:
        log.info("ItemOperations Fetch: %s", exc)
        E(out, I + "Status", PROTOCOL_ERROR)
        return
    uid = folder_id = None
    cid = ids.number(collection_id)
    number = sync_state.item_number(cid, server_id) if cid is not None else None
    if cid is not None and number is not None:
        async with ctx.db.acquire() as conn:
            uid = await sync_state.item(conn, ctx.user, ctx.line.device_id, cid, number)
            folder_id = (await folders.upstream_ids(conn, ctx.user, [cid])).get(cid)
    cls = classes.of_folder(folder_id) if folder_id else None
    if cls is not None and folder_id is not None and uid is not None:
        options = parse_options(request.findall(I + "Options"), item_class=cls.name)
        data = (await cls.whole_items(ctx, folder_id, [uid], options)).get(uid)
    else:
        data = None
    if data is None or cls is None:
        log.info("ItemOperations Fetch: %s/%s is not an item of device %s", collection_id, server_id,
                 ctx.line.device_id)
        E(out, I + "Status", NOT_FOUND)
        E(out, A + "CollectionId", collection_id)
        E(out, A + "ServerId", server_id)
        return
    E(out, I + "Status", OK)
    E(out, A + "CollectionId", collection_id)
    E(out, A + "ServerId", server_id)
    E(out, A + "Class", cls.name)
    properties = E(out, I + "Properties")
    for child in list(data):
        properties.append(child)


async def _attachment(ctx: Context, request: etree._Element, reference: str, out: etree._Element) -> None:
    try:
        data, content_type = await attachments.read(ctx, reference)
    except attachments.UnknownReference:
        log.info("ItemOperations Fetch: FileReference %r is not one of ours", reference)
        E(out, I + "Status", BAD_ATTACHMENT)
        E(out, B + "FileReference", reference)
        return
    except NotFound as exc:
        log.info("ItemOperations Fetch: attachment %r not found upstream: %s", reference, exc)
        E(out, I + "Status", NOT_FOUND)
        E(out, B + "FileReference", reference)
        return
    wanted_range = child_text(request, f"{I}Options/{I}Range")
    part = data
    if wanted_range is not None:
        match = RANGE.match(wanted_range.strip())
        if not match or int(match[1]) > int(match[2]) or (data and int(match[1]) >= len(data)):
            log.info("ItemOperations Fetch: Range %r of a %d-byte attachment", wanted_range, len(data))
            E(out, I + "Status", BAD_RANGE)
            E(out, B + "FileReference", reference)
            return
        part = data[int(match[1]):int(match[2]) + 1]
    E(out, I + "Status", OK)
    E(out, B + "FileReference", reference)
    properties = E(out, I + "Properties")
    E(properties, B + "ContentType", content_type)
    if wanted_range is not None:
        first = int(wanted_range.split("-")[0])
        E(properties, I + "Range", f"{first}-{first + len(part) - 1}")
        E(properties, I + "Total", len(data))
    E(properties, I + "Data", base64.b64encode(part).decode("ascii"))

