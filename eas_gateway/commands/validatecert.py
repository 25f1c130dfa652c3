"""ValidateCert (MS-ASCMD 2.2.1.22): the phone asks whether the S/MIME certificates of a
message it received are good. Each is judged by items.certificates against the trust
store (``EAS_TRUST_STORE``, the system's by default) and the CertificateChain sent with
it; with CheckCRL 1 the CRLs its certificates name are fetched (http or https only, a
few seconds and a megabyte at most each, once per request) and one that cannot be had
is Status 14. The request's Status is 1, or 2 for a request without certificates.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from urllib.parse import urlsplit

import httpx
from cryptography import x509
from lxml import etree

from eas_gateway.context import Context
from eas_gateway.errors import CommandStatus
from eas_gateway.items import certificates
from eas_gateway.xml import E, child_text

log = logging.getLogger(__name__)

V = "{ValidateCert:}"
OK, PROTOCOL_ERROR = 1, 2
MAX_CERTIFICATES = 100
CRL_TIMEOUT = 5.0
CRL_LIMIT = 1024 * 1024


@cache
def _roots(path: str, modified: float) -> list[x509.Certificate]:
    return certificates.load_store(Path(path).read_bytes())


def roots(path: str) -> list[x509.Certificate]:
    """The trusted roots (re-read when the file changes)."""
    try:
        return _roots(path, Path(path).stat().st_mtime)
    except OSError as exc:
        log.warning("ValidateCert: the trust store %s cannot be read: %s", path, exc)
        return []


async def handle(ctx: Context, tree: etree._Element | None) -> etree._Element:
    if tree is None or tree.tag != V + "ValidateCert":
        raise CommandStatus(PROTOCOL_ERROR, "ValidateCert request without a ValidateCert element")
    wanted = [c.text or "" for c in tree.iterfind(f"{V}Certificates/{V}Certificate")]
    chain = [c.text or "" for c in tree.iterfind(f"{V}CertificateChain/{V}Certificate")]
    root = E(None, V + "ValidateCert")
    if not wanted or len(wanted) + len(chain) > MAX_CERTIFICATES:
        log.info("ValidateCert: device %s sent %d certificates", ctx.line.device_id, len(wanted))
        E(root, V + "Status", PROTOCOL_ERROR)
        return root
    check_crl = (child_text(tree, V + "CheckCRL") or "0").strip() == "1"
    fetched: dict[str, bytes | None] = {}

    async def fetch(url: str) -> bytes | None:
        if url not in fetched:
            fetched[url] = await _crl(url)
        return fetched[url]

    trusted = roots(ctx.settings.trust_store)
    E(root, V + "Status", OK)
    now = datetime.now(UTC)
    for text in wanted:
        status = await certificates.validate(text, chain, trusted, now=now, check_crl=check_crl, fetch=fetch)
        E(E(root, V + "Certificate"), V + "Status", status)
    return root


async def _crl(url: str) -> bytes | None:
    if urlsplit(url).scheme not in ("http", "https"):
        return None
    try:
        async with httpx.AsyncClient(timeout=CRL_TIMEOUT, follow_redirects=False) as client, \
                client.stream("GET", url) as response:
            if response.status_code != 200:
                return None
            data = b""
            async for chunk in response.aiter_bytes():
                data += chunk
                if len(data) > CRL_LIMIT:
                    return None
            return data
    except httpx.HTTPError as exc:
        log.info("ValidateCert: the CRL at %s cannot be had: %s", url, exc)
        return None
