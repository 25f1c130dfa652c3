"""The Contacts class (MS-ASCNTC): vCards in CardDAV address books.

Reading: objects by multiget, converted by items.contacts. Writing:
- Add: the card is PUT with ``If-None-Match: *`` at a path derived from the
  phone's ClientId (and a UID derived the same way, unique across the user's
  collections as Cyrus wants). A ClientId already committed gets its ServerId
  again; a crash between the PUT and the commit leaves the card at that path,
  where the retried Add finds it (412): one card, never two.
- Change: the phone's fields are merged into the card as it is upstream (never
  rebuilt from what the phone showed) and PUT with ``If-Match``. If the card
  changed upstream since the phone saw it, the Conflict option decides (server
  wins by default: Status 7, and the next Sync brings the server's card).
- Delete: DELETE; a card already gone is no failure.
A share that does not allow the write is refused per item (Status 6), never 5xx.
"""

from __future__ import annotations

import hashlib
import logging
from typing import TYPE_CHECKING

from lxml import etree

from eas_gateway.classes.base import (
    CONFLICT,
    CONVERSION_ERROR,
    NOT_FOUND,
    NOT_THERE,
    OK,
    A,
    Found,
    Outcome,
    Rendered,
    answer,
    read_commands,
)
from eas_gateway.items import contacts
from eas_gateway.items.options import PLAIN, Options
from eas_gateway.items.vcard import VCardError
from eas_gateway.xml import E
from usm import conflicts, sync_state
from usm.upstream import ItemSource, NotFound, PreconditionFailed, WriteRefused
from usm.upstream.dav import CONTACTS, DavObject

if TYPE_CHECKING:
    from eas_gateway.context import Context

log = logging.getLogger(__name__)

VCARD_TYPE = "text/vcard; charset=utf-8"
MAX_CLIENT_ID = 64  # MS-ASCMD 2.2.3.28.1: ClientId is at most 64 characters


class ContactsClass:
    kind = CONTACTS
    name = "Contacts"

    def source(self, ctx: Context, folder_id: str) -> ItemSource:
        return ctx.upstream.items(ctx.credentials, folder_id)

    async def render(self, ctx: Context, folder_id: str, adds: list[str], changes: list[str],
                     options: Options) -> Rendered:
        out = Rendered()
        found = await self._objects(ctx, folder_id, adds + changes)
        for uid in adds + changes:
            if uid not in found:
                continue
            try:
                data = self._data(ctx, found[uid], options)
            except Exception as exc:  # one card's converter bug must not block the folder
                log.exception("Sync: card %s could not be converted", uid)
                out.failed[uid] = f"{type(exc).__name__}: {exc}"[:500]
                continue
            (out.adds if uid in adds else out.changes)[uid] = data
        return out

    async def whole_items(self, ctx: Context, folder_id: str, uids: list[str],
                          options: Options) -> dict[str, etree._Element]:
        found = await self._objects(ctx, folder_id, uids)
        return {uid: self._data(ctx, obj, options) for uid, obj in found.items()}

    async def _objects(self, ctx: Context, folder_id: str, uids: list[str]) -> dict[str, DavObject]:
        if not uids:
            return {}
        path = ctx.upstream.dav_path(folder_id)
        assert ctx.upstream.dav is not None
        return await ctx.upstream.dav.multiget(ctx.credentials, path, CONTACTS, [u for u in uids if u.startswith(path)])

    def _data(self, ctx: Context, obj: DavObject, options: Options) -> etree._Element:
        data = E(None, A + "ApplicationData")
        plain = next((b for b in options.body if b.type == PLAIN), None)
        contacts.application_data(data, contacts.fields(obj.data), version=float(ctx.version),
                                  truncation=plain.truncation if plain else None,
                                  date_hour=contacts.birthday_time(ctx.line.device_type, None))
        return data

    async def apply(self, ctx: Context, collection_id: int, commands: etree._Element | None, options: Options,
                    folder_id: str, *, deletes_as_moves: bool, first_item: int) -> Outcome:
        out = Outcome()
        if commands is None or len(commands) == 0:
            return out
        out.touched = True
        responses = E(None, A + "Responses")
        mine = await read_commands(ctx, collection_id, commands)
        path = ctx.upstream.dav_path(folder_id)
        ghosted = set(options.supported) if options.supported is not None else None
        if mine.adds:
            await self._adds(ctx, collection_id, path, mine.adds, first_item, out, responses)
        for server_id, found, command in mine.changes:
            status = await self._change(ctx, path, found, command.find(A + "ApplicationData"), options,
                                        ghosted, out)
            if status != OK:
                answer(responses, "Change", server_id, status)
        for server_id, found in mine.deletes:
            status = await self._delete(ctx, found, out)
            if status != OK:
                answer(responses, "Delete", server_id, status)
        if mine.fetches:
            found_data = await self.whole_items(ctx, folder_id, [u for _, u in mine.fetches if u], options)
            for server_id, uid in mine.fetches:
                element = E(responses, A + "Fetch")
                E(element, A + "ServerId", server_id)
                if uid is None or uid not in found_data:
                    E(element, A + "Status", NOT_FOUND)
                    continue
                E(element, A + "Status", OK)
                element.append(found_data[uid])
        out.responses = responses if len(responses) else None
        return out

    async def move(self, ctx: Context, moves: list[tuple[str, str, str]]) -> dict[str, tuple[str, str] | str]:
        """A card moves as a copy to the other address book (same object name, If-None-Match:
        a retry finds the copy it made) and then the DELETE of the original (gone already on
        a retry). CardDAV servers take the same UID in two address books (Cyrus and Radicale
        both do), so the copy keeps the card exactly."""
        dav = ctx.upstream.dav
        assert dav is not None
        out: dict[str, tuple[str, str] | str] = {}
        for uid, source, destination in moves:
            source_path, destination_path = ctx.upstream.dav_path(source), ctx.upstream.dav_path(destination)
            new_path = destination_path + uid.rpartition("/")[2]
            found = (await dav.multiget(ctx.credentials, source_path, CONTACTS, [uid])).get(uid) \
                if uid.startswith(source_path) else None
            if found is None:
                # Gone from the source: moved there by an earlier try whose answer was lost?
                copied = await dav.etags(ctx.credentials, destination_path, CONTACTS, [new_path])
                out[uid] = (new_path, copied[new_path]) if new_path in copied else NOT_THERE
                continue
            try:
                etag, _ = await dav.create(ctx.credentials, new_path, found.data, VCARD_TYPE)
                await dav.delete(ctx.credentials, uid)
            except WriteRefused as exc:
                log.warning("MoveItems: the upstream refused to move card %s: %s", uid, exc)
                out[uid] = str(exc)[:200]
                continue
            out[uid] = (new_path, etag)
        return out

    async def _adds(self, ctx: Context, collection_id: int, path: str, adds: list[tuple[str, etree._Element]],
                    first_item: int, out: Outcome, responses: etree._Element) -> None:
        dav = ctx.upstream.dav
        assert dav is not None
        device = ctx.line.device_id
        async with ctx.db.acquire() as conn:
            known = await sync_state.client_ids(conn, ctx.user, device, collection_id, [c for c, _ in adds])
        number = first_item
        for client_id, command in adds:
            element = E(responses, A + "Add")
            E(element, A + "ClientId", client_id)
            if client_id in known:
                log.info("Sync: device %s added ClientId %r again; it is %s already", device, client_id,
                         sync_state.server_id(collection_id, known[client_id]))
                E(element, A + "ServerId", sync_state.server_id(collection_id, known[client_id]))
                E(element, A + "Status", OK)
                continue
            if not client_id or len(client_id) > MAX_CLIENT_ID:
                log.info("Sync: device %s added a contact with ClientId %r", device, client_id)
                E(element, A + "Status", CONVERSION_ERROR)
                continue
            name = _object_name(ctx.user, device, collection_id, client_id)
            try:
                card = contacts.merge(None, contacts.read_phone(command.find(A + "ApplicationData")), uid=name)
                etag, created = await dav.create(ctx.credentials, f"{path}{name}.vcf", card, VCARD_TYPE)
            except contacts.ContactError as exc:
                log.info("Sync: device %s, contact ClientId %r: %s", device, client_id, exc)
                E(element, A + "Status", CONVERSION_ERROR)
                continue
            except WriteRefused as exc:
                log.warning("Sync: the upstream refused the contact ClientId %r of device %s: %s", client_id,
                            device, exc)
                E(element, A + "Status", CONVERSION_ERROR)
                continue
            if not created:
                log.info("Sync: contact ClientId %r of device %s was stored before the gateway recorded it",
                         client_id, device)
            out.added.append((client_id, number, f"{path}{name}.vcf", etag))
            E(element, A + "ServerId", sync_state.server_id(collection_id, number))
            E(element, A + "Status", OK)
            number += 1

    async def _change(self, ctx: Context, path: str, found: Found | None, data: etree._Element | None,
                      options: Options, ghosted: set[str] | None, out: Outcome) -> int:
        dav = ctx.upstream.dav
        assert dav is not None
        if found is None:
            return NOT_FOUND
        number, uid, version = found
        try:
            phone = contacts.read_phone(data)
        except contacts.ContactError as exc:
            log.info("Sync: device %s changed contact %s: %s", ctx.line.device_id, uid, exc)
            return CONVERSION_ERROR
        for _ in range(3):  # a card that keeps changing under us: give up after a few rounds
            current = (await dav.multiget(ctx.credentials, path, CONTACTS, [uid])).get(uid)
            if current is None:
                return NOT_FOUND
            if current.etag != version and (options.conflict if options.conflict is not None
                                            else conflicts.SERVER_WINS) == conflicts.SERVER_WINS:
                log.info("Sync: contact %s changed upstream since device %s saw it; the server's wins",
                         uid, ctx.line.device_id)
                return CONFLICT
            try:
                card = contacts.merge(current.data, phone, uid=uid, ghosted=ghosted)
                etag = await dav.replace(ctx.credentials, uid, card, VCARD_TYPE, current.etag)
            except (contacts.ContactError, VCardError) as exc:
                log.info("Sync: device %s changed contact %s: %s", ctx.line.device_id, uid, exc)
                return CONVERSION_ERROR
            except WriteRefused as exc:
                log.warning("Sync: the upstream refused the change of contact %s: %s", uid, exc)
                return CONVERSION_ERROR
            except NotFound:
                return NOT_FOUND
            except PreconditionFailed:
                continue  # changed between our read and our write: look again
            out.versions[uid] = (number, etag)
            return OK
        return CONFLICT

    async def _delete(self, ctx: Context, found: Found | None, out: Outcome) -> int:
        dav = ctx.upstream.dav
        assert dav is not None
        if found is None:
            return NOT_FOUND
        number, uid, _ = found
        try:
            await dav.delete(ctx.credentials, uid)
        except WriteRefused as exc:
            log.warning("Sync: the upstream refused to delete contact %s: %s", uid, exc)
            return CONVERSION_ERROR
        out.deleted[uid] = number
        return OK


def _object_name(user: str, device: str, collection_id: int, client_id: str) -> str:
    """The object name (and UID) of a phone's new contact: the same for a retried Add,
    unique across the user's collections and devices."""
    digest = hashlib.sha256(f"{user}\0{device}\0{collection_id}\0{client_id}".encode()).hexdigest()
    return f"eas-{digest[:32]}"
