"""The Email class (MS-ASEMAIL): JMAP messages in mail folders.

Reading: new items with their bodies per BodyPreference (items.fetch, items.email;
invitations with their MeetingRequest, classes.meetings),
changes as the flags, read state and categories that change in place. Writing:
classes.email_writes (flags, deletes, drafts at 16.x).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from lxml import etree

from eas_gateway.classes import email_writes, meetings
from eas_gateway.classes.base import NOT_THERE, A, Outcome, Rendered
from eas_gateway.items import email, fetch
from eas_gateway.items.options import Options
from eas_gateway.xml import E
from usm.upstream import BodyRequest, ItemSource, keywords_version

if TYPE_CHECKING:
    from eas_gateway.context import Context

log = logging.getLogger(__name__)


class EmailClass:
    kind = "mail"
    name = "Email"
    supported_refused = False
    first_version = "12.0"

    def source(self, ctx: Context, folder_id: str, options: Options | None = None) -> ItemSource:
        return ctx.upstream.mailstore.mail(ctx.credentials)

    async def render(self, ctx: Context, folder_id: str, adds: list[str], changes: list[str],
                     options: Options) -> Rendered:
        out = Rendered()
        found, mime = await fetch.for_display(ctx.upstream.mailstore, ctx.credentials, adds, options)
        invitations = await meetings.for_messages(ctx, options, list(found.values()))
        version = float(ctx.version)
        for uid in adds:
            if uid not in found:
                continue  # gone since its version was read
            data = E(None, A + "ApplicationData")
            try:
                email.application_data(data, found[uid], options, version, mime.get(uid), invitations.get(uid))
            except Exception as exc:  # one item's converter bug must not block the folder
                log.exception("Sync: item %s could not be converted", uid)
                out.failed[uid] = f"{type(exc).__name__}: {exc}"[:500]
                continue
            out.adds[uid] = data
        changed = await ctx.upstream.mailstore.messages(ctx.credentials, changes, BodyRequest()) if changes else {}
        for uid, message in changed.items():
            data = E(None, A + "ApplicationData")
            email.change_data(data, message, version)
            out.changes[uid] = data
        return out

    async def whole_items(self, ctx: Context, folder_id: str | None, uids: list[str],
                          options: Options) -> dict[str, etree._Element]:
        """``folder_id`` None: wherever the messages are (a Search result's LongId)."""
        found, mime = await fetch.for_display(ctx.upstream.mailstore, ctx.credentials, uids, options)
        invitations = await meetings.for_messages(ctx, options, list(found.values()))
        out = {}
        for uid, message in found.items():
            if folder_id is None or folder_id in message.folder_ids:
                data = E(None, A + "ApplicationData")
                email.application_data(data, message, options, float(ctx.version), mime.get(uid),
                                       invitations.get(uid))
                out[uid] = data
        return out

    async def move(self, ctx: Context, moves: list[tuple[str, str, str]]) -> dict[str, tuple[str, str] | str]:
        current = await ctx.upstream.mailstore.messages(ctx.credentials, [m[0] for m in moves], BodyRequest())
        out: dict[str, tuple[str, str] | str] = {}
        patches = {}
        for uid, source, destination in moves:
            message = current.get(uid)
            if message is None or source not in message.folder_ids:
                out[uid] = NOT_THERE
                continue
            patches[uid] = {f"mailboxIds/{source}": None, f"mailboxIds/{destination}": True}
        failed = await ctx.upstream.mailstore.update_messages(ctx.credentials, patches) if patches else {}
        for uid in patches:
            # A message keeps its id when it moves (JMAP): the version is its keywords.
            out[uid] = failed[uid] if uid in failed else (uid, keywords_version(current[uid].keywords))
        return out

    async def apply(self, ctx: Context, collection_id: int, commands: etree._Element | None, options: Options,
                    folder_id: str, *, deletes_as_moves: bool, first_item: int) -> Outcome:
        return await email_writes.apply(ctx, collection_id, commands, options, folder_id,
                                        deletes_as_moves=deletes_as_moves, first_item=first_item)
