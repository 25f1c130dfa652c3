"""Ping (MS-ASCMD 2.2.1.13): wait until one of the given folders has changes.

A coroutine waiting in usm.push.PushHub (no thread, no process). It answers
- Status 2 with the folders whose next Sync would bring something;
- Status 1 when the heartbeat ends without changes, or when a newer Ping (or
  waiting Sync) of the same device takes over;
- Status 3 when the request omits the interval or folders and no earlier Ping
  supplies them, 5 with the allowed bound when the interval is out of range,
  6 with MaxFolders when there are too many folders, 7 when a folder is not
  one of the user's (the phone must FolderSync).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import TypeVar

from lxml import etree

from eas_gateway import classes
from eas_gateway.context import Context
from eas_gateway.errors import CommandStatus
from eas_gateway.items.options import Options
from eas_gateway.xml import E, child_text
from usm import devices, folders, hierarchy, ids, push, sync, sync_state
from usm.push import SHUTDOWN, SUPERSEDED, TIMEOUT
from usm.upstream import forget_hierarchy, sharing

log = logging.getLogger(__name__)

P = "{Ping:}"
# MS-ASCMD 2.2.3.177.11 Ping Status values.
EXPIRED, CHANGES, MISSING, PROTOCOL_ERROR, BAD_INTERVAL, TOO_MANY, HIERARCHY = 1, 2, 3, 4, 5, 6, 7
MAX_FOLDERS = 300
T = TypeVar("T")
CHECKS_AT_ONCE = 4  # folders of one Ping looked at side by side


async def handle(ctx: Context, tree: etree._Element | None) -> etree._Element:
    interval, folder_ids = await _request(ctx, tree)
    del tree  # not kept while the Ping is held
    low, high = ctx.settings.heartbeat_min, ctx.settings.heartbeat_max
    if not low <= interval <= high:
        log.info("Ping: HeartbeatInterval %d outside %d..%d", interval, low, high)
        return _answer(BAD_INTERVAL, HeartbeatInterval=low if interval < low else high)
    if len(folder_ids) > MAX_FOLDERS:
        return _answer(TOO_MANY, MaxFolders=MAX_FOLDERS)
    async with ctx.db.acquire() as conn:
        upstream_ids = await folders.upstream_ids(conn, ctx.user, folder_ids)
    unknown = [f for f in folder_ids if f not in upstream_ids]
    if unknown:
        log.info("Ping: folders %s are not folders of %s", unknown, ctx.user)
        return _answer(HIERARCHY)
    deadline = asyncio.get_running_loop().time() + interval
    # The user's states as this process's watcher last saw them, if there is one:
    # a change after that poll is found by the check below or wakes the wait.
    keys = push.keys_for(ctx.upstream, list(upstream_ids.values()), hierarchy=True)
    try:
        return await _hold(ctx, upstream_ids, keys, deadline)
    except TimeoutError:
        # The heartbeat ended while the upstream was still being asked (it hangs): the phone
        # gets its answer on time, not after the upstream's own timeout.
        log.info("Ping of device %s: the heartbeat ended during an upstream check", ctx.line.device_id)
        return _answer(EXPIRED)


async def _in_time(deadline: float, work: Awaitable[T]) -> T:
    """``work``, ended with TimeoutError at the heartbeat's end. Only the upstream checks are
    bounded so, each on its own: the wait between them has its own timer in the push hub,
    and a held Ping keeps no timer of its own (they are many)."""
    async with asyncio.timeout_at(deadline):
        return await work


async def _hold(ctx: Context, upstream_ids: dict[int, str], keys: dict[str, str],
                deadline: float) -> etree._Element:
    loop = asyncio.get_running_loop()
    seen = await _in_time(deadline, ctx.push.states(ctx.user, ctx.credentials, set(keys.values())))
    while True:
        changed = await _in_time(deadline, _changed(ctx, upstream_ids, keys, seen))
        if changed is None:
            # An admin reset the device (usm.admin): FolderSync first, which starts it over.
            log.info("Ping: device %s has no hierarchy state; asking for a FolderSync", ctx.line.device_id)
            return _answer(HIERARCHY)
        if changed:
            root = _answer(CHANGES)
            out = E(root, P + "Folders")
            for folder_id in changed:
                E(out, P + "Folder", folder_id)
            return root
        remaining = deadline - loop.time()
        if remaining <= 0:
            return _answer(EXPIRED)
        reason = await ctx.push.wait(ctx.user, ctx.line.device_id, ctx.credentials, remaining, seen=seen)
        if reason in (SUPERSEDED, SHUTDOWN):
            log.info("Ping of device %s ended: %s", ctx.line.device_id,
                     "a newer request of the same device" if reason == SUPERSEDED else "the gateway stops")
            return _answer(EXPIRED)
        if reason == TIMEOUT:
            return _answer(EXPIRED)  # nothing woke it: no need to ask the upstream once more
        now = await _in_time(deadline, ctx.push.states(ctx.user, ctx.credentials, set(keys.values())))
        hierarchy_moved = any(now.get(k) != seen.get(k) for k in ("folders", "dav-folders") if k in keys)
        seen = now
        if hierarchy_moved and await _in_time(deadline, _hierarchy_changed(ctx)):
            log.info("Ping: the folders of %s changed; device %s is asked for a FolderSync", ctx.user,
                     ctx.line.device_id)
            return _answer(HIERARCHY)


async def _request(ctx: Context, tree: etree._Element | None) -> tuple[int, list[int]]:
    cached = ctx.device.remembered("Ping") or {}
    interval_text = folder_list = None
    if tree is not None:
        if tree.tag != P + "Ping":
            raise CommandStatus(PROTOCOL_ERROR, f"Ping request with root {tree.tag}")
        interval_text = child_text(tree, P + "HeartbeatInterval")
        found = tree.findall(f"{P}Folders/{P}Folder")
        if found:
            folder_list = [child_text(f, P + "Id") or "" for f in found]
    if interval_text is not None and ids.number(interval_text) is None:
        raise CommandStatus(PROTOCOL_ERROR, f"Ping HeartbeatInterval {interval_text!r} is not a number")
    numbers = [ids.number(f) for f in folder_list] if folder_list is not None else None
    if numbers is not None and None in numbers:
        raise CommandStatus(HIERARCHY, f"Ping folder ids {folder_list!r} are not ours")
    interval: int | None = ids.number(interval_text) if interval_text is not None else cached.get("interval")
    folder_ids: list[int] | None = [n for n in numbers if n is not None] if numbers is not None \
        else cached.get("folders")
    if interval is None or not folder_ids:
        raise CommandStatus(MISSING, "Ping without HeartbeatInterval or Folders, and no earlier Ping")
    if {"interval": interval, "folders": folder_ids} != cached:
        async with ctx.db.acquire() as conn:
            await devices.remember_request(conn, ctx.user, ctx.line.device_id, "Ping",
                                           {"interval": interval, "folders": folder_ids})
    return interval, folder_ids


async def _hierarchy_changed(ctx: Context) -> bool:
    """Whether the device's next FolderSync would bring something (MS-ASCMD 2.2.3.177.11:
    Status 7 asks for it). Only asked when the upstream's folder state moved."""
    forget_hierarchy()  # this request may have read it minutes ago
    upstream_folders = classes.shown(hierarchy.with_outbox(await ctx.upstream.folders(ctx.credentials)), ctx.version)
    async with ctx.db.acquire() as conn:
        ids = await folders.server_ids(conn, ctx.user, [f.id for f in upstream_folders])
        known = await folders.known_folders(conn, ctx.user, ctx.line.device_id)
    changes = hierarchy.diff(known, hierarchy.device_view(upstream_folders, ids))
    return bool(changes.added or changes.updated or changes.deleted)


async def _changed(ctx: Context, upstream_ids: dict[int, str], keys: dict[str, str],
                   seen: dict[str, str]) -> list[int] | None:
    """The folders whose next Sync would bring something; None if the device has
    no hierarchy state (an admin reset it)."""
    ids = list(upstream_ids)
    async with ctx.db.acquire() as conn:
        if (await folders.state(conn, ctx.user, ctx.line.device_id)).sync_key == 0:
            return None
        states = await sync_state.states(conn, ctx.user, ctx.line.device_id, ids)
    # The folders are looked at side by side, a few at a time, sharing the upstream reads
    # they have in common (Email/changes is the account's: one call for every mail folder,
    # and for every device of the user woken by the same change).
    lanes = asyncio.Semaphore(CHECKS_AT_ONCE)

    async def check(cid: int) -> bool:
        async with lanes:
            return await _folder_changed(ctx, cid, upstream_ids[cid], keys, seen, states[cid])

    with sharing(seen.get("mail")):
        found = await asyncio.gather(*(check(cid) for cid in ids))
    return [cid for cid, yes in zip(ids, found, strict=True) if yes]


async def _folder_changed(ctx: Context, cid: int, folder_id: str, keys: dict[str, str], seen: dict[str, str],
                          state: sync_state.CollectionState) -> bool:
    cls = classes.of_folder(folder_id)
    if folder_id.startswith("virtual:") or cls is None:
        return False
    options = Options.from_json(state.options)
    return await sync.has_changes(ctx.db, cls.source(ctx, folder_id, options), (ctx.user, ctx.line.device_id, cid),
                                  state, folder_id, options.since(),
                                  upstream_state=seen.get(keys.get(folder_id, "")))


def _answer(status: int, **extra: int) -> etree._Element:
    root = E(None, P + "Ping")
    E(root, P + "Status", status)
    for name, value in extra.items():
        E(root, P + name, value)
    return root
