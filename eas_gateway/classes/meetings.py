"""Meetings between the Email and Calendar classes.

``for_messages``: which of a batch of messages are invitations or cancellations (a
text/calendar part with METHOD REQUEST or CANCEL, items.meeting): each gets the
writer of its MeetingRequest element and its IPM.Schedule.Meeting.* class. The
MeetingResponse command (commands/meetingresponse.py) answers them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from lxml import etree

from eas_gateway.classes.calendar import shown
from eas_gateway.items import fetch, meeting
from eas_gateway.items.calendar import CalendarError, Shown
from eas_gateway.items.options import Options
from usm.upstream import Message

if TYPE_CHECKING:
    from eas_gateway.context import Context

log = logging.getLogger(__name__)

MeetingWriter = Callable[[etree._Element], str]


async def for_messages(ctx: Context, options: Options, messages: list[Message]) -> dict[str, MeetingWriter]:
    """Message id -> the writer of its MeetingRequest, for the invitations among ``messages``."""
    candidates = [m for m in messages if any(a.type.lower() == "text/calendar" for a in m.attachments)]
    if not candidates:
        return {}
    parts = await fetch.calendar_parts(ctx.upstream.mailstore, ctx.credentials, candidates)
    how = shown(ctx, options)
    out: dict[str, MeetingWriter] = {}
    for message_id, text in parts.items():
        try:
            invitation = meeting.read(text)
        except (meeting.MeetingError, CalendarError, ValueError) as exc:
            log.info("message %s: its text/calendar part is no meeting: %s", message_id, exc)
            continue
        if invitation is not None:
            out[message_id] = _writer(message_id, invitation, how)
    return out


def _writer(message_id: str, invitation: meeting.Invitation, how: Shown) -> MeetingWriter:
    def write(parent: etree._Element) -> str:
        holder = etree.Element("holder")
        try:
            meeting.meeting_request(holder, invitation, how)
        except (meeting.MeetingError, CalendarError, ValueError, KeyError) as exc:
            log.info("message %s: the meeting cannot be shown: %s", message_id, exc)
            return "IPM.Note"
        parent.extend(list(holder))
        return invitation.message_class
    return write
