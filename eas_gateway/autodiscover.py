"""Autodiscover: a phone given only an address and a password finds the server.

Two forms:
- POX (MS-ASCMD 2.2.1.1): POST /autodiscover/autodiscover.xml with the
  mobilesync request schema, authenticated (Basic, as every request); the
  answer names the ActiveSync URL and the user. Errors are answered in the
  document with ErrorCode 600 (invalid request) or 601 (no provider for the
  AcceptableResponseSchema), as the specification's example shows; an
  address that is not the authenticated user's, or of a domain not served,
  gets 500 ("the e-mail address cannot be found", MS-OXDSCLI 2.2.4.1.1.3.2).
- JSON v2 (what Outlook mobile and newer iOS ask first): GET
  /autodiscover/autodiscover.json?Email=...&Protocol=ActiveSync, or
  /autodiscover/autodiscover.json/v1.0/<address>?Protocol=ActiveSync,
  unauthenticated: {"Protocol": "ActiveSync", "Url": ...}. An unknown
  protocol is 400 InvalidProtocol, an address outside the served domains 404.

The URL comes from EAS_PUBLIC_URL, else from the scheme and host of the
request (behind a trusted proxy: the forwarded ones).
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from lxml import etree
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from usm.upstream import UpstreamError

if TYPE_CHECKING:
    from eas_gateway.app import Gateway

log = logging.getLogger(__name__)

REQUEST_NS = "http://schemas.microsoft.com/exchange/autodiscover/mobilesync/requestschema/2006"
RESPONSE_NS = "http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006"
MOBILESYNC_NS = "http://schemas.microsoft.com/exchange/autodiscover/mobilesync/responseschema/2006"
PATH = "/Microsoft-Server-ActiveSync"
INVALID_REQUEST, NO_PROVIDER, ADDRESS_NOT_FOUND = 600, 601, 500
MAX_REQUEST_BYTES = 64 * 1024
_ADDRESS = re.compile(r"^[^@\s]+@([^@\s]+\.[^@\s]+|[^@\s.]+)$")


class AutodiscoverError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


async def pox(request: Request, gateway: Gateway) -> Response:
    credentials, account = await gateway.sign_in(request)  # EASError: 401, 429, 503 (the caller answers those)
    try:
        address = check_address(parse_pox(await _body(request)), _domains(gateway))
        if address.lower() not in (account.user.lower(), credentials.user.lower()):
            raise AutodiscoverError(ADDRESS_NOT_FOUND, f"{address} is not the address of {credentials.user}")
    except AutodiscoverError as exc:
        log.info("Autodiscover (POX) of %s: error %d: %s", credentials.user, exc.code, exc)
        return Response(render_pox_error(exc), media_type="text/xml")
    try:
        names = [i.name for i in await gateway.upstream.mailstore.identities(credentials) if i.name]
    except UpstreamError as exc:
        log.warning("Autodiscover: no display name for %s: %s", account.user, exc)
        names = []
    url = activesync_url(gateway.settings.public_url, request.url.scheme, request.url.netloc)
    log.info("Autodiscover (POX) of %s: %s", account.user, url)
    return Response(render_pox(address, names[0] if names else address, url), media_type="text/xml")


async def json_v2(request: Request, gateway: Gateway) -> Response:
    address = request.path_params.get("address") or request.query_params.get("Email", "")
    protocol = request.query_params.get("Protocol", "")
    if protocol.lower() != "activesync":
        return _json_error(400, "InvalidProtocol", f"protocol {protocol!r} is not offered; ActiveSync is")
    try:
        check_address(address, _domains(gateway))
    except AutodiscoverError as exc:
        status, code = (404, "InvalidUser") if exc.code == ADDRESS_NOT_FOUND else (400, "InvalidRequest")
        return _json_error(status, code, str(exc))
    url = activesync_url(gateway.settings.public_url, request.url.scheme, request.url.netloc)
    return JSONResponse({"Protocol": "ActiveSync", "Url": url})


async def _body(request: Request) -> bytes:
    """The request body; reading stops once it exceeds MAX_REQUEST_BYTES (parse_pox refuses it)."""
    chunks, size = [], 0
    async for chunk in request.stream():
        chunks.append(chunk)
        size += len(chunk)
        if size > MAX_REQUEST_BYTES:
            break
    return b"".join(chunks)


def _json_error(status: int, code: str, message: str) -> Response:
    log.info("Autodiscover (JSON): %d %s: %s", status, code, message)
    return JSONResponse({"ErrorCode": code, "ErrorMessage": message}, status_code=status)


def _domains(gateway: Gateway) -> list[str]:
    return [d.strip().lower() for d in gateway.settings.domains.split(",") if d.strip()]


def activesync_url(public_url: str, scheme: str, host: str) -> str:
    base = public_url.rstrip("/") if public_url else f"{scheme}://{host}"
    return base + PATH


def check_address(address: str, domains: list[str]) -> str:
    """The address, if well formed and of a served domain (any, when ``domains`` is empty)."""
    match = _ADDRESS.match(address.strip())
    if not match:
        raise AutodiscoverError(INVALID_REQUEST, f"{address!r} is not an e-mail address")
    if domains and match.group(1).lower() not in domains:
        raise AutodiscoverError(ADDRESS_NOT_FOUND, f"{match.group(1)} is not a domain this server serves")
    return str(address).strip()


def parse_pox(body: bytes) -> str:
    """The EMailAddress of a mobilesync POX request."""
    if len(body) > MAX_REQUEST_BYTES:
        raise AutodiscoverError(INVALID_REQUEST, f"request of {len(body)} bytes")
    try:
        root = etree.fromstring(body, parser=etree.XMLParser(resolve_entities=False, no_network=True))
    except etree.XMLSyntaxError as exc:
        raise AutodiscoverError(INVALID_REQUEST, f"not XML: {exc}") from exc
    request = root.find(f"{{{REQUEST_NS}}}Request")
    if root.tag != f"{{{REQUEST_NS}}}Autodiscover" or request is None:
        raise AutodiscoverError(INVALID_REQUEST, f"not a mobilesync Autodiscover request: {root.tag}")
    schema = (request.findtext(f"{{{REQUEST_NS}}}AcceptableResponseSchema") or "").strip()
    if schema != MOBILESYNC_NS:
        raise AutodiscoverError(NO_PROVIDER, f"no provider for AcceptableResponseSchema {schema!r}")
    address: str | None = request.findtext(f"{{{REQUEST_NS}}}EMailAddress")
    if not address:
        raise AutodiscoverError(INVALID_REQUEST, "request without EMailAddress")
    return address.strip()


def render_pox(address: str, display_name: str, url: str) -> bytes:
    root = etree.Element(f"{{{RESPONSE_NS}}}Autodiscover", nsmap={None: RESPONSE_NS})
    response = _sub(root, "Response", nsmap={None: MOBILESYNC_NS})
    _sub(response, "Culture", "en:us")
    user = _sub(response, "User")
    _sub(user, "DisplayName", display_name)
    _sub(user, "EMailAddress", address)
    server = _sub(_sub(_sub(response, "Action"), "Settings"), "Server")
    _sub(server, "Type", "MobileSync")
    _sub(server, "Url", url)
    _sub(server, "Name", url)
    return bytes(etree.tostring(root, xml_declaration=True, encoding="utf-8"))


def render_pox_error(error: AutodiscoverError) -> bytes:
    root = etree.Element(f"{{{RESPONSE_NS}}}Autodiscover", nsmap={None: RESPONSE_NS})
    response = _sub(root, "Response", nsmap={None: MOBILESYNC_NS})
    now = datetime.now(UTC)
    failure = _sub(response, "Error", Time=now.strftime("%H:%M:%S.%f"), Id=str(int(now.timestamp())))
    _sub(failure, "ErrorCode", str(error.code))
    _sub(failure, "Message", str(error))
    _sub(failure, "DebugData")
    return bytes(etree.tostring(root, xml_declaration=True, encoding="utf-8"))


def _sub(parent: etree._Element, name: str, text: str | None = None, nsmap: dict[str | None, str] | None = None,
         **attributes: str) -> etree._Element:
    el = etree.SubElement(parent, f"{{{MOBILESYNC_NS}}}{name}", attrib=attributes or None, nsmap=nsmap)
    if text is not None:
        el.text = text
    return el
