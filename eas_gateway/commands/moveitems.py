"""MoveItems (MS-ASCMD 2.2.1.12): move items between folders of one class (messages
between mail folders, contacts between address books: eas_gateway.classes).

Each Move is checked and answered on its own (Status per MS-ASCMD
2.2.3.177.9): 1 the source folder or item is unknown (or the item is no
longer in it), 2 the destination is unknown or not a real folder, 4 source
and destination are the same, 5 the upstream refused, 3 moved. A moved item
gets a new ServerId in the destination collection, recorded at once for
this device (usm.sync_state.move_item), so neither folder's next Sync sends
the move back as a Delete or an Add. The same move again (the phone lost the
answer) gets the same answer for a day (usm.sync_state.moved_to).
"""

from __future__ import annotations

import logging

from lxml import etree

from eas_gateway import classes
from eas_gateway.classes.base import NOT_THERE
from eas_gateway.context import Context
from eas_gateway.errors import CommandStatus
from eas_gateway.xml import E, child_text
from usm import folders, ids, sync_state
from usm.hierarchy import OUTBOX_UPSTREAM_ID

log = logging.getLogger(__name__)

MV = "{Move:}"
BAD_SOURCE, BAD_DESTINATION, MOVED, SAME_FOLDER, FAILED = 1, 2, 3, 4, 5
MAX_MOVES = 1000
INVALID_XML = 103  # MS-ASCMD 2.2.2 common status: MoveItems has no request-level code of its own


async def handle(ctx: Context, tree: etree._Element | None) -> etree._Element:
    if tree is None or tree.tag != MV + "MoveItems":
        raise CommandStatus(INVALID_XML, "MoveItems request without a MoveItems element")
    moves = [(child_text(m, MV + "SrcMsgId") or "", child_text(m, MV + "SrcFldId") or "",
              child_text(m, MV + "DstFldId") or "") for m in tree.iterfind(MV + "Move")]
    if not moves or len(moves) > MAX_MOVES:
        raise CommandStatus(INVALID_XML, f"MoveItems with {len(moves)} Move elements")
    numbers = {n for _, s, d in moves for n in (ids.number(s), ids.number(d)) if n is not None}
    statuses: dict[int, tuple[int, str | None]] = {}  # index -> (Status, DstMsgId)
    wanted: dict[int, tuple[int, int, int, str]] = {}  # index -> (source, item, destination, upstream id)
    async with ctx.db.acquire() as conn:  # no upstream call while it is held
        upstream_folders = await folders.upstream_ids(conn, ctx.user, sorted(numbers))
        for index, (message_id, source, destination) in enumerate(moves):
            src, dst = ids.number(source), ids.number(destination)
            number = sync_state.item_number(src, message_id) if src is not None else None
            if src not in upstream_folders or number is None:
                statuses[index] = (BAD_SOURCE, None)
            elif dst not in upstream_folders or upstream_folders[dst] == OUTBOX_UPSTREAM_ID:
                statuses[index] = (BAD_DESTINATION, None)
            elif src == dst:
                statuses[index] = (SAME_FOLDER, None)
            else:
                uid = await sync_state.item(conn, ctx.user, ctx.line.device_id, src, number)
                earlier = await sync_state.moved_to(conn, ctx.user, ctx.line.device_id, src, number) \
                    if uid is None else None
                if earlier is not None and earlier[0] == dst:
                    # The same move again: its answer was lost. The same new ServerId, nothing moved twice.
                    log.info("MoveItems: device %s moved %s before; answering it again", ctx.line.device_id,
                             message_id)
                    statuses[index] = (MOVED, sync_state.server_id(*earlier))
                elif uid is None:
                    statuses[index] = (BAD_SOURCE, None)
                else:
                    wanted[index] = (src, number, dst, uid)
    results = await _move(ctx, {index: (uid, upstream_folders[src], upstream_folders[dst])
                                for index, (src, _, dst, uid) in wanted.items()}, statuses)
    async with ctx.db.acquire() as conn:
        for index, (src, number, dst, uid) in wanted.items():
            result = results.get(index)
            if result is None:
                continue
            if isinstance(result, str):
                log.warning("MoveItems: upstream refused to move %s: %s", uid, result)
                statuses[index] = (BAD_SOURCE if result == NOT_THERE else FAILED, None)
                continue
            new_uid, version = result
            new = await sync_state.move_item(conn, ctx.user, ctx.line.device_id, src, number, dst, new_uid, version)
            statuses[index] = (MOVED, sync_state.server_id(dst, new))
    root = E(None, MV + "MoveItems")
    for index, (message_id, _, _) in enumerate(moves):
        status, new_id = statuses[index]
        if status != MOVED:
            log.info("MoveItems: device %s, %s: Status %d", ctx.line.device_id, message_id, status)
        response = E(root, MV + "Response")
        E(response, MV + "SrcMsgId", message_id)
        E(response, MV + "Status", status)
        if new_id is not None:
            E(response, MV + "DstMsgId", new_id)
    return root


async def _move(ctx: Context, wanted: dict[int, tuple[str, str, str]],
                statuses: dict[int, tuple[int, str | None]]) -> dict[int, tuple[str, str] | str]:
    """Each move by the class of its folders: (upstream id, source, destination) by index.
    A move between folders of different classes is refused (Status 2)."""
    by_class: dict[str, list[int]] = {}
    for index, (_, source, destination) in wanted.items():
        cls = classes.of_folder(source)
        if cls is None or classes.of_folder(destination) is not cls:
            statuses[index] = (BAD_DESTINATION, None)
            continue
        by_class.setdefault(cls.kind, []).append(index)
    out: dict[int, tuple[str, str] | str] = {}
    for kind, indexes in by_class.items():
        moved = await classes.CLASSES[kind].move(ctx, [wanted[i] for i in indexes])
        for index in indexes:
            out[index] = moved.get(wanted[index][0], NOT_THERE)
    return out
