"""Upstream folders -> the hierarchy a device sees (pure code)."""

from __future__ import annotations

from usm import hierarchy
from usm.hierarchy import DeviceFolder
from usm.upstream import Folder


def _folders() -> list[Folder]:
    return [
        Folder("c", "Child", "p", None),
        Folder("p", "Parent", None, None),
        Folder("i", "Inbox", None, "inbox"),
        Folder("t", "Trash", None, "trash"),
        Folder("s", "Sent", None, "sent"),
        Folder("d", "Drafts", None, "drafts"),
        Folder("j", "Junk", None, "junk"),
    ]


def test_roles_become_eas_types_and_an_outbox_is_added() -> None:
    folders = hierarchy.with_outbox(_folders())
    types = {f.name: hierarchy.eas_type(f) for f in folders}
    assert types == {"Child": 12, "Parent": 12, "Inbox": 2, "Trash": 4, "Sent": 5, "Drafts": 3, "Junk": 12,
                     "Outbox": 6}
    assert hierarchy.with_outbox(folders) == folders  # only one Outbox


def test_parents_come_before_children() -> None:
    folders = _folders()
    ids = {f.id: n for n, f in enumerate(folders, start=1)}
    view = list(hierarchy.device_view(folders, ids).values())
    names = [f.display_name for f in view]
    assert names.index("Parent") < names.index("Child")
    child = next(f for f in view if f.display_name == "Child")
    assert child.parent_server_id == ids["p"]


def test_a_parent_cycle_does_not_hang() -> None:
    folders = [Folder("a", "A", "b", None), Folder("b", "B", "a", None)]
    assert len(hierarchy.device_view(folders, {"a": 1, "b": 2})) == 2


def test_diff() -> None:
    known = {1: DeviceFolder(1, None, "Inbox", 2), 2: DeviceFolder(2, None, "Old", 12),
             3: DeviceFolder(3, None, "X", 12)}
    current = {1: DeviceFolder(1, None, "Inbox", 2), 2: DeviceFolder(2, None, "New", 12),
               4: DeviceFolder(4, 2, "Y", 12)}
    changes = hierarchy.diff(known, current)
    assert [f.server_id for f in changes.added] == [4]
    assert [f.display_name for f in changes.updated] == ["New"]
    assert changes.deleted == [3]
    assert not hierarchy.diff(current, current)
