"""The command table (MS-ASCMD 2.2.1): name -> handler module, namespace of its
response root, and the first protocol version that has it.

A handler module offers ``async def handle(ctx, tree) -> lxml element | bytes``
(bytes: an already encoded response, e.g. a replayed one).
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType

from eas_gateway.commands import foldersync, getitemestimate, itemoperations, ping, provision, settings, sync


@dataclass(frozen=True)
class Command:
    module: ModuleType
    root: str  # the response's root element, where Status 142/144 goes
    min_version: float = 12.0


COMMANDS: dict[str, Command] = {
    "Provision": Command(provision, "{Provision:}Provision"),
    "FolderSync": Command(foldersync, "{FolderHierarchy:}FolderSync"),
    "Settings": Command(settings, "{Settings:}Settings"),
    "Sync": Command(sync, "{AirSync:}Sync"),
    "GetItemEstimate": Command(getitemestimate, "{GetItemEstimate:}GetItemEstimate"),
    "ItemOperations": Command(itemoperations, "{ItemOperations:}ItemOperations"),
    "Ping": Command(ping, "{Ping:}Ping"),
}

# Commands a phone may send before it holds a PolicyKey (MS-ASPROV 3.1.5.1).
WITHOUT_POLICY = frozenset({"Provision"})
