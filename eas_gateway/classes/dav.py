"""Item classes whose items are DAV objects: contacts, calendars, tasks, notes.

``DavClass`` does what every such class does the same way; a subclass says how one
object is shown to a phone (``to_phone``) and how a phone's ApplicationData goes into
the stored object (``from_phone``), and which errors mean "this item cannot be
converted" (``conversion_errors``).

Reading: objects by multiget. Writing:
- Add: the object is PUT with ``If-None-Match: *`` at a path derived from the
  phone's ClientId (and a UID derived the same way, unique across the user's
  collections as Cyrus wants). A ClientId already committed gets its ServerId
  again; a crash between the PUT and the commit leaves the object at that path,
  where the retried Add finds it (412): one object, never two.
- Change: the phone's fields are merged into the object as it is upstream (never
  rebuilt from what the phone showed) and PUT with ``If-Match``. If it changed
  upstream since the phone saw it, the Conflict option decides (server wins by
  default: Status 7, and the next Sync brings the server's version).
- Delete: DELETE; an object already gone is no failure.
- Move (MoveItems): WebDAV MOVE under the same object name (a retry finds it moved).
A share that does not allow the write is refused per item (Status 6), never 5xx.
"""

from __future__ import annotations

import hashlib
import logging
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING

from lxml import etree

from eas_gateway.classes.base import (
    CONFLICT,
    CONVERSION_ERROR,
    INSTANCE_ID,
    NOT_FOUND,
    NOT_THERE,
    OK,
    A,
    Found,
    Outcome,
    Rendered,
    added_before,
    answer,
    read_commands,
)
from eas_gateway.items.options import Options
from eas_gateway.xml import E, child_text
from usm import conflicts, sync_state
from usm.upstream import ItemSource, NotFound, PreconditionFailed, WriteRefused
from usm.upstream.dav_store import DavObject

if TYPE_CHECKING:
    from eas_gateway.context import Context

log = logging.getLogger(__name__)

MAX_CLIENT_ID = 64  # MS-ASCMD 2.2.3.28.1: ClientId is at most 64 characters


class InstanceRefused(ValueError):
    """A Change or Delete of one occurrence (InstanceId) the class cannot make (Status 6)."""


class DavClass(ABC):
    kind: str
    name: str
    content_type: str
    extension: str
    conversion_errors: tuple[type[Exception], ...] = ()
    supported_refused = False
    first_version = "12.0"

    @abstractmethod
    def to_phone(self, ctx: Context, text: str, options: Options) -> etree._Element:
        """The ApplicationData of one stored object."""

    @abstractmethod
    def from_phone(self, ctx: Context, stored: str | None, data: etree._Element | None, options: Options, *,
                   uid: str) -> str:
        """The object with the phone's ApplicationData in it (``stored`` None: a new one
        whose UID is ``uid``); raises one of ``conversion_errors`` for what cannot be stored."""

    def from_phone_instance(self, ctx: Context, stored: str, data: etree._Element | None, options: Options,
                            instance: str, *, deleted: bool) -> str:
        """The object with one occurrence changed (``data``) or deleted (16.0 InstanceId);
        a class without occurrences refuses it."""
        raise InstanceRefused(f"a {self.name} item has no occurrences (InstanceId {instance!r})")

    def source(self, ctx: Context, folder_id: str, options: Options | None = None) -> ItemSource:
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
            except Exception as exc:  # one object's converter bug must not block the folder
                log.exception("Sync: %s %s could not be converted", self.name, uid)
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
        return await ctx.upstream.dav.multiget(ctx.credentials, path, self.kind,
                                               [u for u in uids if u.startswith(path)])

    def _data(self, ctx: Context, obj: DavObject, options: Options) -> etree._Element:
        return self.to_phone(ctx, obj.data, options)

    async def apply(self, ctx: Context, collection_id: int, commands: etree._Element | None, options: Options,
                    folder_id: str, *, deletes_as_moves: bool, first_item: int) -> Outcome:
        out = Outcome()
        if commands is None or len(commands) == 0:
            return out
        out.touched = True
        responses = E(None, A + "Responses")
        mine = await read_commands(ctx, collection_id, commands)
        path = ctx.upstream.dav_path(folder_id)
        if mine.adds:
            await self._adds(ctx, collection_id, path, mine.adds, first_item, options, out, responses)
        for server_id, found, command in mine.changes:
            status = await self._change(ctx, path, found, command.find(A + "ApplicationData"), options, out,
                                        instance=child_text(command, INSTANCE_ID) or None)
            if status != OK:
                answer(responses, "Change", server_id, status)
        for (server_id, found), instance in zip(mine.deletes, mine.delete_instances, strict=True):
            if instance is not None:  # one occurrence: a change of the series
                status = await self._change(ctx, path, found, None, options, out, instance=instance, deleted=True)
            else:
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
        """An object moves by WebDAV MOVE under the same object name: whole, UID included
        (CalDAV servers want a UID once per user, so no copy can be made first). On a
        retry whose answer was lost the object is at the destination already."""
        dav = ctx.upstream.dav
        assert dav is not None
        out: dict[str, tuple[str, str] | str] = {}
        for uid, source, destination in moves:
            source_path, destination_path = ctx.upstream.dav_path(source), ctx.upstream.dav_path(destination)
            new_path = destination_path + uid.rpartition("/")[2]
            try:
                etag = await dav.move(ctx.credentials, uid, new_path) if uid.startswith(source_path) else None
            except (WriteRefused, PreconditionFailed) as exc:
                log.warning("MoveItems: the upstream refused to move %s: %s", uid, exc)
                out[uid] = str(exc)[:200]
                continue
            if etag is None:
                # Gone from the source: moved there by an earlier try whose answer was lost?
                copied = await dav.etags(ctx.credentials, destination_path, self.kind, [new_path])
                out[uid] = (new_path, copied[new_path]) if new_path in copied else NOT_THERE
                continue
            out[uid] = (new_path, etag)
        return out

    async def _adds(self, ctx: Context, collection_id: int, path: str, adds: list[tuple[str, etree._Element]],
                    first_item: int, options: Options, out: Outcome, responses: etree._Element) -> None:
        dav = ctx.upstream.dav
        assert dav is not None
        device = ctx.line.device_id
        async with ctx.db.acquire() as conn:
            known = await sync_state.client_ids(conn, ctx.user, device, collection_id, [c for c, _ in adds])
        number = first_item
        for client_id, command in adds:
            element = E(responses, A + "Add")
            E(element, A + "ClientId", client_id)
            if added_before(element, ctx, collection_id, client_id, known):
                continue
            if not client_id or len(client_id) > MAX_CLIENT_ID:
                log.info("Sync: device %s added a %s item with ClientId %r", device, self.name, client_id)
                E(element, A + "Status", CONVERSION_ERROR)
                continue
            name = _object_name(ctx.user, device, collection_id, client_id)
            object_path = f"{path}{name}.{self.extension}"
            try:
                text = self.from_phone(ctx, None, command.find(A + "ApplicationData"), options, uid=name)
                etag, created = await dav.create(ctx.credentials, object_path, text, self.content_type)
            except self.conversion_errors as exc:
                log.info("Sync: device %s, %s ClientId %r: %s", device, self.name, client_id, exc)
                E(element, A + "Status", CONVERSION_ERROR)
                continue
            except WriteRefused as exc:
                log.warning("Sync: the upstream refused the %s ClientId %r of device %s: %s", self.name, client_id,
                            device, exc)
                E(element, A + "Status", CONVERSION_ERROR)
                continue
            if not created:
                log.info("Sync: %s ClientId %r of device %s was stored before the gateway recorded it",
                         self.name, client_id, device)
            out.added.append((client_id, number, object_path, etag))
            E(element, A + "ServerId", sync_state.server_id(collection_id, number))
            E(element, A + "Status", OK)
            number += 1

    async def _change(self, ctx: Context, path: str, found: Found | None, data: etree._Element | None,
                      options: Options, out: Outcome, *, instance: str | None = None, deleted: bool = False) -> int:
        dav = ctx.upstream.dav
        assert dav is not None
        if found is None:
            return NOT_FOUND
        number, uid, version = found
        if uid in out.versions:  # changed by an earlier command of this request (another occurrence)
            version = out.versions[uid][1]
        for _ in range(3):  # an object that keeps changing under us: give up after a few rounds
            current = (await dav.multiget(ctx.credentials, path, self.kind, [uid])).get(uid)
            if current is None:
                return NOT_FOUND
            if current.etag != version and (options.conflict if options.conflict is not None
                                            else conflicts.SERVER_WINS) == conflicts.SERVER_WINS:
                log.info("Sync: %s changed upstream since device %s saw it; the server's wins",
                         uid, ctx.line.device_id)
                return CONFLICT
            try:
                text = self.from_phone(ctx, current.data, data, options, uid=uid) if instance is None else \
                    self.from_phone_instance(ctx, current.data, data, options, instance, deleted=deleted)
                etag = await dav.replace(ctx.credentials, uid, text, self.content_type, current.etag)
            except self.conversion_errors + (InstanceRefused,) as exc:
                log.info("Sync: device %s changed %s: %s", ctx.line.device_id, uid, exc)
                return CONVERSION_ERROR
            except WriteRefused as exc:
                log.warning("Sync: the upstream refused the change of %s: %s", uid, exc)
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
            # Schedule-Reply: F: a phone's Delete sends no reply to an organizer (a phone that
            # declines says so with MeetingResponse); an organizer's own delete still cancels.
            await dav.delete(ctx.credentials, uid, schedule_reply=False)
        except WriteRefused as exc:
            log.warning("Sync: the upstream refused to delete %s: %s", uid, exc)
            return CONVERSION_ERROR
        out.deleted[uid] = number
        return OK


def _object_name(user: str, device: str, collection_id: int, client_id: str) -> str:
    """The object name (and UID) of a phone's new object: the same for a retried Add,
    unique across the user's collections and devices."""
    digest = hashlib.sha256(f"{user}\0{device}\0{collection_id}\0{client_id}".encode()).hexdigest()
    return f"eas-{digest[:32]}"
