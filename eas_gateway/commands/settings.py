"""Settings (MS-ASCMD 2.2.1.18), the DeviceInformation part.

Phones send their model, OS and user agent here (iOS at 16.x also needs the
answer before it goes on). Each part of the request gets its own Status in
the response; parts the gateway does not offer yet (Oof, DevicePassword,
UserInformation, RightsManagementInformation) get Status 2, so the phone
knows they were not applied.
"""

from __future__ import annotations

import logging

from lxml import etree

from eas_gateway.context import Context
from eas_gateway.errors import CommandStatus
from eas_gateway.xml import E
from usm import devices

log = logging.getLogger(__name__)

S = "{Settings:}"
# MS-ASCMD 2.2.3.177.14 Settings Status values.
OK, PROTOCOL_ERROR = 1, 2


async def handle(ctx: Context, tree: etree._Element | None) -> etree._Element:
    if tree is None or tree.tag != S + "Settings":
        raise CommandStatus(PROTOCOL_ERROR, "Settings request without a Settings element")
    response = E(None, S + "Settings")
    E(response, S + "Status", OK)
    for part in tree:
        name = etree.QName(part).localname
        answer = E(response, part.tag)
        if name == "DeviceInformation" and part.find(S + "Set") is not None:
            await store_device_information(ctx, part)
            E(answer, S + "Status", OK)
        else:
            log.info("Settings: part %s is not offered yet, answered Status 2", name)
            E(answer, S + "Status", PROTOCOL_ERROR)
    return response


async def store_device_information(ctx: Context, info: etree._Element) -> None:
    """Keep the fields of a DeviceInformation/Set (MS-ASCMD 2.2.3.47) with the device."""
    fields = {etree.QName(el).localname: el.text or "" for el in info.iterfind(f"{S}Set/*")}
    async with ctx.db.acquire() as conn:
        await devices.store_information(conn, ctx.user, ctx.line.device_id, fields)
