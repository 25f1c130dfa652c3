"""What every item class offers the commands, and what they share.

An item class (Email, Contacts, Calendar, Tasks, Notes) knows how its items
are found upstream (``source``), shown to a phone (``render``, ``fetch``) and
changed by one (``apply``: the Add/Change/Delete/Fetch commands of a Sync).
Commands look the class up from the folder once (eas_gateway.classes.of_folder)
and know nothing else about item types. A version is an opaque string per
class: keywords for mail, the ETag for DAV objects.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from lxml import etree

from eas_gateway.items.options import Options
from eas_gateway.xml import E, child_text
from usm import sync_state
from usm.upstream import ItemSource

if TYPE_CHECKING:
    from eas_gateway.context import Context

log = logging.getLogger(__name__)

A = "{AirSync:}"
INSTANCE_ID = "{AirSyncBase:}InstanceId"
# MS-ASCMD 2.2.3.177.17 Sync Status values for single commands.
OK, CONVERSION_ERROR, CONFLICT, NOT_FOUND = 1, 6, 7, 8


@dataclass
class Outcome:
    """What the phone's commands did, for the caller to commit and answer."""

    responses: etree._Element | None = None
    versions: dict[str, tuple[int, str]] = field(default_factory=dict)  # upstream id -> (item, version shown)
    deleted: dict[str, int] = field(default_factory=dict)  # upstream id -> item
    added: list[tuple[str, int, str, str]] = field(default_factory=list)  # (ClientId, item, upstream id, version)
    # Items now standing for another upstream object (a revised draft): old id -> (item, new id, version)
    replaced: dict[str, tuple[int, str, str]] = field(default_factory=dict)
    touched: bool = False  # the phone sent commands: the SyncKey moves on


@dataclass
class Rendered:
    """ApplicationData for the items a Sync sends, and the ones that failed to convert."""

    adds: dict[str, etree._Element] = field(default_factory=dict)
    changes: dict[str, etree._Element] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)  # upstream id -> why


Found = tuple[int, str, str]  # (item number, upstream id, version the phone has)


@dataclass
class PhoneCommands:
    """The Commands element of one collection, sorted by kind, items looked up."""

    changes: list[tuple[str, Found | None, etree._Element]] = field(default_factory=list)
    deletes: list[tuple[str, Found | None]] = field(default_factory=list)
    fetches: list[tuple[str, str | None]] = field(default_factory=list)  # (ServerId, upstream id)
    adds: list[tuple[str, etree._Element]] = field(default_factory=list)  # (ClientId, command)
    # The InstanceId of each Delete (None: the whole item), in the order of ``deletes``: a Delete
    # of one occurrence (16.0, MS-ASAIRS 2.2.2.26). A Change carries its own in its command.
    delete_instances: list[str | None] = field(default_factory=list)


async def read_commands(ctx: Context, collection_id: int, commands: etree._Element) -> PhoneCommands:
    """Sort the phone's commands and find the items their ServerIds name."""
    numbers = [n for n in (sync_state.item_number(collection_id, child_text(c, A + "ServerId") or "")
                           for c in commands) if n is not None]
    async with ctx.db.acquire() as conn:  # only the items named: a command costs the same in any folder size
        by_item = await sync_state.items_by_number(conn, ctx.user, ctx.line.device_id, collection_id, numbers)

    def lookup(server_id: str) -> Found | None:
        number = sync_state.item_number(collection_id, server_id)
        if number is None or number not in by_item:
            return None
        return (number, *by_item[number])

    out = PhoneCommands()
    for command in commands:
        name = etree.QName(command).localname
        server_id = child_text(command, A + "ServerId") or ""
        if name == "Change":
            out.changes.append((server_id, lookup(server_id), command))
        elif name == "Delete":
            out.deletes.append((server_id, lookup(server_id)))
            out.delete_instances.append(child_text(command, INSTANCE_ID) or None)
        elif name == "Fetch":
            found = lookup(server_id)
            out.fetches.append((server_id, found[1] if found else None))
        elif name == "Add":
            out.adds.append(((child_text(command, A + "ClientId") or "").strip(), command))
        else:
            log.warning("Sync: device %s sent an unknown command %s in collection %d",
                        ctx.line.device_id, name, collection_id)
    return out


def added_before(element: etree._Element, ctx: Context, collection_id: int, client_id: str,
                 known: dict[str, int]) -> bool:
    """A phone's Add whose ClientId is committed already (it resent the request): answered
    with the ServerId it got then, and True; else False, answering nothing."""
    if client_id not in known:
        return False
    server_id = sync_state.server_id(collection_id, known[client_id])
    log.info("Sync: device %s added ClientId %r again; it is %s already", ctx.line.device_id, client_id, server_id)
    E(element, A + "ServerId", server_id)
    E(element, A + "Status", OK)
    return True


def answer(responses: etree._Element, name: str, server_id: str, status: int) -> None:
    element = E(responses, A + name)
    E(element, A + "ServerId", server_id)
    E(element, A + "Status", status)


class ItemClass(Protocol):
    kind: str  # the folder kind it serves (usm.upstream.Folder.kind)
    name: str  # the EAS class (Sync/Ping/GetItemEstimate Class): Email, Contacts, ...
    supported_refused: bool  # a Sync Supported element is a protocol error (Notes: MS-ASNOTE)
    first_version: str  # the first protocol version that has the class (Notes: 14.0)

    def source(self, ctx: Context, folder_id: str, options: Options | None = None) -> ItemSource:
        """The folder's items upstream, for the sync engine (usm.sync), as the collection's
        options filter them (FilterType)."""
        ...

    async def render(self, ctx: Context, folder_id: str, adds: list[str], changes: list[str],
                     options: Options) -> Rendered:
        """ApplicationData of new and changed items; items gone meanwhile are left out."""
        ...

    async def whole_items(self, ctx: Context, folder_id: str, uids: list[str],
                          options: Options) -> dict[str, etree._Element]:
        """ApplicationData of whole items (Sync Fetch, ItemOperations Fetch); missing ones left out."""
        ...

    async def apply(self, ctx: Context, collection_id: int, commands: etree._Element | None, options: Options,
                    folder_id: str, *, deletes_as_moves: bool, first_item: int) -> Outcome:
        """Apply the phone's commands; new items are numbered from ``first_item``.
        Nothing is committed here: the caller commits the Outcome with the generation."""
        ...

    async def move(self, ctx: Context, moves: list[tuple[str, str, str]]) -> dict[str, tuple[str, str] | str]:
        """MoveItems: (upstream id, source folder, destination folder) of this class each;
        per upstream id its (new upstream id, version), or why not: NOT_THERE when the item
        is not in the source (any more), else the upstream's reason. A retried move finds
        its earlier result (nothing moved or copied twice)."""
        ...


NOT_THERE = "notFound"
