"""The folder hierarchy a device sees: pure computation, no SQL.

Upstream folders become EAS folders (MS-ASCMD 2.2.3.186.3 Type values). The
Outbox (type 6) always exists: JMAP has no Outbox role, and Android resets an
account whose hierarchy lacks one, so the gateway adds a virtual one.
"""

from __future__ import annotations

from dataclasses import dataclass

from usm.upstream import Folder

OUTBOX_UPSTREAM_ID = "virtual:outbox"

# JMAP Mailbox role (RFC 8621 2, IANA registry) -> EAS folder Type (MS-ASCMD 2.2.3.186.3).
ROLE_TYPES: dict[str, int] = {"inbox": 2, "drafts": 3, "trash": 4, "sent": 5, "outbox": 6}
USER_MAIL = 12
# Item class -> (Type of its default folder, Type of the others) (MS-ASCMD 2.2.3.186.3).
CLASS_TYPES: dict[str, tuple[int, int]] = {"tasks": (7, 15), "calendar": (8, 13), "contacts": (9, 14),
                                           "notes": (10, 17)}
# The reverse: which class and whether default, by folder Type (FolderCreate names a Type).
TYPE_CLASSES: dict[int, tuple[str, bool]] = {
    **{t[0]: (k, True) for k, t in CLASS_TYPES.items()}, **{t[1]: (k, False) for k, t in CLASS_TYPES.items()},
    **{t: ("mail", True) for t in ROLE_TYPES.values()}, 1: ("mail", False), USER_MAIL: ("mail", False)}


@dataclass(frozen=True)
class DeviceFolder:
    """One folder as the device knows it."""

    server_id: int
    parent_server_id: int | None  # None: top level (ParentId 0 on the wire)
    display_name: str
    folder_type: int


@dataclass(frozen=True)
class HierarchyChanges:
    added: list[DeviceFolder]
    updated: list[DeviceFolder]
    deleted: list[int]

    def __bool__(self) -> bool:
        return bool(self.added or self.updated or self.deleted)


def eas_type(folder: Folder) -> int:
    if folder.kind in CLASS_TYPES:
        default, other = CLASS_TYPES[folder.kind]
        return default if folder.default else other
    return ROLE_TYPES.get(folder.role or "", USER_MAIL)


def with_outbox(folders: list[Folder]) -> list[Folder]:
    if any(f.role == "outbox" for f in folders):
        return folders
    return [*folders, Folder(id=OUTBOX_UPSTREAM_ID, name="Outbox", parent_id=None, role="outbox")]


def device_view(folders: list[Folder], server_ids: dict[str, int]) -> dict[int, DeviceFolder]:
    """The folders as the device should see them, by ServerId.

    ``server_ids`` maps every upstream id in ``folders`` to its ServerId.
    Folders are listed parents first, which is the order FolderSync Adds
    must come in (a child's ParentId must already be known to the phone).
    """
    by_id = {f.id: f for f in folders}
    view: dict[int, DeviceFolder] = {}

    def depth(folder: Folder) -> int:
        n, seen = 0, set()
        while folder.parent_id in by_id and folder.id not in seen:
            seen.add(folder.id)
            folder = by_id[folder.parent_id]
            n += 1
        return n

    for folder in sorted(folders, key=lambda f: (depth(f), f.name, f.id)):
        parent = server_ids.get(folder.parent_id) if folder.parent_id in by_id else None
        view[server_ids[folder.id]] = DeviceFolder(server_ids[folder.id], parent, folder.name, eas_type(folder))
    return view


def diff(known: dict[int, DeviceFolder], current: dict[int, DeviceFolder]) -> HierarchyChanges:
    added = [f for sid, f in current.items() if sid not in known]
    updated = [f for sid, f in current.items() if sid in known and known[sid] != f]
    deleted = sorted(sid for sid in known if sid not in current)
    return HierarchyChanges(added, updated, deleted)


def descendants(folders: list[Folder], ancestor: str) -> list[Folder]:
    """The folders below ``ancestor`` (not itself), deepest first: the order
    in which they can be deleted (JMAP refuses a mailbox that has children)."""
    by_id = {f.id: f for f in folders}

    def chain(folder: Folder) -> list[str]:
        out, seen, parent = [], set(), folder.parent_id
        while parent is not None and parent in by_id and parent not in seen:
            out.append(parent)
            seen.add(parent)
            parent = by_id[parent].parent_id
        return out

    below = [(f, chain(f)) for f in folders]
    return [f for f, parents in sorted(below, key=lambda fp: -len(fp[1])) if ancestor in parents]
