"""FolderSync (MS-ASCMD 2.2.1.5): the folder hierarchy, incrementally.

SyncKey 0 starts over: every folder comes as an Add. Any other key must be
the device's current key (changes since then, a new key if there are any) or
the key before it: the phone lost our last answer, which is sent again byte
for byte. Anything else is Status 9 and the phone starts over from 0.
Starting over keeps the folders' ServerIds (they are per user, usm.folders),
so the item state of folders that still exist survives.
"""

from __future__ import annotations

import logging

from lxml import etree

import wbxml
from eas_gateway import classes, versions
from eas_gateway.context import Context
from eas_gateway.errors import CommandStatus
from eas_gateway.xml import E, child_text
from usm import folders, hierarchy, ids
from usm.hierarchy import DeviceFolder, HierarchyChanges

log = logging.getLogger(__name__)

F = "{FolderHierarchy:}"
# MS-ASCMD 2.2.3.177.5 FolderSync Status values.
OK, SERVER_ERROR, INVALID_KEY, BAD_REQUEST = 1, 6, 9, 10


async def handle(ctx: Context, tree: etree._Element | None) -> etree._Element | bytes:
    key = _parse(tree)
    async with ctx.db.acquire() as conn:
        state = await folders.state(conn, ctx.user, ctx.line.device_id)
    if key != 0 and key == state.sync_key - 1 and state.last_response is not None:
        log.info("FolderSync: device %s resent key %d, replaying its answer", ctx.line.device_id, key)
        return state.last_response
    if key != 0 and key != state.sync_key:
        log.info("FolderSync: device %s sent key %d, current is %d", ctx.line.device_id, key, state.sync_key)
        raise CommandStatus(INVALID_KEY, f"FolderSync key {key} is not current ({state.sync_key})")
    # No database connection is held while the upstream answers; commit()
    # checks that the key did not move meanwhile.
    upstream_folders = classes.shown(hierarchy.with_outbox(await ctx.upstream.folders(ctx.credentials)), ctx.version)
    async with ctx.db.acquire() as conn:
        ids = await folders.server_ids(conn, ctx.user, [f.id for f in upstream_folders])
        view = hierarchy.device_view(upstream_folders, ids)
        known = {} if key == 0 else await folders.known_folders(conn, ctx.user, ctx.line.device_id)
        changes = hierarchy.diff(known, view)
        if key != 0 and not changes:
            return render(key, changes)
        new_key = state.sync_key + 1
        response = wbxml.encode(versions.checked(render(new_key, changes), ctx.version, "FolderSync"))
        if not await folders.commit(conn, ctx.user, ctx.line.device_id, expected_key=key, new_key=new_key,
                                    folders=view, response=response):
            raise CommandStatus(SERVER_ERROR, "FolderSync state moved under a concurrent request; retry")
    return response


def _parse(tree: etree._Element | None) -> int:
    if tree is None or tree.tag != F + "FolderSync":
        raise CommandStatus(BAD_REQUEST, "FolderSync request without a FolderSync element")
    text = child_text(tree, F + "SyncKey")
    key = ids.number(text)
    if key is None:
        raise CommandStatus(BAD_REQUEST, f"FolderSync SyncKey {text!r} is not a number")
    return key


def render(key: int, changes: HierarchyChanges) -> etree._Element:
    root = E(None, F + "FolderSync")
    E(root, F + "Status", OK)
    E(root, F + "SyncKey", key)
    out = E(root, F + "Changes")
    E(out, F + "Count", len(changes.added) + len(changes.updated) + len(changes.deleted))
    for folder in changes.added:
        _folder(E(out, F + "Add"), folder)
    for folder in changes.updated:
        _folder(E(out, F + "Update"), folder)
    for server_id in changes.deleted:
        E(E(out, F + "Delete"), F + "ServerId", server_id)
    return root


def _folder(el: etree._Element, folder: DeviceFolder) -> None:
    E(el, F + "ServerId", folder.server_id)
    E(el, F + "ParentId", folder.parent_server_id or 0)
    E(el, F + "DisplayName", folder.display_name)
    E(el, F + "Type", folder.folder_type)
