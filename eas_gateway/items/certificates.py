"""ValidateCert's judgement of an S/MIME certificate (MS-ASCMD 2.2.1.22), on the
``cryptography`` package: a path from the certificate to a trusted root through the chain
the phone sent, each signature checked, each certificate in its validity period, issuers
that are CAs, the leaf fit for e-mail, and — when asked (CheckCRL) — no certificate of
the path on its issuer's CRL. No I/O here: CRLs come through the ``fetch`` the caller gives.

Per-certificate Status (MS-ASCMD 2.2.3.177.18): 1 valid; 2 not a certificate; 3 a
signature that does not verify; 4 no path to a trusted root; 5 a chain built wrongly (an
issuer that is no CA); 6 not for e-mail (an extended key usage without
emailProtection); 7 the certificate expired or is not valid yet; 8 a certificate of the
chain expired or is not valid yet; 13 revoked; 14 the revocation status cannot be had
(CRL unreachable, with CheckCRL); 15 a certificate of the chain revoked; 17 any other
failure.
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
import warnings
from collections.abc import Awaitable, Callable
from datetime import datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.utils import CryptographyDeprecationWarning
from cryptography.x509.oid import ExtendedKeyUsageOID

log = logging.getLogger(__name__)

VALID, PROTOCOL, BAD_SIGNATURE, UNTRUSTED, BAD_CHAIN, NOT_FOR_EMAIL = 1, 2, 3, 4, 5, 6
EXPIRED, CHAIN_EXPIRED, REVOKED, REVOCATION_UNKNOWN, CHAIN_REVOKED, UNKNOWN_ERROR = 7, 8, 13, 14, 15, 17
MAX_PATH = 10

CrlFetch = Callable[[str], Awaitable[bytes | None]]


def load(text: str) -> x509.Certificate | None:
    """A certificate from base64 DER (what phones send); None if it is none."""
    try:
        return x509.load_der_x509_certificate(base64.b64decode("".join(text.split()), validate=True))
    except (binascii.Error, ValueError):
        return None


def usable(text: str, address: str, now: datetime) -> bool:
    """Whether a certificate someone published (a vCard KEY) can encrypt mail to ``address``
    now: an X.509 certificate, in its validity period, fit for e-mail, and naming the address
    when it names any (subjectAltName rfc822Name or the subject's emailAddress). Who issued
    it is the phone's to judge (it validates before it encrypts)."""
    cert = load(text)
    if cert is None or not _in_time(cert, now) or not _for_email(cert):
        return False
    named = [str(a.value) for a in cert.subject.get_attributes_for_oid(x509.NameOID.EMAIL_ADDRESS)]
    try:
        named += cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
            x509.RFC822Name)
    except x509.ExtensionNotFound:
        pass
    return not named or address.lower() in (n.lower() for n in named)


def load_store(pem: bytes) -> list[x509.Certificate]:
    """The trusted roots of a PEM bundle (e.g. /etc/ssl/certs/ca-certificates.crt), each on
    its own: one the library refuses is left out, the rest stay (system bundles hold old
    roots with serial numbers RFC 5280 disallows; ``cryptography`` warns of those)."""
    out = []
    for block in re.findall(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", pem, re.S):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", CryptographyDeprecationWarning)
            try:
                out.append(x509.load_pem_x509_certificate(block))
            except ValueError:
                continue
    return out


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
        return True
    except (ValueError, TypeError, InvalidSignature):
        return False


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return cert.version == x509.Version.v1  # old roots without extensions


def _in_time(cert: x509.Certificate, now: datetime) -> bool:
    return cert.not_valid_before_utc <= now <= cert.not_valid_after_utc


def _for_email(cert: x509.Certificate) -> bool:
    try:
        usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return True  # no restriction
    return ExtendedKeyUsageOID.EMAIL_PROTECTION in usages or ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE in usages


def _path(leaf: x509.Certificate, chain: list[x509.Certificate],
          roots: list[x509.Certificate]) -> tuple[list[x509.Certificate], bool, bool]:
    """(the path from the leaf up, whether it ends at a trusted root, whether every link's
    signature verified)."""
    path = [leaf]
    signatures_ok = True
    for _ in range(MAX_PATH):
        current = path[-1]
        root = next((r for r in roots if r.subject == current.issuer and _issued_by(current, r)), None)
        if root is not None:
            if root != current:  # (a trusted root asked about itself ends the path at once)
                path.append(root)
            return path, True, signatures_ok
        named = [c for c in chain if c.subject == current.issuer and c not in path]
        if not named:
            if any(r.subject == current.issuer for r in roots):
                signatures_ok = False  # a root of that name, whose key did not sign it
            return path, False, signatures_ok
        verified = next((c for c in named if _issued_by(current, c)), None)
        if verified is None:
            return path, False, False
        path.append(verified)
    return path, False, signatures_ok


def _crl_urls(cert: x509.Certificate) -> list[str]:
    try:
        points = cert.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    except x509.ExtensionNotFound:
        return []
    return [name.value for point in points for name in (point.full_name or [])
            if isinstance(name, x509.UniformResourceIdentifier)]


async def _revoked(cert: x509.Certificate, issuer: x509.Certificate, fetch: CrlFetch) -> bool | None:
    """True if the issuer's CRL lists the certificate, False if it does not, None if no CRL
    could be had (none named, unreachable, or not signed by the issuer)."""
    urls = _crl_urls(cert)
    for url in urls:
        data = await fetch(url)
        if data is None:
            continue
        try:
            crl = x509.load_der_x509_crl(data)
        except ValueError:
            try:
                crl = x509.load_pem_x509_crl(data)
            except ValueError:
                continue
        if crl.issuer != issuer.subject or not crl.is_signature_valid(issuer.public_key()):  # type: ignore[arg-type]
            continue
        return crl.get_revoked_certificate_by_serial_number(cert.serial_number) is not None
    return None


async def validate(text: str, chain_texts: list[str], roots: list[x509.Certificate], *, now: datetime,
                   check_crl: bool, fetch: CrlFetch) -> int:
    """The Status of one certificate (base64 DER) with the chain the phone sent."""
    leaf = load(text)
    if leaf is None:
        return PROTOCOL
    chain = [c for c in (load(t) for t in chain_texts) if c is not None]
    try:
        path, trusted, signatures_ok = _path(leaf, chain, roots)
        if not signatures_ok:
            return BAD_SIGNATURE
        if not trusted:
            return UNTRUSTED
        if any(not _is_ca(issuer) for issuer in path[1:]):
            return BAD_CHAIN
        if not _in_time(leaf, now):
            return EXPIRED
        if any(not _in_time(c, now) for c in path[1:]):
            return CHAIN_EXPIRED
        if not _for_email(leaf):
            return NOT_FOR_EMAIL
        if check_crl:
            for position, (cert, issuer) in enumerate(zip(path, path[1:], strict=False)):
                revoked = await _revoked(cert, issuer, fetch)
                if revoked:
                    return REVOKED if position == 0 else CHAIN_REVOKED
                if revoked is None and _crl_urls(cert):
                    return REVOCATION_UNKNOWN
    except (ValueError, TypeError) as exc:
        log.info("ValidateCert: %s could not be judged: %s", leaf.subject.rfc4514_string(), exc)
        return UNKNOWN_ERROR
    return VALID
