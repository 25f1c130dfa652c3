"""Sync (MS-ASCMD 2.2.1.21), read direction: server changes to the phone.

Per collection the SyncKey decides (usm.sync_state, ARCHITECTURE.md):
- 0: start over; the answer is key 1 and no items;
- the current key: the next generation (usm.sync.plan picks up to WindowSize
  Adds/Changes/Deletes; MoreAvailable if more wait), committed together with
  its Collection element;
- the key before it: the phone lost our answer; the stored Collection element
  is sent again, byte for byte;
- anything else: Status 3, and the phone starts over from 0.
A generation without commands keeps the key (the phone's view is unchanged).

The empty request and Partial reuse the cached last request (devices.
sync_request). Wait / HeartbeatInterval make a Sync that found nothing wait
(usm.push, like Ping) for changes; if none come, or a newer request of the
device takes over, the answer is an empty body (MS-ASCMD 3.1.5.4).
The phone's own Commands (Change, Delete, Fetch) are applied first
(the folder's item class, eas_gateway.classes); their outcome is committed with the generation.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from lxml import etree

import wbxml
from eas_gateway import classes, versions
from eas_gateway.context import Context
from eas_gateway.errors import CommandStatus
from eas_gateway.items.options import Options, OptionsError
from eas_gateway.items.options import parse as parse_options
from eas_gateway.xml import E, child_text
from usm import devices, ids, push, sync, sync_state
from usm.push import SHUTDOWN, SUPERSEDED
from usm.sync_state import CollectionState, Generation

log = logging.getLogger(__name__)

A = "{AirSync:}"
# MS-ASCMD 2.2.3.177.17 Sync Status values.
OK, INVALID_KEY, PROTOCOL_ERROR, SERVER_ERROR, NOT_FOUND = 1, 3, 4, 5, 8
# Loop protection: the previous key resent this often in a row means the phone
# cannot take the answer (a lost answer is resent once or twice).
REPLAY_LIMIT = 5
HIERARCHY_CHANGED, INCOMPLETE, BAD_INTERVAL, TOO_MANY = 12, 13, 14, 15
DEFAULT_WINDOW, MAX_WINDOW = 100, 512
MIN_WAIT, MAX_WAIT = 60, 3540  # seconds: Wait 1..59 minutes, HeartbeatInterval 60..3540
MAX_COLLECTIONS = 1000
VIRTUAL = "virtual:"


@dataclass
class CollectionRequest:
    collection_id: int
    sync_key: int | None  # None: not a number (Status 3)
    # From the cached request (empty or Partial Sync): the collection goes on at its current key.
    at_current_key: bool = False
    window: int | None = None
    get_changes: bool | None = None
    options: list[etree._Element] = field(default_factory=list)
    commands: etree._Element | None = None
    supported: list[str] | None = None  # the Supported element's fields (MS-ASCMD 2.2.3.168)
    deletes_as_moves: bool = True  # MS-ASCMD 2.2.3.45: the default


@dataclass
class SyncRequest:
    collections: list[CollectionRequest]
    wait: int | None = None  # seconds
    window: int | None = None


async def handle(ctx: Context, tree: etree._Element | None) -> etree._Element | bytes:
    try:
        request = await _request(ctx, tree)
    except CommandStatus as exc:
        limit = getattr(exc, "limit", None)
        if limit is None:
            raise
        log.info("Sync Status %d: %s", exc.status, exc)
        root = E(None, A + "Sync")
        E(root, A + "Status", exc.status)
        E(root, A + "Limit", limit)
        return root
    ids = [c.collection_id for c in request.collections]
    deadline = time.monotonic() + (request.wait or 0)
    while True:
        async with ctx.db.acquire() as conn:
            states = await sync_state.states(conn, ctx.user, ctx.line.device_id, ids)
        upstream_ids = {cid: state.folder_id for cid, state in states.items() if state.folder_id is not None}
        # For a waiting Sync: the upstream state this round looks at (before the answers look
        # upstream), so that a change after it wakes the wait below.
        seen = await _states(ctx, upstream_ids) if request.wait else None
        answers = []
        for wanted in request.collections:
            state = states[wanted.collection_id]
            answers.append(await _collection(ctx, request, wanted, state, state.folder_id))
        news = any(has_news for _, has_news in answers)
        if news or not request.wait or time.monotonic() >= deadline:
            break
        reason = await ctx.push.wait(ctx.user, ctx.line.device_id, ctx.credentials,
                                     deadline - time.monotonic(), seen=seen or {})
        if reason in (SUPERSEDED, SHUTDOWN):
            log.info("waiting Sync of device %s ended: %s", ctx.line.device_id,
                     "a newer request" if reason == SUPERSEDED else "the gateway stops")
            break
    if request.wait and not news:
        return b""  # the wait ended without changes (MS-ASCMD 3.1.5.4)
    root = E(None, A + "Sync")
    out = E(root, A + "Collections")
    for element, _ in answers:
        out.append(element)
    return root


async def _request(ctx: Context, tree: etree._Element | None) -> SyncRequest:
    cached = ctx.device.remembered("Sync")
    if tree is None:
        if not cached:
            raise CommandStatus(INCOMPLETE, "empty Sync request and no earlier request to stand for it")
        return _from_cache(cached, {})
    if tree.tag != A + "Sync":
        raise CommandStatus(PROTOCOL_ERROR, f"Sync request with root {tree.tag}")
    wait_min, heartbeat = child_text(tree, A + "Wait"), child_text(tree, A + "HeartbeatInterval")
    if wait_min is not None and heartbeat is not None:
        raise CommandStatus(PROTOCOL_ERROR, "Sync request with both Wait and HeartbeatInterval")
    wait = _number(wait_min) * 60 if wait_min is not None else _number(heartbeat) if heartbeat is not None else None
    if wait is not None and not MIN_WAIT <= wait <= MAX_WAIT:
        raise _limit(wait)
    window = child_text(tree, A + "WindowSize")
    requested = [_collection_request(el) for el in tree.iterfind(f"{A}Collections/{A}Collection")]
    if len(requested) > MAX_COLLECTIONS:
        raise CommandStatus(TOO_MANY, f"{len(requested)} collections in one Sync")
    partial = tree.find(A + "Partial") is not None
    if partial or not requested:
        if not cached:
            raise CommandStatus(INCOMPLETE, "partial Sync request and no earlier request to complete it")
        result = _from_cache(cached, {c.collection_id: c for c in requested})
        if wait is not None:
            result.wait = wait
        if window is not None:
            result.window = _number(window)
    else:
        result = SyncRequest(requested, wait, _number(window) if window is not None else None)
    remembered = {"collections": [{"id": c.collection_id, "window": c.window} for c in result.collections],
                  "wait": result.wait, "window": result.window}
    if remembered != cached:
        async with ctx.db.acquire() as conn:
            await devices.remember_request(conn, ctx.user, ctx.line.device_id, "Sync", remembered)
    return result


async def _states(ctx: Context, upstream_ids: dict[int, str]) -> dict[str, str]:
    """The upstream states this round of a waiting Sync looks at (usm.push)."""
    keys = push.keys_for(ctx.upstream, list(upstream_ids.values()))
    return await ctx.push.states(ctx.user, ctx.credentials, set(keys.values()))


def _from_cache(cached: dict[str, Any], given: dict[int, CollectionRequest]) -> SyncRequest:
    """The cached request, its collections at their current keys, with ``given`` ones in place."""
    out = [given.pop(c["id"]) if c["id"] in given else
           CollectionRequest(c["id"], sync_key=None, window=c.get("window"), at_current_key=True)
           for c in cached["collections"]]
    return SyncRequest(out + list(given.values()), cached.get("wait"), cached.get("window"))


def _collection_request(el: etree._Element) -> CollectionRequest:
    text = child_text(el, A + "CollectionId")
    collection_id = ids.number(text)
    if collection_id is None:
        raise CommandStatus(PROTOCOL_ERROR, f"Sync Collection with CollectionId {text!r}")
    key = child_text(el, A + "SyncKey")
    if key is None:
        raise CommandStatus(PROTOCOL_ERROR, f"Sync Collection {collection_id} without SyncKey")
    window = child_text(el, A + "WindowSize")
    get_changes = el.find(A + "GetChanges")
    supported = el.find(A + "Supported")
    return CollectionRequest(
        collection_id=collection_id,
        sync_key=ids.number(key),
        window=_number(window) if window is not None else None,
        get_changes=None if get_changes is None else (get_changes.text or "1").strip() != "0",
        options=el.findall(A + "Options"),
        commands=el.find(A + "Commands"),
        deletes_as_moves=(child_text(el, A + "DeletesAsMoves") or "1").strip() != "0",
        supported=None if supported is None else [etree.QName(f).localname for f in supported],
    )


def _number(text: str | None) -> int:
    value = ids.number(text)
    if value is None:
        raise CommandStatus(PROTOCOL_ERROR, f"Sync: {text!r} is not a number")
    return value


def _limit(wait: int) -> CommandStatus:
    status = CommandStatus(BAD_INTERVAL, f"Sync wait of {wait} s is outside {MIN_WAIT}..{MAX_WAIT} s")
    status.limit = MIN_WAIT if wait < MIN_WAIT else MAX_WAIT  # type: ignore[attr-defined]
    return status


async def _collection(ctx: Context, request: SyncRequest, wanted: CollectionRequest, state: CollectionState,
                      folder_id: str | None) -> tuple[etree._Element, bool]:
    """The Collection element of the response, and whether it tells the phone anything new."""
    device, cid = ctx.line.device_id, wanted.collection_id
    key = state.sync_key if wanted.at_current_key else wanted.sync_key
    cls = classes.of_folder(folder_id) if folder_id is not None else None
    if folder_id is None or cls is None:
        log.info("Sync: device %s asked for collection %d, which is no folder of %s", device, cid, ctx.user)
        return _element(wanted, key or 0, HIERARCHY_CHANGED), True
    if key is None:
        log.info("Sync: device %s sent a SyncKey that is not ours for collection %d", device, cid)
        return _element(wanted, 0, INVALID_KEY), True
    if key != 0 and key == state.sync_key - 1:
        async with ctx.db.acquire() as conn:
            replays, lost = await sync_state.count_replay(conn, ctx.user, device, cid)
        if lost is not None and replays < REPLAY_LIMIT:
            log.info("Sync: device %s resent key %d of collection %d, replaying its answer", device, key, cid)
            return wbxml.decode(lost), True
        if lost is not None and replays == REPLAY_LIMIT:
            await _answer_not_taken(ctx, cid, lost)
        return _element(wanted, 0, INVALID_KEY), True
    if key != 0 and key != state.sync_key:
        log.info("Sync: device %s sent key %d of collection %d, current is %d", device, key, cid, state.sync_key)
        return _element(wanted, 0, INVALID_KEY), True
    if key != 0 and state.suspect is not None:
        # The phone asks with the current key: it took the answer that held the suspect alone.
        async with ctx.db.acquire() as conn:
            await sync_state.forget_failures(conn, ctx.user, device, cid, state.suspect)
    if wanted.supported is not None and cls.supported_refused:
        log.info("Sync: device %s sent Supported for the %s collection %d", device, cls.name, cid)
        return _element(wanted, key, PROTOCOL_ERROR), True
    try:
        options = parse_options(wanted.options, item_class=cls.name, previous=Options.from_json(state.options))
        if wanted.supported is not None:
            options = dataclasses.replace(options, supported=wanted.supported)
    except OptionsError as exc:
        log.info("Sync: device %s, collection %d: %s", device, cid, exc)
        return _element(wanted, key, PROTOCOL_ERROR), True
    if key == 0:
        element = _element(wanted, 1, OK)
        generation = Generation(new_key=1, upstream_state=None, filter_type=options.filter_type,
                                options=options.to_json(), next_item=state.next_item,
                                response=wbxml.encode(element), reset=True)
        async with ctx.db.acquire() as conn:
            await sync_state.commit(conn, ctx.user, device, cid, expected_key=0, generation=generation)
        return element, True
    mine = await cls.apply(ctx, cid, wanted.commands, options, folder_id,
                           deletes_as_moves=wanted.deletes_as_moves, first_item=state.next_item)
    get_changes = wanted.get_changes if wanted.get_changes is not None else True
    window = min(wanted.window or request.window or DEFAULT_WINDOW, MAX_WINDOW)
    relist = options.filter_type != state.filter_type
    if not get_changes or folder_id.startswith(VIRTUAL):
        plan = sync.Plan(upstream_state=state.upstream_state or "", listing=state.listing)
    else:
        # Where the upstream's events come, the state it has now is known: a request that wrote
        # nothing and whose collection has seen it asks the upstream nothing.
        watched = push.keys_for(ctx.upstream, [folder_id]).get(folder_id)
        wrote = wanted.commands is not None and len(wanted.commands) > 0
        current = ctx.push.current(ctx.user, watched) if watched and not wrote else None
        plan = await sync.plan(ctx.db, cls.source(ctx, folder_id, options), (ctx.user, device, cid), state,
                               folder_id, options.since(), window, relist=relist, current=current,
                               known_now={**mine.versions, **{uid: None for uid in mine.deleted},
                                          **{uid: (n, v) for _, n, uid, v in mine.added},
                                          **{old: None for old in mine.replaced},
                                          **{new: (n, v) for n, new, v in mine.replaced.values()}})
    candidates, suspect = await _screen(ctx, cid, plan, plan.adds)
    # Items that vanished between the look at their versions and the fetch are left out.
    rendered = await cls.render(ctx, folder_id, candidates, [uid for _, uid in plan.changes], options)
    converted, failed, changed = rendered.adds, rendered.failed, rendered.changes
    if failed:
        await _protect_from_loops(ctx, cid, plan, failed)
    adds = list(converted)
    changes = [(n, uid) for n, uid in plan.changes if uid in changed]
    plan.changes = changes
    has_commands = bool(adds or changes or plan.deletes)
    new_key = key + 1 if has_commands or mine.touched or relist else key
    first = state.next_item + len(mine.added)  # the phone's own Adds took the numbers before
    added = [(first + i, uid) for i, uid in enumerate(adds)]
    element = _element(wanted, new_key, OK)
    if plan.more:
        E(element, A + "MoreAvailable")
    if has_commands:
        commands = E(element, A + "Commands")
        for number, uid in added:
            add = E(commands, A + "Add")
            E(add, A + "ServerId", sync_state.server_id(cid, number))
            add.append(converted[uid])
        for number, uid in changes:
            change = E(commands, A + "Change")
            E(change, A + "ServerId", sync_state.server_id(cid, number))
            change.append(changed[uid])
        for number in plan.deletes:
            E(E(commands, A + "Delete"), A + "ServerId", sync_state.server_id(cid, number))
    if mine.responses is not None:
        element.append(mine.responses)
    if new_key == key and plan.upstream_state == state.upstream_state and not plan.pending_done \
            and not plan.pending_new and plan.listing == state.listing and options.to_json() == state.options:
        return _element(wanted, key, OK), False  # nothing to remember either
    # The bytes kept for a replay are checked as the app checks what it sends (eas_gateway.versions).
    versions.checked(element, ctx.version, "Sync")
    generation = plan.generation(state, new_key=new_key, filter_type=options.filter_type,
                                 options=options.to_json(), response=wbxml.encode(element), added=added)
    generation.keep_response = new_key == key  # the answer the phone may have lost is still the last one
    # What the phone itself changed or deleted, unless this generation's own commands cover it.
    planned = {n for n, _ in plan.changes} | set(plan.deletes)
    generation.changed += [(n, v) for n, v in mine.versions.values() if n not in planned]
    generation.deleted += [n for n in mine.deleted.values() if n not in planned]
    generation.added += [(n, uid, v) for _, n, uid, v in mine.added]
    generation.client_ids = [(c, n, uid) for c, n, uid, _ in mine.added]
    generation.replaced = list(mine.replaced.values())
    generation.next_item = max(generation.next_item, first)
    generation.suspect = suspect if suspect in converted else None
    async with ctx.db.acquire() as conn:
        committed = await sync_state.commit(conn, ctx.user, device, cid, expected_key=key, generation=generation)
    if not committed:
        log.warning("Sync: collection %d of device %s moved under a concurrent request", cid, device)
        return _element(wanted, key, SERVER_ERROR), True
    if new_key == key:
        return _element(wanted, key, OK), False
    return element, True


async def _protect_from_loops(ctx: Context, cid: int, plan: sync.Plan, failed: dict[str, str]) -> None:
    """Loop protection: items that failed to convert wait for the next Sync, or after
    MAX_ITEM_FAILURES are skipped (reported in the log and in item_failures for the admin)."""
    async with ctx.db.acquire() as conn:
        skipped = await sync_state.record_failures(conn, ctx.user, ctx.line.device_id, cid, failed)
    for uid in skipped:
        log.warning("Sync: item %s of collection %d skipped for device %s of %s after %d failed conversions: %s",
                    uid, cid, ctx.line.device_id, ctx.user, sync_state.MAX_ITEM_FAILURES, failed[uid])
    _repend(plan, [uid for uid in failed if uid not in skipped])


def _repend(plan: sync.Plan, uids: list[str]) -> None:
    """These adds wait for a later Sync instead of this one."""
    plan.pending_done = [uid for uid in plan.pending_done if uid not in uids]
    plan.pending_new = plan.pending_new + [uid for uid in uids if uid not in plan.pending_new]


async def _screen(ctx: Context, cid: int, plan: sync.Plan, uids: list[str]) -> tuple[list[str], str | None]:
    """Loop protection before sending: skipped items stay out, and an item that failed
    before goes alone (the suspect), so that a failure is pinned on the item that caused it."""
    if not uids:
        return uids, None
    async with ctx.db.acquire() as conn:
        known = await sync_state.failures(conn, ctx.user, ctx.line.device_id, cid, uids)
    if not known:
        return uids, None
    uids = [uid for uid in uids if not known.get(uid)]
    suspects = [uid for uid in uids if uid in known]
    if not suspects:
        return uids, None
    _repend(plan, [uid for uid in uids if uid != suspects[0]])
    # MoreAvailable also when the suspect is the last: the phone's next Sync, at the new
    # key, is what shows that it took the suspect (and clears its failures).
    plan.more = True
    return suspects[:1], suspects[0]


async def _answer_not_taken(ctx: Context, cid: int, last_response: bytes) -> None:
    """The phone asked REPLAY_LIMIT times in a row for the answer it already got: it
    cannot take it. Each item that answer added gets a failure (usm.sync_state.
    record_failures), and the phone starts the folder over (Status 3)."""
    tree = wbxml.decode(last_response)
    numbers = [sync_state.item_number(cid, add.findtext(A + "ServerId") or "") for add in tree.iter(A + "Add")]
    async with ctx.db.acquire() as conn:
        by_number = await sync_state.items_by_number(conn, ctx.user, ctx.line.device_id, cid,
                                                     [n for n in numbers if n])
        uids = [by_number[n][0] if n in by_number else None for n in numbers if n]
        reason = f"the phone asked {REPLAY_LIMIT} times for the same answer: it could not take it"
        skipped = await sync_state.record_failures(conn, ctx.user, ctx.line.device_id, cid,
                                                    {uid: reason for uid in uids if uid})
    log.warning("Sync: device %s of %s cannot take the answer for collection %d (%d items, %d now skipped); "
                "the folder starts over", ctx.line.device_id, ctx.user, cid, len(uids), len(skipped))


def _element(wanted: CollectionRequest, key: int, status: int) -> etree._Element:
    element = E(None, A + "Collection")
    E(element, A + "SyncKey", key)
    E(element, A + "CollectionId", wanted.collection_id)
    E(element, A + "Status", status)
    return element

