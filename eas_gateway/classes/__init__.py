"""Item classes: what a command does with the items of a folder, by class.

``of_folder`` finds the class of a folder from its source-qualified id
(usm.upstream.composite.kind_of); commands ask it and nothing else.
"""

from __future__ import annotations

from eas_gateway import versions
from eas_gateway.classes.base import ItemClass
from eas_gateway.classes.calendar import CalendarClass
from eas_gateway.classes.contacts import ContactsClass
from eas_gateway.classes.email import EmailClass
from eas_gateway.classes.notes import NotesClass
from eas_gateway.classes.tasks import TasksClass
from usm.upstream import Folder
from usm.upstream.composite import kind_of

CLASSES: dict[str, ItemClass] = {c.kind: c for c in (EmailClass(), ContactsClass(), CalendarClass(), TasksClass(),
                                                  NotesClass())}
# The folder kinds the gateway serves (FolderSync shows no other collections).
KINDS = frozenset(CLASSES)
# By EAS class name (Ping's and GetItemEstimate's Class, MS-ASCMD 2.2.3.27).
BY_NAME: dict[str, ItemClass] = {c.name: c for c in CLASSES.values()}


def shown(folders: list[Folder], version: str) -> list[Folder]:
    """The folders a phone of ``version`` is shown: those whose class its version has."""
    return [f for f in folders
            if (cls := of_folder(f.id)) is None or versions.within((cls.first_version, None), version)]


def of_folder(folder_id: str) -> ItemClass | None:
    """The class of a folder; None for a class the gateway does not serve (yet)."""
    return CLASSES.get(kind_of(folder_id))
