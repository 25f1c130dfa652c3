"""Settings (MS-ASCMD 2.2.1.18): DeviceInformation, Oof, UserInformation.

- DeviceInformation: phones send their model, OS and user agent here (iOS at
  16.x also needs the answer before it goes on).
- Oof: the automatic reply, through JMAP VacationResponse (RFC 8621 8). EAS
  has a message per audience (internal, known external, unknown external);
  JMAP has one: Get shows it for every audience, Set takes the internal one
  (else the first enabled one). OofState 0 off, 1 on, 2 on between StartTime
  and EndTime. An upstream that fails here gives Oof Status 4 (server
  unavailable), not a failed request: Debian's Cyrus 3.6 drops the connection
  on every VacationResponse call.
- UserInformation: the user's addresses, from JMAP Identity.

Each part gets its own Status; parts not offered (DevicePassword,
RightsManagementInformation) get Status 2, so the phone knows they were not
applied.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from lxml import etree

from eas_gateway.context import Context
from eas_gateway.errors import CommandStatus
from eas_gateway.xml import E
from usm import devices
from usm.upstream import UpstreamError, Vacation

log = logging.getLogger(__name__)

S = "{Settings:}"
# MS-ASCMD 2.2.3.177.14 Settings Status values.
OK, PROTOCOL_ERROR, UNAVAILABLE, INVALID = 1, 2, 4, 5
AUDIENCES = ("AppliesToInternal", "AppliesToExternalKnown", "AppliesToExternalUnknown")
# Settings has five kinds of part (MS-ASCMD 2.2.1.18): more than a few is no phone.
MAX_PARTS = 10


async def handle(ctx: Context, tree: etree._Element | None) -> etree._Element:
    if tree is None or tree.tag != S + "Settings":
        raise CommandStatus(PROTOCOL_ERROR, "Settings request without a Settings element")
    if len(tree) > MAX_PARTS:
        raise CommandStatus(PROTOCOL_ERROR, f"Settings with {len(tree)} parts (at most {MAX_PARTS})")
    response = E(None, S + "Settings")
    E(response, S + "Status", OK)
    for part in tree:
        name = etree.QName(part).localname
        answer = E(response, part.tag)
        if name == "DeviceInformation" and part.find(S + "Set") is not None:
            await store_device_information(ctx, part)
            E(answer, S + "Status", OK)
        elif name == "Oof":
            await _oof(ctx, part, answer)
        elif name == "UserInformation" and part.find(S + "Get") is not None:
            await _user_information(ctx, answer)
        else:
            log.info("Settings: part %s is not offered yet, answered Status 2", name)
            E(answer, S + "Status", PROTOCOL_ERROR)
    return response


async def _oof(ctx: Context, part: etree._Element, answer: etree._Element) -> None:
    get, put = part.find(S + "Get"), part.find(S + "Set")
    try:
        if put is not None:
            vacation = _vacation(put)
            await ctx.upstream.mailstore.set_vacation(ctx.credentials, vacation)
            log.info("Settings: Oof of %s set to %s", ctx.user, "on" if vacation.enabled else "off")
            E(answer, S + "Status", OK)
        elif get is not None:
            vacation = await ctx.upstream.mailstore.vacation(ctx.credentials)
            E(answer, S + "Status", OK)
            _render_oof(E(answer, S + "Get"), vacation, (get.findtext(S + "BodyType") or "Text").strip())
        else:
            raise _Invalid("Oof without Get or Set")
    except _Invalid as exc:
        log.info("Settings Oof of %s: %s", ctx.user, exc)
        E(answer, S + "Status", INVALID)
    except UpstreamError as exc:
        log.warning("Settings Oof of %s: the upstream failed: %s", ctx.user, exc)
        E(answer, S + "Status", UNAVAILABLE)


class _Invalid(ValueError):
    pass


def _vacation(put: etree._Element) -> Vacation:
    state = (put.findtext(S + "OofState") or "").strip()
    if state not in ("0", "1", "2"):
        raise _Invalid(f"OofState {state!r}")
    start = end = None
    if state == "2":
        try:
            start = _date(put.findtext(S + "StartTime"))
            end = _date(put.findtext(S + "EndTime"))
        except ValueError as exc:
            raise _Invalid(f"Oof StartTime/EndTime: {exc}") from exc
        if end <= start:
            raise _Invalid("Oof EndTime is not after StartTime")
    enabled = [m for m in put.iterfind(S + "OofMessage") if (m.findtext(S + "Enabled") or "0").strip() == "1"]
    # The internal message if it is on, else the first one that is (JMAP has one message).
    chosen = next((m for audience in AUDIENCES for m in enabled if m.find(S + audience) is not None), None)
    text = html = None
    if chosen is not None:
        reply = chosen.findtext(S + "ReplyMessage") or ""
        if (chosen.findtext(S + "BodyType") or "Text").strip().upper() == "HTML":
            html = reply
        else:
            text = reply
    return Vacation(enabled=state != "0", start=start, end=end, text=text, html=html)


def _render_oof(get: etree._Element, vacation: Vacation, body_type: str) -> None:
    state = 0 if not vacation.enabled else 2 if vacation.start or vacation.end else 1
    E(get, S + "OofState", state)
    if state == 2:
        E(get, S + "StartTime", _eas_date(vacation.start or datetime(1970, 1, 1, tzinfo=UTC)))
        E(get, S + "EndTime", _eas_date(vacation.end or datetime(2999, 12, 31, tzinfo=UTC)))
    as_html = body_type.upper() == "HTML"
    reply = (vacation.html if as_html else vacation.text) or vacation.text or vacation.html or ""
    for audience in AUDIENCES:
        message = E(get, S + "OofMessage")
        E(message, S + audience)
        E(message, S + "Enabled", 1 if vacation.enabled else 0)
        E(message, S + "ReplyMessage", reply)
        E(message, S + "BodyType", "HTML" if as_html else "Text")


def _date(text: str | None) -> datetime:
    if not text:
        raise ValueError("missing")
    value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _eas_date(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


async def _user_information(ctx: Context, answer: etree._Element) -> None:
    try:
        identities = await ctx.upstream.mailstore.identities(ctx.credentials)
    except UpstreamError as exc:
        log.warning("Settings UserInformation of %s: the upstream failed: %s", ctx.user, exc)
        E(answer, S + "Status", UNAVAILABLE)
        return
    addresses = list(dict.fromkeys(i.email for i in identities if i.email)) or [ctx.user]
    E(answer, S + "Status", OK)
    get = E(answer, S + "Get")
    if float(ctx.version) >= 14.1:
        account = E(E(get, S + "Accounts"), S + "Account")
        name = next((i.name for i in identities if i.name), None)
        if name:
            E(account, S + "UserDisplayName", name)
        out = E(account, S + "EmailAddresses")
        for address in addresses:
            E(out, S + "SmtpAddress", address)
        E(out, S + "PrimarySmtpAddress", addresses[0])
    else:
        out = E(get, S + "EmailAddresses")
        for address in addresses:
            E(out, S + "SmtpAddress", address)


async def store_device_information(ctx: Context, info: etree._Element) -> None:
    """Keep the fields of a DeviceInformation/Set (MS-ASCMD 2.2.3.47) with the device."""
    fields = {etree.QName(el).localname: el.text or "" for el in info.iterfind(f"{S}Set/*")}
    async with ctx.db.acquire() as conn:
        await devices.store_information(conn, ctx.user, ctx.line.device_id, fields)
