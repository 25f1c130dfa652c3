"""The command table (MS-ASCMD 2.2.1): name -> handler and its response root.
Which protocol versions have a command is eas_gateway/versions.py.

A handler is ``async def handle(ctx, tree) -> lxml element | bytes`` (bytes:
an already encoded response, e.g. a replayed one).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from eas_gateway.commands import (
    find,
    folders,
    foldersync,
    getattachment,
    getitemestimate,
    itemoperations,
    meetingresponse,
    moveitems,
    ping,
    provision,
    resolverecipients,
    search,
    sendmail,
    settings,
    sync,
    validatecert,
)

Handler = Callable[[Any, Any], Awaitable[Any]]


@dataclass(frozen=True)
class Command:
    handle: Handler
    root: str  # the response's root element, where Status 142/144 goes
    mime_body: bool = False  # 12.x sends it a bare RFC 822 message, not WBXML


COMMANDS: dict[str, Command] = {
    "Provision": Command(provision.handle, "{Provision:}Provision"),
    "FolderSync": Command(foldersync.handle, "{FolderHierarchy:}FolderSync"),
    "FolderCreate": Command(folders.handle_create, "{FolderHierarchy:}FolderCreate"),
    "FolderUpdate": Command(folders.handle_update, "{FolderHierarchy:}FolderUpdate"),
    "FolderDelete": Command(folders.handle_delete, "{FolderHierarchy:}FolderDelete"),
    "Settings": Command(settings.handle, "{Settings:}Settings"),
    "Sync": Command(sync.handle, "{AirSync:}Sync"),
    "GetItemEstimate": Command(getitemestimate.handle, "{GetItemEstimate:}GetItemEstimate"),
    "ItemOperations": Command(itemoperations.handle, "{ItemOperations:}ItemOperations"),
    "MoveItems": Command(moveitems.handle, "{Move:}MoveItems"),
    "MeetingResponse": Command(meetingresponse.handle, "{MeetingResponse:}MeetingResponse"),
    "GetAttachment": Command(getattachment.handle, ""),
    "Search": Command(search.handle, "{Search:}Search"),
    "ValidateCert": Command(validatecert.handle, "{ValidateCert:}ValidateCert"),
    "Find": Command(find.handle, "{Find:}Find"),
    "ResolveRecipients": Command(resolverecipients.handle, "{ResolveRecipients:}ResolveRecipients"),
    "Ping": Command(ping.handle, "{Ping:}Ping"),
    "SendMail": Command(sendmail.handle_send, "{ComposeMail:}SendMail", mime_body=True),
    "SmartReply": Command(sendmail.handle_reply, "{ComposeMail:}SmartReply", mime_body=True),
    "SmartForward": Command(sendmail.handle_forward, "{ComposeMail:}SmartForward", mime_body=True),
}

# Commands a phone may send before it holds a PolicyKey (MS-ASPROV 3.1.5.1).
WITHOUT_POLICY = frozenset({"Provision"})
