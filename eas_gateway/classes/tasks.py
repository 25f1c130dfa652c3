"""The Tasks class (MS-ASTASK): VTODOs in CalDAV calendars (items.tasks).

A calendar collection that holds events and tasks is a Calendar folder and a Tasks
folder; this class sees its VTODOs only (usm.upstream.dav_items.DavItems by component).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from lxml import etree

from eas_gateway.classes.base import A
from eas_gateway.classes.calendar import shown
from eas_gateway.classes.dav import DavClass
from eas_gateway.items import tasks
from eas_gateway.items.options import Options
from eas_gateway.xml import E
from usm.upstream import ItemSource
from usm.upstream.dav_items import DavItems
from usm.upstream.dav_store import TASKS

if TYPE_CHECKING:
    from eas_gateway.context import Context


INCOMPLETE_TASKS = 8


class TasksClass(DavClass):
    kind = TASKS
    name = "Tasks"
    content_type = "text/calendar; charset=utf-8"
    extension = "ics"
    conversion_errors = (tasks.TaskError,)

    def source(self, ctx: Context, folder_id: str, options: Options | None = None) -> ItemSource:
        """FilterType 8 (MS-ASCMD 2.2.3.70.2, tasks only): the incomplete tasks alone."""
        items = ctx.upstream.items(ctx.credentials, folder_id)
        if options is not None and options.filter_type == INCOMPLETE_TASKS and isinstance(items, DavItems):
            items.incomplete_only = True
        return items

    def to_phone(self, ctx: Context, text: str, options: Options) -> etree._Element:
        data = E(None, A + "ApplicationData")
        how = shown(ctx, options)
        tasks.application_data(data, text, zone=how.zone, truncation=how.truncation)
        return data

    def from_phone(self, ctx: Context, stored: str | None, data: etree._Element | None, options: Options, *,
                   uid: str) -> str:
        return tasks.merge(stored, tasks.read_phone(data), zone=shown(ctx, options).zone, uid=uid,
                           now=datetime.now(UTC))
