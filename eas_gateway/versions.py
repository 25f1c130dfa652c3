"""Which command and which element exists in which protocol version.

This file is data: the command list of [MS-ASCMD] 2.2.1 (each command's
section says which protocol versions do not support it) and the "Protocol
versions" column of the code page tables of [MS-ASWBXML] 2.1.2.1.x, where a
tag is not in every version this gateway offers (12.0-16.1). A tag not named
here exists in all of them. Where an element's own table in a content
specification (e.g. [MS-ASEMAIL] for email:Categories) is narrower than its
token's, the narrower one is written and cited.

The app answers a command only in the versions that have it, and checks every
response before encoding it: an element the phone's version does not have is
dropped, counted and logged as a bug (``checked``). The test suite fails any
test whose responses needed that (tests/conftest.py).
"""

from __future__ import annotations

import functools
import logging
from collections import Counter

from lxml import etree

log = logging.getLogger(__name__)

# [MS-ASHTTP] 2.2.1.1.2.6, oldest first; 2.5 is not offered.
VERSIONS: tuple[str, ...] = ("12.0", "12.1", "14.0", "14.1", "16.0", "16.1")

# A span of versions: the first that has it and the last (None: still there).
Span = tuple[str, str | None]

# [MS-ASCMD] 2.2.1.1-2.2.1.22. Autodiscover (2.2.1.1) has its own endpoint.
COMMANDS: dict[str, Span] = {
    "Find": ("16.1", None),  # 2.2.1.2
    "FolderCreate": ("12.0", None),  # 2.2.1.3
    "FolderDelete": ("12.0", None),  # 2.2.1.4
    "FolderSync": ("12.0", None),  # 2.2.1.5
    "FolderUpdate": ("12.0", None),  # 2.2.1.6
    "GetAttachment": ("12.0", "14.1"),  # 2.2.1.7: not supported in 16.0 and 16.1
    "GetHierarchy": ("2.5", "2.5"),  # 2.2.1.8: not from 12.1 on; its Folders/Folder tags are 2.5-only
    "GetItemEstimate": ("12.0", None),  # 2.2.1.9
    "ItemOperations": ("12.0", None),  # 2.2.1.10
    "MeetingResponse": ("12.0", None),  # 2.2.1.11
    "MoveItems": ("12.0", None),  # 2.2.1.12
    "Ping": ("12.0", None),  # 2.2.1.13
    "Provision": ("12.0", None),  # 2.2.1.14
    "ResolveRecipients": ("12.0", None),  # 2.2.1.15
    "Search": ("12.0", None),  # 2.2.1.16
    "SendMail": ("12.0", None),  # 2.2.1.17 (below 14.0 a bare MIME body, no ComposeMail tags)
    "Settings": ("12.0", None),  # 2.2.1.18
    "SmartForward": ("12.0", None),  # 2.2.1.19
    "SmartReply": ("12.0", None),  # 2.2.1.20
    "Sync": ("12.0", None),  # 2.2.1.21
    "ValidateCert": ("12.0", None),  # 2.2.1.22
}

# Commands answered below their first version because devices send them there:
# iOS sends Find on 14.x accounts. The phone wrote the command's own tags, so
# its answer is checked against the command's first version.
ANSWERED_EARLIER: frozenset[str] = frozenset({"Find"})

# Whole code pages that came after 12.0 ([MS-ASWBXML] 2.1.2.1.22-26): every tag
# of the page has this span unless ELEMENTS names it.
NAMESPACES: dict[str, Span] = {
    "ComposeMail": ("14.0", None),  # 2.1.2.1.22 (12.x sends mail as MIME)
    "Email2": ("14.0", None),  # 2.1.2.1.23
    "Notes": ("14.0", None),  # 2.1.2.1.24
    "RightsManagement": ("14.1", None),  # 2.1.2.1.25
    "Find": ("16.1", None),  # 2.1.2.1.26
}

# "Namespace:Tag" -> span, for tags not in every version 12.0-16.1.
ELEMENTS: dict[str, Span] = {
    # 2.1.2.1.1 Code Page 0: AirSync
    "AirSync:Version": ("2.5", "2.5"),
    "AirSync:Truncation": ("2.5", "2.5"),
    "AirSync:RTFTruncation": ("2.5", "2.5"),
    "AirSync:NotifyGUID": ("2.5", "2.5"),
    "AirSync:Wait": ("12.1", None),
    "AirSync:Limit": ("12.1", None),
    "AirSync:Partial": ("12.1", None),
    "AirSync:ConversationMode": ("14.0", None),
    "AirSync:MaxItems": ("14.0", None),
    "AirSync:HeartbeatInterval": ("14.0", None),
    # 2.1.2.1.2 Code Page 1: Contacts
    "Contacts:Body": ("2.5", "2.5"),
    "Contacts:BodySize": ("2.5", "2.5"),
    "Contacts:BodyTruncated": ("2.5", "2.5"),
    "Contacts:CompressedRTF": ("2.5", "2.5"),
    "Contacts:Alias": ("14.0", None),
    "Contacts:WeightedRank": ("14.0", None),
    # 2.1.2.1.3 Code Page 2: Email
    "Email:Attachment": ("2.5", "2.5"),
    "Email:Attachments": ("2.5", "2.5"),
    "Email:AttName": ("2.5", "2.5"),
    "Email:AttSize": ("2.5", "2.5"),
    "Email:Att0Id": ("2.5", "2.5"),
    "Email:AttMethod": ("2.5", "2.5"),
    "Email:AttRemoved": ("2.5", "2.5"),
    "Email:Body": ("2.5", "2.5"),
    "Email:BodySize": ("2.5", "2.5"),
    "Email:BodyTruncated": ("2.5", "2.5"),
    "Email:MIMEData": ("2.5", "2.5"),
    "Email:MIMETruncated": ("2.5", "2.5"),
    "Email:MIMESize": ("2.5", "2.5"),
    "Email:DisallowNewTimeProposal": ("14.0", None),
    # [MS-ASEMAIL] 2.2.2.13/2.2.2.14: email:Categories and Category not in 12.0/12.1.
    "Email:Categories": ("14.0", None),
    "Email:Category": ("14.0", None),
    # 2.1.2.1.5 Code Page 4: Calendar
    "Calendar:Body": ("2.5", "2.5"),
    "Calendar:BodyTruncated": ("2.5", "2.5"),
    "Calendar:Rtf": ("2.5", "2.5"),
    "Calendar:DisallowNewTimeProposal": ("14.0", None),
    "Calendar:ResponseRequested": ("14.0", None),
    "Calendar:AppointmentReplyTime": ("14.0", None),
    "Calendar:ResponseType": ("14.0", None),
    "Calendar:CalendarType": ("14.0", None),
    "Calendar:IsLeapMonth": ("14.0", None),
    "Calendar:FirstDayOfWeek": ("14.1", None),
    "Calendar:OnlineMeetingConfLink": ("14.1", None),
    "Calendar:OnlineMeetingExternalLink": ("14.1", None),
    "Calendar:ClientUid": ("16.0", None),
    # 2.1.2.1.7 Code Page 6: GetItemEstimate
    "GetItemEstimate:Version": ("2.5", "2.5"),
    "GetItemEstimate:DateTime": ("2.5", "2.5"),
    "GetItemEstimate:Class": ("2.5", "12.1"),  # AirSync:Class from 14.0
    # 2.1.2.1.8 Code Page 7: FolderHierarchy
    "FolderHierarchy:Folders": ("2.5", "2.5"),
    "FolderHierarchy:Folder": ("2.5", "2.5"),
    "FolderHierarchy:Response": ("2.5", "2.5"),
    "FolderHierarchy:ContentClass": ("2.5", "2.5"),
    "FolderHierarchy:Version": ("2.5", "2.5"),
    # 2.1.2.1.9 Code Page 8: MeetingResponse
    "MeetingResponse:Version": ("2.5", "2.5"),
    "MeetingResponse:InstanceId": ("14.1", None),
    "MeetingResponse:ProposedStartTime": ("16.0", None),
    "MeetingResponse:ProposedEndTime": ("16.0", None),
    "MeetingResponse:SendResponse": ("16.0", None),
    # 2.1.2.1.10 Code Page 9: Tasks
    "Tasks:Body": ("2.5", "2.5"),
    "Tasks:BodySize": ("2.5", "2.5"),
    "Tasks:BodyTruncated": ("2.5", "2.5"),
    "Tasks:CompressedRTF": ("2.5", "2.5"),
    "Tasks:CalendarType": ("14.0", None),
    "Tasks:IsLeapMonth": ("14.0", None),
    "Tasks:FirstDayOfWeek": ("14.1", None),
    # 2.1.2.1.11 Code Page 10: ResolveRecipients
    "ResolveRecipients:Availability": ("14.0", None),
    "ResolveRecipients:StartTime": ("14.0", None),
    "ResolveRecipients:EndTime": ("14.0", None),
    "ResolveRecipients:MergedFreeBusy": ("14.0", None),
    "ResolveRecipients:Picture": ("14.1", None),
    "ResolveRecipients:MaxSize": ("14.1", None),
    "ResolveRecipients:Data": ("14.1", None),
    "ResolveRecipients:MaxPictures": ("14.1", None),
    # 2.1.2.1.15 Code Page 14: Provision
    "Provision:AccountOnlyRemoteWipe": ("16.1", None),
    # 2.1.2.1.16 Code Page 15: Search
    "Search:Schema": ("2.5", "2.5"),
    "Search:Supported": ("2.5", "2.5"),
    "Search:ConversationId": ("14.0", None),
    "Search:Picture": ("14.1", None),
    "Search:MaxSize": ("14.1", None),
    "Search:MaxPictures": ("14.1", None),
    # 2.1.2.1.17 Code Page 16: GAL
    "GAL:Picture": ("14.1", None),
    "GAL:Status": ("14.1", None),
    "GAL:Data": ("14.1", None),
    # 2.1.2.1.18 Code Page 17: AirSyncBase
    "AirSyncBase:Preview": ("14.0", None),
    "AirSyncBase:BodyPartPreference": ("14.1", None),
    "AirSyncBase:BodyPart": ("14.1", None),
    "AirSyncBase:Status": ("14.1", None),
    "AirSyncBase:Add": ("16.0", None),
    "AirSyncBase:Delete": ("16.0", None),
    "AirSyncBase:ClientId": ("16.0", None),
    "AirSyncBase:Content": ("16.0", None),
    "AirSyncBase:Location": ("16.0", None),
    "AirSyncBase:Annotation": ("16.0", None),
    "AirSyncBase:Street": ("16.0", None),
    "AirSyncBase:City": ("16.0", None),
    "AirSyncBase:State": ("16.0", None),
    "AirSyncBase:Country": ("16.0", None),
    "AirSyncBase:PostalCode": ("16.0", None),
    "AirSyncBase:Latitude": ("16.0", None),
    "AirSyncBase:Longitude": ("16.0", None),
    "AirSyncBase:Accuracy": ("16.0", None),
    "AirSyncBase:Altitude": ("16.0", None),
    "AirSyncBase:AltitudeAccuracy": ("16.0", None),
    "AirSyncBase:LocationUri": ("16.0", None),
    "AirSyncBase:InstanceId": ("16.0", None),
    # 2.1.2.1.19 Code Page 18: Settings
    "Settings:EnableOutboundSMS": ("14.0", None),
    "Settings:MobileOperator": ("14.0", None),
    "Settings:PrimarySmtpAddress": ("14.1", None),
    "Settings:Accounts": ("14.1", None),
    "Settings:Account": ("14.1", None),
    "Settings:AccountId": ("14.1", None),
    "Settings:AccountName": ("14.1", None),
    "Settings:UserDisplayName": ("14.1", None),
    "Settings:SendDisabled": ("14.1", None),
    "Settings:RightsManagementInformation": ("14.1", None),
    # 2.1.2.1.21 Code Page 20: ItemOperations
    "ItemOperations:Move": ("14.0", None),
    "ItemOperations:DstFldId": ("14.0", None),
    "ItemOperations:ConversationId": ("14.0", None),
    "ItemOperations:MoveAlways": ("14.0", None),
    # 2.1.2.1.22 Code Page 21: ComposeMail (the page is 14.0, above)
    "ComposeMail:AccountId": ("14.1", None),
    "ComposeMail:Forwardees": ("16.0", None),
    "ComposeMail:Forwardee": ("16.0", None),
    "ComposeMail:ForwardeeName": ("16.0", None),
    "ComposeMail:ForwardeeEmail": ("16.0", None),
    # 2.1.2.1.23 Code Page 22: Email2 (the page is 14.0, above)
    "Email2:AccountId": ("14.1", None),
    "Email2:FirstDayOfWeek": ("14.1", None),
    "Email2:MeetingMessageType": ("14.1", None),
    "Email2:IsDraft": ("16.0", None),
    "Email2:Bcc": ("16.0", None),
    "Email2:Send": ("16.0", None),
}


@functools.lru_cache(maxsize=64)
def _key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


def within(span: Span, version: str) -> bool:
    first, last = span
    return _key(first) <= _key(version) and (last is None or _key(version) <= _key(last))


def offers(command: str, version: str) -> bool:
    """Whether ``command`` is answered at ``version`` (see ANSWERED_EARLIER)."""
    span = COMMANDS.get(command)
    if span is None:
        return False
    if command in ANSWERED_EARLIER:
        span = (VERSIONS[0], span[1])
    return within(span, version)


def has(tag: str, version: str) -> bool:
    """Whether ``version`` has the element of lxml tag ``tag`` ("{ResolveRecipients:}Picture")."""
    span = _span(tag)
    return span is None or within(span, version)


# The same tables by lxml's tag spelling ("{AirSync:}Wait"), for the walk.
_BY_TAG: dict[str, Span] = {"{%s:}%s" % tuple(name.split(":")): span for name, span in ELEMENTS.items()}
_BY_NAMESPACE: dict[str, Span] = {"{%s:}" % name: span for name, span in NAMESPACES.items()}


def _span(tag: str) -> Span | None:
    """The span of an element by lxml tag; None when it is in every version."""
    span = _BY_TAG.get(tag)
    return span if span is not None else _BY_NAMESPACE.get(tag[:tag.find("}") + 1])


@functools.lru_cache(maxsize=16)
def _missing(version: str) -> tuple[str, ...]:
    """lxml tag patterns of what ``version`` lacks: its tags, and "{ns}*" for whole pages."""
    return (*(t for t, span in _BY_TAG.items() if not within(span, version)),
            *(ns + "*" for ns, span in _BY_NAMESPACE.items() if not within(span, version)))


# What ``checked`` had to drop since the process started: "Namespace:Tag@version" -> count.
dropped: Counter[str] = Counter()


def checked(root: etree._Element, version: str, command: str = "") -> etree._Element:
    """``root`` without the elements ``version`` does not have, each one
    dropped counted and logged: a response must never carry them. lxml finds the
    candidates (``iter`` with the version's patterns, in C), so a clean answer costs
    one pass without Python per element."""
    if command in ANSWERED_EARLIER:
        first = COMMANDS[command][0]
        if _key(version) < _key(first):
            version = first
    removed: set[etree._Element] = set()
    for element in list(root.iter(*_missing(version))):
        if element is root or has(element.tag, version):  # a tag of its own in a page that came later
            continue
        if any(a in removed for a in element.iterancestors()):
            continue  # gone with its parent
        element.getparent().remove(element)
        removed.add(element)
        name = element.tag[1:].replace(":}", ":", 1)
        dropped[f"{name}@{version}"] += 1
        log.error("a %s %s response carried %s, which that version does not have; dropped",
                  version, command or "command", name)
    return root
