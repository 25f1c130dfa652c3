"""Provision (MS-ASPROV 3.2.5.1): hand out the policy and its keys.

Phase 1: the phone asks for MS-EAS-Provisioning-WBXML and gets the policy
document with a temporary key. Phase 2: it acknowledges that key (Status 1)
and gets the final key. The policy asks for nothing: the gateway has no
device policy of its own to enforce yet.

A device an admin asked to wipe (usm.admin) gets the RemoteWipe directive, or
AccountOnlyRemoteWipe at 16.1, instead of a policy, whatever it asks for; its
acknowledgement is recorded for the admin (MS-ASPROV 3.2.5.1.2).
"""

from __future__ import annotations

import logging

from lxml import etree

from eas_gateway.commands.settings import store_device_information
from eas_gateway.context import Context
from eas_gateway.errors import CommandStatus
from eas_gateway.xml import E, child_text
from usm import devices, ids

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


# MS-ASPROV 2.2.2.54.3: the phone's report in its wipe acknowledgement.
WIPE_DONE = 1
# The directive element per wipe kind (2.2.2.45 RemoteWipe, 2.2.2.1 AccountOnlyRemoteWipe).
WIPE_ELEMENTS = {"device": "RemoteWipe", "account": "AccountOnlyRemoteWipe"}


async def handle(ctx: Context, tree: etree._Element | None) -> etree._Element:
    if tree is None or tree.tag != P + "Provision":
        raise CommandStatus(2, "Provision request without a Provision element")
    if ctx.device.wipe_kind is not None:
        return await _wipe(ctx, tree, ctx.device.wipe_kind)
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


async def _wipe(ctx: Context, tree: etree._Element, kind: str) -> etree._Element:
    element = WIPE_ELEMENTS[kind]
    if kind == "account" and ctx.version != "16.1":
        # A RemoteWipe in its place would erase the whole phone.
        raise CommandStatus(2, f"account-only wipe pending, but the device speaks {ctx.version}, not 16.1")
    response = E(None, P + "Provision")
    ack = tree.find(f"{P}{element}/{P}Status")
    if ack is None:
        log.warning("Provision: sending the %s directive to device %s of %s", element, ctx.line.device_id, ctx.user)
        E(response, P + "Status", POLICY_OK)
        E(response, P + element)
        return response
    reported = int(ack.text) if (ack.text or "").strip() in ("1", "2") else 2
    async with ctx.db.acquire() as conn:
        await devices.acknowledge_wipe(conn, ctx.user, ctx.line.device_id, reported)
    log.warning("Provision: device %s of %s acknowledged the %s directive with Status %d", ctx.line.device_id,
                ctx.user, element, reported)
    # MS-ASPROV 3.2.5.1.2.2: success -> Status 1; failure -> Status 2 and the directive again.
    E(response, P + "Status", POLICY_OK if reported == WIPE_DONE else 2)
    if reported != WIPE_DONE:
        E(response, P + element)
    return response


def _key(text: str) -> int:
    value = ids.number(text, digits=10)
    return -1 if value is None else value


def _policy_document(data: etree._Element) -> None:
    doc = E(data, P + "EASProvisionDoc")
    for name, value in _POLICY_SETTINGS:
        E(doc, P + name, value)
