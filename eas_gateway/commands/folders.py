"""FolderCreate, FolderUpdate, FolderDelete (MS-ASCMD 2.2.1.2-4): folders made,
renamed, moved and deleted from the phone: mail folders by JMAP Mailbox/set,
folders of the other served classes (contacts) as DAV collections (MKCOL,
PROPPATCH of the display name, DELETE; DAV collections are flat, so they stay at
the top level).

Each carries the hierarchy SyncKey of FolderSync: it must be the current
one (else Status 9, and the phone runs FolderSync again); success moves it on
with the change recorded for the device (usm.folders.record_change), so the
next FolderSync does not send the phone its own change.

Role folders (Inbox, Drafts, Sent, Trash, the Outbox) are never renamed or
deleted (Status 3). Deleting a folder deletes its subfolders and messages,
as Exchange does. A class's default folder is never deleted (Status 3). Folders
of a class the gateway does not serve get Status 10, with a log line. A
FolderCreate retried after a lost answer finds the collection it made (its
path derives from the device, the key and the name): one collection, not two.
"""

from __future__ import annotations

import hashlib
import logging

import asyncpg
from lxml import etree

from eas_gateway.context import Context
from eas_gateway.errors import CommandStatus
from eas_gateway.xml import E, child_text
from usm import folders, hierarchy, ids
from usm.hierarchy import OUTBOX_UPSTREAM_ID, USER_MAIL, DeviceFolder, eas_type
from usm.upstream import Folder, FolderRefused, NotFound
from usm.upstream.composite import KIND_SOURCES, qualify

log = logging.getLogger(__name__)

F = "{FolderHierarchy:}"
# MS-ASCMD 2.2.3.177.2-4 (FolderCreate/FolderDelete/FolderUpdate Status).
OK, EXISTS, SPECIAL, MISSING, NO_PARENT, SERVER_ERROR, INVALID_KEY, MALFORMED = 1, 2, 3, 4, 5, 6, 9, 10
MAIL_TYPES = {1, USER_MAIL}
MAX_NAME = 256


async def handle_create(ctx: Context, tree: etree._Element | None) -> etree._Element:
    key, fields = _parse(tree, "FolderCreate", ("ParentId", "DisplayName", "Type"))
    name, folder_type = _name(fields["DisplayName"]), fields["Type"]
    kind = _creatable(ctx, ids.number(folder_type, digits=3))
    if kind is None:
        log.warning("FolderCreate: device %s asked for a folder of Type %s, which is not offered",
                    ctx.line.device_id, folder_type)
        raise CommandStatus(MALFORMED, f"FolderCreate of Type {folder_type}: not a folder type offered")
    upstream, by_server_id = await _hierarchy(ctx, key)
    if kind != "mail":
        return await _create_collection(ctx, key, kind, name, upstream, by_server_id)
    parent = _parent(fields["ParentId"], by_server_id)
    if _sibling(upstream, parent, name, None):
        raise CommandStatus(EXISTS, f"FolderCreate: a folder {name!r} exists there already")
    try:
        new_id = await ctx.upstream.mailstore.create_folder(ctx.credentials, name, parent)
    except FolderRefused as exc:
        raise CommandStatus(MALFORMED, f"FolderCreate refused by the upstream: {exc}") from exc
    created = Folder(new_id, name, parent, None)
    async with ctx.db.acquire() as conn:
        server_id = (await folders.server_ids(conn, ctx.user, [new_id]))[new_id]
        new_key = await _record(ctx, conn, key, created, server_id, by_server_id)
    root = _answer("FolderCreate", new_key)
    E(root, F + "ServerId", server_id)
    return root


async def handle_update(ctx: Context, tree: etree._Element | None) -> etree._Element:
    key, fields = _parse(tree, "FolderUpdate", ("ServerId", "ParentId", "DisplayName"))
    name = _name(fields["DisplayName"])
    upstream, by_server_id = await _hierarchy(ctx, key)
    folder = _existing(fields["ServerId"], by_server_id, upstream)
    if folder.role:
        raise CommandStatus(SPECIAL, f"FolderUpdate: {folder.name!r} is a role folder ({folder.role})")
    if folder.kind != "mail":
        return await _rename_collection(ctx, key, folder, name, ids.number(fields["ServerId"]) or 0, upstream,
                                        by_server_id)
    parent = _parent(fields["ParentId"], by_server_id)
    if parent == folder.id or parent in {f.id for f in hierarchy.descendants(upstream, folder.id)}:
        raise CommandStatus(NO_PARENT, "FolderUpdate: a folder cannot move under itself")
    if _sibling(upstream, parent, name, folder.id):
        raise CommandStatus(EXISTS, f"FolderUpdate: a folder {name!r} exists there already")
    try:
        await ctx.upstream.mailstore.update_folder(ctx.credentials, folder.id, name, parent)
    except NotFound as exc:
        raise CommandStatus(MISSING, f"FolderUpdate: {exc}") from exc
    except FolderRefused as exc:
        raise CommandStatus(MALFORMED, f"FolderUpdate refused by the upstream: {exc}") from exc
    async with ctx.db.acquire() as conn:
        new_key = await _record(ctx, conn, key, Folder(folder.id, name, parent, folder.role),
                                ids.number(fields["ServerId"]) or 0, by_server_id)
    return _answer("FolderUpdate", new_key)


async def handle_delete(ctx: Context, tree: etree._Element | None) -> etree._Element:
    key, fields = _parse(tree, "FolderDelete", ("ServerId",))
    upstream, by_server_id = await _hierarchy(ctx, key)
    folder = _existing(fields["ServerId"], by_server_id, upstream)
    if folder.kind == "mail":
        doomed = await _delete_mail_folder(ctx, folder, upstream)
    else:
        doomed = [await _delete_collection(ctx, folder, upstream)]
    server_ids = {uid: sid for sid, uid in by_server_id.items()}
    async with ctx.db.acquire() as conn:
        new_key = await folders.record_change(
            conn, ctx.user, ctx.line.device_id, expected_key=key,
            delete=[server_ids[f.id] for f in doomed if f.id in server_ids])
    if new_key is None:
        raise CommandStatus(INVALID_KEY, "FolderDelete: the hierarchy moved under a concurrent request")
    return _answer("FolderDelete", new_key)


def _creatable(ctx: Context, folder_type: int | None) -> str | None:
    """The class of a folder a phone may create with this Type: mail (1 generic, 12), or a
    served class's user folder (13 calendar, 14 contacts, 15 tasks, 17 notes); never a default."""
    if folder_type in MAIL_TYPES:
        return "mail"
    kind, default = hierarchy.TYPE_CLASSES.get(folder_type or 0, ("", True))
    if default or ctx.upstream.dav is None or kind not in ctx.upstream.kinds:
        return None
    return kind


async def _delete_mail_folder(ctx: Context, folder: Folder, upstream: list[Folder]) -> list[Folder]:
    """Delete a mail folder with its subfolders; the folders deleted."""
    doomed = [*hierarchy.descendants(upstream, folder.id), folder]  # children first
    if any(f.role for f in doomed):
        raise CommandStatus(SPECIAL, f"FolderDelete: {folder.name!r} holds a role folder")
    for victim in doomed:
        try:
            await ctx.upstream.mailstore.destroy_folder(ctx.credentials, victim.id)
        except NotFound:
            pass  # gone already (the same request, retried)
        except FolderRefused as exc:
            raise CommandStatus(SERVER_ERROR, f"FolderDelete refused by the upstream: {exc}") from exc
    return doomed


async def _delete_collection(ctx: Context, folder: Folder, upstream: list[Folder]) -> Folder:
    dav = ctx.upstream.dav
    assert dav is not None
    if folder.default:
        raise CommandStatus(SPECIAL, f"FolderDelete: {folder.name!r} is the default {folder.kind} folder")
    path = ctx.upstream.dav_path(folder.id)
    shared = [f.kind for f in upstream if f.id != folder.id and f.kind != "mail" and
              ctx.upstream.dav_path(f.id) == path]
    if shared:  # a calendar holding events and tasks is two folders: deleting one would delete both
        raise CommandStatus(SPECIAL, f"FolderDelete: {folder.name!r} also holds the user's {', '.join(shared)}")
    try:
        await dav.delete_collection(ctx.credentials, ctx.upstream.dav_path(folder.id))
    except FolderRefused as exc:
        raise CommandStatus(SERVER_ERROR, f"FolderDelete refused by the upstream: {exc}") from exc
    return folder


async def _create_collection(ctx: Context, key: int, kind: str, name: str, upstream: list[Folder],
                             by_server_id: dict[int, str]) -> etree._Element:
    dav = ctx.upstream.dav
    assert dav is not None
    segment = "eas-" + hashlib.sha256(f"{ctx.user}\0{ctx.line.device_id}\0{key}\0{name}".encode()).hexdigest()[:20]
    mine = next((f for f in upstream if f.kind == kind and ctx.upstream.dav_path(f.id).rstrip("/").endswith(segment)),
                None)
    if mine is None and any(f.kind == kind and f.name.casefold() == name.casefold() for f in upstream):
        raise CommandStatus(EXISTS, f"FolderCreate: a folder {name!r} exists there already")
    if mine is None:
        try:
            path = await dav.make_collection(ctx.credentials, kind, name, segment)
        except FolderRefused as exc:
            raise CommandStatus(MALFORMED, f"FolderCreate refused by the upstream: {exc}") from exc
        new_id = qualify(KIND_SOURCES[kind], path)
    else:
        log.info("FolderCreate: device %s made %r before; it is %s", ctx.line.device_id, name, mine.id)
        new_id = mine.id
    created = Folder(new_id, name, None, None, kind=kind)
    async with ctx.db.acquire() as conn:
        server_id = (await folders.server_ids(conn, ctx.user, [new_id]))[new_id]
        new_key = await _record(ctx, conn, key, created, server_id, by_server_id)
    root = _answer("FolderCreate", new_key)
    E(root, F + "ServerId", server_id)
    return root


async def _rename_collection(ctx: Context, key: int, folder: Folder, name: str, server_id: int,
                             upstream: list[Folder], by_server_id: dict[int, str]) -> etree._Element:
    dav = ctx.upstream.dav
    assert dav is not None
    if any(f.kind == folder.kind and f.name.casefold() == name.casefold() and f.id != folder.id for f in upstream):
        raise CommandStatus(EXISTS, f"FolderUpdate: a folder {name!r} exists there already")
    try:
        await dav.rename_collection(ctx.credentials, ctx.upstream.dav_path(folder.id), name)
    except NotFound as exc:
        raise CommandStatus(MISSING, f"FolderUpdate: {exc}") from exc
    except FolderRefused as exc:
        raise CommandStatus(MALFORMED, f"FolderUpdate refused by the upstream: {exc}") from exc
    renamed = Folder(folder.id, name, None, None, kind=folder.kind, default=folder.default)
    async with ctx.db.acquire() as conn:
        new_key = await _record(ctx, conn, key, renamed, server_id, by_server_id)
    return _answer("FolderUpdate", new_key)


def _parse(tree: etree._Element | None, command: str, names: tuple[str, ...]) -> tuple[int, dict[str, str]]:
    if tree is None or tree.tag != F + command:
        raise CommandStatus(MALFORMED, f"{command} request without a {command} element")
    text = child_text(tree, F + "SyncKey")
    key = ids.number(text)
    if key is None:
        raise CommandStatus(MALFORMED, f"{command} SyncKey {text!r} is not a number")
    fields = {}
    for name in names:
        value = child_text(tree, F + name)
        if value is None:
            raise CommandStatus(MALFORMED, f"{command} without {name}")
        fields[name] = value.strip()
    return key, fields


def _name(text: str) -> str:
    if not text or len(text) > MAX_NAME or any(ord(c) < 32 for c in text):
        raise CommandStatus(MALFORMED, f"folder name {text[:40]!r} is empty, too long or has control characters")
    return text


async def _hierarchy(ctx: Context, key: int) -> tuple[list[Folder], dict[int, str]]:
    """The upstream folders, and ServerId -> upstream id of those the device knows."""
    async with ctx.db.acquire() as conn:
        state = await folders.state(conn, ctx.user, ctx.line.device_id)
        if key == 0 or key != state.sync_key:
            raise CommandStatus(INVALID_KEY, f"hierarchy SyncKey {key} is not the current one ({state.sync_key})")
        known = await folders.known_folders(conn, ctx.user, ctx.line.device_id)
        by_server_id = await folders.upstream_ids(conn, ctx.user, list(known))
    return await ctx.upstream.folders(ctx.credentials), by_server_id


def _existing(server_id: str, by_server_id: dict[int, str], upstream: list[Folder]) -> Folder:
    uid = by_server_id.get(ids.number(server_id) or -1)
    if uid == OUTBOX_UPSTREAM_ID:
        raise CommandStatus(SPECIAL, "the Outbox is a special folder")
    folder = next((f for f in upstream if f.id == uid), None)
    if folder is None:
        raise CommandStatus(MISSING, f"folder {server_id!r} is not one the device knows (or is gone upstream)")
    return folder


def _parent(parent_id: str, by_server_id: dict[int, str]) -> str | None:
    if parent_id == "0":
        return None
    uid = by_server_id.get(ids.number(parent_id) or -1)
    if uid is None or uid == OUTBOX_UPSTREAM_ID:
        raise CommandStatus(NO_PARENT, f"parent folder {parent_id!r} is not one the device knows")
    return uid


def _sibling(upstream: list[Folder], parent: str | None, name: str, other_than: str | None) -> bool:
    return any(f.parent_id == parent and f.name.casefold() == name.casefold() and f.id != other_than
               for f in upstream)


async def _record(ctx: Context, conn: asyncpg.Connection, key: int, folder: Folder, server_id: int,
                  by_server_id: dict[int, str]) -> int:
    parent_sid = next((sid for sid, uid in by_server_id.items() if uid == folder.parent_id), None)
    new_key = await folders.record_change(
        conn, ctx.user, ctx.line.device_id, expected_key=key,
        upsert=DeviceFolder(server_id, parent_sid, folder.name, eas_type(folder)))
    if new_key is None:
        raise CommandStatus(INVALID_KEY, "the hierarchy moved under a concurrent request")
    return new_key


def _answer(command: str, key: int) -> etree._Element:
    root = E(None, F + command)
    E(root, F + "Status", OK)
    E(root, F + "SyncKey", key)
    return root
