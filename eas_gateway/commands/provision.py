"""Provision (MS-ASPROV 3.2.5.1): hand out the policy and its keys.

Phase 1: the phone asks for MS-EAS-Provisioning-WBXML and gets the policy
document with a temporary key. Phase 2: it acknowledges that key (Status 1)
and gets the final key. The policy asks for nothing: the gateway has no
device policy of its own to enforce yet.
"""

from __future__ import annotations

import logging

from lxml import etree

from eas_gateway.commands.settings import store_device_information
from eas_gateway.context import Context
from eas_gateway.errors import CommandStatus
from eas_gateway.xml import E, child_text
from usm import devices

log = logging.getLogger(__name__)

P = "{Provision:}"
S = "{Settings:}"
POLICY_TYPE = "MS-EAS-Provisioning-WBXML"

# MS-ASPROV 2.2.2.54.1 Policy Status values.
POLICY_OK, POLICY_NONE, POLICY_UNKNOWN_TYPE, POLICY_CORRUPT, POLICY_WRONG_KEY = 1, 2, 3, 4, 5

# MS-ASPROV 2.2.2.26 EASProvisionDoc, the 12.0 settings: nothing required.
_POLICY_SETTINGS = (
    ("DevicePasswordEnabled", "0"),
    ("AlphanumericDevicePasswordRequired", "0"),
    ("PasswordRecoveryEnabled", "0"),
    ("AttachmentsEnabled", "1"),
    ("AllowSimpleDevicePassword", "1"),
)


async def handle(ctx: Context, tree: etree._Element | None) -> etree._Element:
    if tree is None or tree.tag != P + "Provision":
        raise CommandStatus(2, "Provision request without a Provision element")
    response = E(None, P + "Provision")
    E(response, P + "Status", 1)
    info = tree.find(S + "DeviceInformation")
    if info is not None:
        # MS-ASPROV 3.1.5.1: from 14.1 a phone may send DeviceInformation with Provision.
        await store_device_information(ctx, info)
        E(E(response, S + "DeviceInformation"), S + "Status", 1)
    policy = tree.find(f"{P}Policies/{P}Policy")
    if policy is None:
        raise CommandStatus(2, "Provision request without Policies/Policy")
    policy_type = child_text(policy, P + "PolicyType")
    out = E(E(response, P + "Policies"), P + "Policy")
    E(out, P + "PolicyType", policy_type)
    if policy_type != POLICY_TYPE:
        log.info("Provision: unknown PolicyType %r", policy_type)
        E(out, P + "Status", POLICY_UNKNOWN_TYPE)
        return response
    acknowledged = child_text(policy, P + "PolicyKey")
    async with ctx.db.acquire() as conn:
        if acknowledged is None:
            key = await devices.offer_policy(conn, ctx.user, ctx.line.device_id)
            E(out, P + "Status", POLICY_OK)
            E(out, P + "PolicyKey", key)
            _policy_document(E(out, P + "Data"))
            return response
        final = await devices.acknowledge_policy(conn, ctx.user, ctx.line.device_id, _key(acknowledged))
    if final is None:
        log.info("Provision: device %s acknowledged key %s, which was not offered", ctx.line.device_id, acknowledged)
        E(out, P + "Status", POLICY_WRONG_KEY)
        return response
    E(out, P + "Status", POLICY_OK)
    E(out, P + "PolicyKey", final)
    return response


def _key(text: str) -> int:
    return int(text) if text.isdigit() and len(text) <= 10 else -1


def _policy_document(data: etree._Element) -> None:
    doc = E(data, P + "EASProvisionDoc")
    for name, value in _POLICY_SETTINGS:
        E(doc, P + name, value)
