"""GetItemEstimate (MS-ASCMD 2.2.1.9): how many changes the next Syncs of a
collection would bring. Counted the way Sync would find them (usm.sync.estimate:
the plan without a window, or a folder's listing before its first Sync), and
nothing is committed.
"""

from __future__ import annotations

import logging
from dataclasses import replace

from lxml import etree

from eas_gateway import classes
from eas_gateway.context import Context
from eas_gateway.errors import CommandStatus
from eas_gateway.items.options import Options, OptionsError
from eas_gateway.items.options import parse as parse_options
from eas_gateway.xml import E, child_text
from usm import ids, sync, sync_state

log = logging.getLogger(__name__)

G = "{GetItemEstimate:}"
A = "{AirSync:}"
# MS-ASCMD 2.2.3.177.6 GetItemEstimate Status values.
OK, INVALID_COLLECTION, NOT_PRIMED, INVALID_KEY = 1, 2, 3, 4
MAX_COLLECTIONS = 1000  # as Sync (commands.sync.MAX_COLLECTIONS)


async def handle(ctx: Context, tree: etree._Element | None) -> etree._Element:
    if tree is None or tree.tag != G + "GetItemEstimate":
        raise CommandStatus(INVALID_COLLECTION, "GetItemEstimate request without a GetItemEstimate element")
    wanted_collections = tree.findall(f"{G}Collections/{G}Collection")
    if len(wanted_collections) > MAX_COLLECTIONS:
        raise CommandStatus(INVALID_COLLECTION, f"GetItemEstimate of {len(wanted_collections)} collections"
                                                f" (at most {MAX_COLLECTIONS})")
    root = E(None, G + "GetItemEstimate")
    for wanted in wanted_collections:
        response = E(root, G + "Response")
        collection_id = child_text(wanted, G + "CollectionId") or ""
        status, estimate = await _estimate(ctx, wanted, collection_id)
        E(response, G + "Status", status)
        found = E(response, G + "Collection")
        E(found, G + "CollectionId", collection_id)
        if status == OK:
            E(found, G + "Estimate", estimate)
    return root


async def _estimate(ctx: Context, wanted: etree._Element, collection_id: str) -> tuple[int, int]:
    device = ctx.line.device_id
    cid = ids.number(collection_id)
    if cid is None:
        return INVALID_COLLECTION, 0
    key_text = child_text(wanted, A + "SyncKey")
    async with ctx.db.acquire() as conn:
        state = (await sync_state.states(conn, ctx.user, device, [cid]))[cid]
    folder_id = state.folder_id
    cls = classes.of_folder(folder_id) if folder_id is not None else None
    if folder_id is None or cls is None:
        log.info("GetItemEstimate: collection %s is no folder of %s", collection_id, ctx.user)
        return INVALID_COLLECTION, 0
    key = ids.number(key_text)
    if key is None:
        return INVALID_KEY, 0
    if key == 0 or state.sync_key == 0:
        return NOT_PRIMED, 0
    if key not in (state.sync_key, state.sync_key - 1):
        return INVALID_KEY, 0
    try:
        options = parse_options(wanted.findall(A + "Options"), item_class=cls.name,
                                previous=Options.from_json(state.options))
    except OptionsError as exc:
        log.info("GetItemEstimate: %s", exc)
        return INVALID_COLLECTION, 0
    # 12.x sends FilterType directly in the Collection, 14.0+ in Options.
    filter_text = child_text(wanted, A + "FilterType")
    if ids.number(filter_text, digits=1) is not None:
        options = replace(options, filter_type=ids.number(filter_text, digits=1) or 0)
    if folder_id.startswith("virtual:"):
        return OK, 0
    return OK, await sync.estimate(ctx.db, cls.source(ctx, folder_id, options), (ctx.user, device, cid), state,
                                   folder_id, options.since(), relist=options.filter_type != state.filter_type)
