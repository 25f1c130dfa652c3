"""Sync, write direction: the phone's own Commands in a collection (MS-ASCMD
2.2.3.24 Commands in a request).

- Change: Read, Flag and Categories reach the upstream as keywords, merged per
  field with what changed upstream meanwhile (usm.conflicts, the collection's
  Conflict option). The keyword set the phone now shows becomes the version
  recorded for the item, so the next Sync sends no echo of the phone's own
  change, and sends the server's value where the server won.
- Delete: moved to the Trash folder (DeletesAsMoves, the default) or
  destroyed (DeletesAsMoves 0, or in Trash itself).
- Fetch: answered with the item.
- Add: drafts, in the Drafts folder, from 16.0 (MS-ASCMD 2.2.3.7.2; other
  mail Adds get Status 6). Exactly once: a ClientId already committed gets
  its ServerId again; otherwise the draft is looked up by a marker keyword
  derived from the ClientId before one is stored, so a crash between the
  upstream write and the commit does not make a second draft.

Every command is idempotent upstream: the same request again (the phone
retrying after a lost answer that was never committed) changes nothing twice.
A command that fails gets its own Status in Responses; the rest of the batch
goes on. Nothing here commits: the caller commits the outcome with the next
generation (usm.sync_state.commit), so item map and SyncKey move together.
"""

from __future__ import annotations

import logging

from lxml import etree

import wbxml
from eas_gateway.classes import email_drafts as drafts
from eas_gateway.classes import meetings
from eas_gateway.classes.base import CONVERSION_ERROR, NOT_FOUND, OK, Outcome, added_before, read_commands
from eas_gateway.context import Context
from eas_gateway.items import compose, email, fetch
from eas_gateway.items.options import Options
from eas_gateway.xml import E
from usm import conflicts, outgoing, sync_state
from usm.upstream import BodyRequest, keywords_version, version_keywords

log = logging.getLogger(__name__)

A = "{AirSync:}"


async def apply(ctx: Context, collection_id: int, commands: etree._Element | None, options: Options,
                folder_id: str, *, deletes_as_moves: bool, first_item: int) -> Outcome:
    """Apply the phone's commands; new items are numbered from ``first_item``."""
    out = Outcome()
    if commands is None or len(commands) == 0:
        return out
    out.touched = True
    responses = E(None, A + "Responses")
    mine = await read_commands(ctx, collection_id, commands)
    changes, deletes, fetches, adds = mine.changes, mine.deletes, mine.fetches, mine.adds
    if adds:
        await _adds(ctx, collection_id, adds, folder_id, first_item, out, responses)
    failures: list[tuple[str, str, int]] = []  # (command, ServerId, Status)
    edits = [c for c in changes if drafts.edits_draft(c[2].find(A + "ApplicationData"))]
    changes = [c for c in changes if c not in edits]
    if edits:
        failures += await _draft_edits(ctx, collection_id, edits, folder_id, out)
    if changes:
        failures += await _changes(ctx, changes, options, folder_id, out)
    if deletes:
        failures += await _deletes(ctx, deletes, folder_id, deletes_as_moves, out)
    for name, server_id, status in failures:
        answer = E(responses, A + name)
        E(answer, A + "ServerId", server_id)
        E(answer, A + "Status", status)
    if fetches:
        await _fetches(ctx, fetches, options, folder_id, responses)
    out.responses = responses if len(responses) else None
    return out


async def _adds(ctx: Context, collection_id: int, adds: list[tuple[str, etree._Element]], folder_id: str,
                first_item: int, out: Outcome, responses: etree._Element) -> None:
    user, device = ctx.user, ctx.line.device_id
    drafts_id = await _drafts_folder(ctx)
    async with ctx.db.acquire() as conn:
        known = await sync_state.client_ids(conn, user, device, collection_id, [c for c, _ in adds])
    number = first_item
    for client_id, command in adds:
        answer = E(responses, A + "Add")
        E(answer, A + "ClientId", client_id)
        if added_before(answer, ctx, collection_id, client_id, known):
            continue
        if not client_id or len(client_id) > 64 or float(ctx.version) < 16.0 or folder_id != drafts_id:
            log.warning("Sync: device %s added ClientId %r to collection %d: only drafts, in Drafts, from 16.0",
                        device, client_id, collection_id)
            E(answer, A + "Status", CONVERSION_ERROR)
            continue
        data = command.find(A + "ApplicationData")
        try:
            raw = compose.draft(data, wbxml.element_bytes)
            wanted = email.parse_change(data)
            # email2:Send (MS-ASEMAIL 2.2.2.69): store the draft as it goes out, then send it.
            prepared = compose.prepare(compose.parse(raw), await ctx.upstream.mailstore.identities(ctx.credentials)) \
                if drafts.sends(data) else None
        except (compose.ComposeError, email.ItemError) as exc:
            log.info("Sync: device %s, draft ClientId %r: %s", device, client_id, exc)
            E(answer, A + "Status", CONVERSION_ERROR)
            continue
        marker = outgoing.marker(user, device, f"add:{collection_id}:{client_id}")
        keywords = {"$draft", marker} | {k for k, v in wanted.keywords.items() if v} | set(wanted.categories or ())
        found = await ctx.upstream.mailstore.messages(ctx.credentials, await ctx.upstream.mailstore.find_by_keyword(
            ctx.credentials, marker), BodyRequest())
        if found:
            log.info("Sync: draft ClientId %r of device %s was stored before the gateway recorded it", client_id,
                     device)
            uid, keywords = next(iter(found)), set(next(iter(found.values())).keywords)
        else:
            uid = await ctx.upstream.mailstore.import_message(ctx.credentials, prepared.raw if prepared else raw,
                                                              drafts_id,
                                                    keywords)
        if prepared is not None and "$draft" in keywords:
            try:
                await drafts.submit(ctx, uid, prepared, drafts_id)
            except drafts.DraftFailed as exc:  # the draft stays, and the phone learns it was not sent
                log.warning("Sync: device %s, draft ClientId %r stored but not sent: %s", device, client_id, exc)
                E(answer, A + "Status", CONVERSION_ERROR)
                continue
            keywords.discard("$draft")
        out.added.append((client_id, number, uid, keywords_version(keywords)))
        E(answer, A + "ServerId", sync_state.server_id(collection_id, number))
        E(answer, A + "Status", OK)
        number += 1


async def _drafts_folder(ctx: Context) -> str | None:
    return next((f.id for f in await ctx.upstream.mailstore.folders(ctx.credentials) if f.role == "drafts"), None)


async def _draft_edits(ctx: Context, collection_id: int,
                       edits: list[tuple[str, tuple[int, str, str] | None, etree._Element]], folder_id: str,
                       out: Outcome) -> list[tuple[str, str, int]]:
    """Changes that revise or send a draft (classes.email_drafts): 16.0+, in Drafts."""
    failures = []
    drafts_id = await _drafts_folder(ctx)
    uids = [found[1] for _, found, _ in edits if found]
    current = await ctx.upstream.mailstore.messages(ctx.credentials, uids, BodyRequest()) if uids else {}
    for server_id, found, command in edits:
        if float(ctx.version) < 16.0 or folder_id != drafts_id or found is None:
            log.info("Sync: device %s changed the content of %s: only drafts, in Drafts, from 16.0",
                     ctx.line.device_id, server_id)
            failures.append(("Change", server_id, NOT_FOUND if found is None else CONVERSION_ERROR))
            continue
        number, uid, _ = found
        message = current.get(uid)
        if message is not None and "$draft" not in message.keywords:
            failures.append(("Change", server_id, CONVERSION_ERROR))  # a sent message is no draft to edit
            continue
        try:
            new_uid, version = await drafts.revise(ctx, collection_id, server_id, message,
                                                   command.find(A + "ApplicationData"), drafts_id)
        except drafts.DraftFailed as exc:
            log.info("Sync: device %s, draft %s: %s", ctx.line.device_id, server_id, exc)
            failures.append(("Change", server_id, NOT_FOUND if message is None else CONVERSION_ERROR))
            continue
        out.replaced[uid] = (number, new_uid, version)
    return failures


async def _changes(ctx: Context, changes: list[tuple[str, tuple[int, str, str] | None, etree._Element]],
                   options: Options, folder_id: str, out: Outcome) -> list[tuple[str, str, int]]:
    failures = []
    uids = [found[1] for _, found, _ in changes if found]
    current = await ctx.upstream.mailstore.messages(ctx.credentials, uids, BodyRequest()) if uids else {}
    patches: dict[str, dict[str, bool | None]] = {}
    shown: dict[str, tuple[int, str, str]] = {}  # uid -> (item, version shown, ServerId)
    for server_id, found, command in changes:
        message = current.get(found[1]) if found else None
        if found is None or message is None or folder_id not in message.folder_ids:
            log.info("Sync: device %s changed %s, which is no item of the folder (any more)",
                     ctx.line.device_id, server_id)
            failures.append(("Change", server_id, NOT_FOUND))
            continue
        number, uid, version = found
        try:
            wanted = email.parse_change(command.find(A + "ApplicationData"))
        except email.ItemError as exc:
            log.info("Sync: device %s changed %s: %s", ctx.line.device_id, server_id, exc)
            failures.append(("Change", server_id, CONVERSION_ERROR))
            continue
        patch, now_shown = conflicts.merge(
            version_keywords(version), message.keywords, wanted.keywords, wanted.categories,
            conflict=options.conflict if options.conflict is not None else conflicts.SERVER_WINS)
        if patch:
            patches[uid] = {f"keywords/{k}": (True if v else None) for k, v in patch.items()}
        shown[uid] = (number, keywords_version(now_shown), server_id)
    failed = await ctx.upstream.mailstore.update_messages(ctx.credentials, patches) if patches else {}
    for uid, (number, version, server_id) in shown.items():
        if uid in failed:
            log.warning("Sync: upstream refused the change of %s (%s): %s", server_id, uid, failed[uid])
            failures.append(("Change", server_id, NOT_FOUND if failed[uid] == "notFound" else CONVERSION_ERROR))
        else:
            out.versions[uid] = (number, version)
    return failures


async def _deletes(ctx: Context, deletes: list[tuple[str, tuple[int, str, str] | None]], folder_id: str,
                   deletes_as_moves: bool, out: Outcome) -> list[tuple[str, str, int]]:
    failures = []
    trash = None
    if deletes_as_moves:
        trash = next((f.id for f in await ctx.upstream.mailstore.folders(ctx.credentials) if f.role == "trash"), None)
    targets: dict[str, tuple[int, str]] = {}
    for server_id, found in deletes:
        if found is None:
            log.info("Sync: device %s deleted %s, which it does not have", ctx.line.device_id, server_id)
            failures.append(("Delete", server_id, NOT_FOUND))
            continue
        targets[found[1]] = (found[0], server_id)
    if trash is not None and trash != folder_id:
        # A message gone from the folder already (the same request, retried) is left alone.
        current = await ctx.upstream.mailstore.messages(ctx.credentials, list(targets), BodyRequest())
        moves = {uid: {f"mailboxIds/{folder_id}": None, f"mailboxIds/{trash}": True}
                 for uid in targets if uid in current and folder_id in current[uid].folder_ids}
        failed = await ctx.upstream.mailstore.update_messages(ctx.credentials, moves) if moves else {}
    else:
        failed = await ctx.upstream.mailstore.destroy_messages(ctx.credentials, list(targets))
    for uid, (number, server_id) in targets.items():
        if uid in failed and failed[uid] != "notFound":
            log.warning("Sync: upstream refused to delete %s (%s): %s", server_id, uid, failed[uid])
            failures.append(("Delete", server_id, CONVERSION_ERROR))
        else:
            out.deleted[uid] = number
    return failures


async def _fetches(ctx: Context, fetches: list[tuple[str, str | None]], options: Options, folder_id: str,
                   responses: etree._Element) -> None:
    found, mime = await fetch.for_display(ctx.upstream.mailstore, ctx.credentials,
                                          [uid for _, uid in fetches if uid is not None], options)
    invitations = await meetings.for_messages(ctx, options, list(found.values()))
    for server_id, uid in fetches:
        answer = E(responses, A + "Fetch")
        E(answer, A + "ServerId", server_id)
        message = found.get(uid) if uid is not None else None
        if message is None or folder_id not in message.folder_ids:
            E(answer, A + "Status", NOT_FOUND)
            continue
        E(answer, A + "Status", OK)
        email.application_data(E(answer, A + "ApplicationData"), message, options, float(ctx.version),
                               mime.get(message.id), invitations.get(message.id))
