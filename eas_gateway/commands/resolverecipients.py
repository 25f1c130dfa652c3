"""ResolveRecipients (MS-ASCMD 2.2.1.15): what the phone asks while the user types an address.

Each To is looked up in the user's contacts (Type 2) and the directory (Type 1,
classes.directory): an entry with that exact e-mail address resolves it; otherwise every
entry whose name or address holds the text is a candidate. Per To, Status (MS-ASCMD
2.2.3.177.12): 1 one recipient, 2 several (at most MaxAmbiguousRecipients of them are
listed, RecipientCount tells how many there are), 4 none. An address nobody knows is
still an address: it resolves to itself (Status 1), as Exchange does for external ones.

Options, each recipient:
- CertificateRetrieval 2 (or 3): the S/MIME certificates of the entry's vCard KEY that are
  usable now (items.certificates.usable), Status 1 with CertificateCount, or 7 when there
  are none; MaxCertificates bounds the whole answer, a recipient past it gets Status 8 and
  the count it would have had. A mini certificate (3) is an Exchange format of its own:
  the full certificate is sent instead.
- Availability (14.0 on): the recipient's MergedFreeBusy over StartTime-EndTime
  (classes.availability), for a To that resolved to one recipient only (MS-ASCMD 2.2.3.183).
- Picture (14.1 on): the entry's photo within MaxSize/MaxPictures.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parseaddr

from lxml import etree

from eas_gateway import versions
from eas_gateway.classes import availability, directory
from eas_gateway.commands.search import gal_properties
from eas_gateway.context import Context
from eas_gateway.errors import CommandStatus
from eas_gateway.items import certificates, freebusy
from eas_gateway.xml import E, child_text, date_time
from usm import ids

log = logging.getLogger(__name__)

R = "{ResolveRecipients:}"
OK, AMBIGUOUS, AMBIGUOUS_PARTIAL, UNRESOLVED = 1, 2, 3, 4
PROTOCOL_ERROR = 5
# MS-ASCMD 2.2.3.177.12 Status of a Certificates element.
NO_CERTIFICATE, CERTIFICATE_LIMIT = 7, 8
# MS-ASCMD 2.2.3.22 CertificateRetrieval.
NO_CERTIFICATES, FULL_CERTIFICATES, MINI_CERTIFICATES = 1, 2, 3
MAX_TO = 100
DEFAULT_AMBIGUOUS = 19  # a phone that says nothing gets at most this many candidates (Exchange's)
GAL, CONTACT = 1, 2


@dataclass(frozen=True)
class Wanted:
    """The request's Options."""

    limit: int  # MaxAmbiguousRecipients
    certificates: bool
    max_certificates: int | None
    span: tuple[datetime, datetime] | None  # Availability StartTime, EndTime
    picture: etree._Element | None


Recipient = tuple[int, str, str, "directory.Entry | None"]  # (Type, name, address, the entry)


@dataclass(frozen=True)
class Found:
    """What one To resolved to: its Status, how many there are, those listed."""

    status: int
    count: int
    recipients: list[Recipient]


async def handle(ctx: Context, tree: etree._Element | None) -> etree._Element:
    if tree is None or tree.tag != R + "ResolveRecipients":
        raise CommandStatus(PROTOCOL_ERROR, "ResolveRecipients request without its element")
    texts = [(t.text or "").strip() for t in tree.iterfind(R + "To")]
    if not texts or len(texts) > MAX_TO or not all(texts):
        raise CommandStatus(PROTOCOL_ERROR, f"ResolveRecipients with {len(texts)} To elements")
    wanted = _options(tree.find(R + "Options"), ctx.version)
    found = [await _resolve(ctx, text, wanted.limit) for text in texts]
    busy: dict[str, str | int] = {}
    if wanted.span is not None:
        single = list(dict.fromkeys(f.recipients[0][2] for f in found if f.status == OK and len(f.recipients) == 1))
        busy = await availability.merged(ctx, single, *wanted.span)
    budget = [wanted.max_certificates]
    now = datetime.now(UTC)
    root = E(None, R + "ResolveRecipients")
    E(root, R + "Status", OK)
    for text, one in zip(texts, found, strict=True):
        response = E(root, R + "Response")
        E(response, R + "To", text)
        E(response, R + "Status", one.status)
        E(response, R + "RecipientCount", one.count)
        for kind, name, address, entry in one.recipients:
            recipient = E(response, R + "Recipient")
            E(recipient, R + "Type", kind)
            E(recipient, R + "DisplayName", name)
            E(recipient, R + "EmailAddress", address)
            if address in busy and len(one.recipients) == 1 and one.status == OK:
                _availability(recipient, busy[address])
            if wanted.certificates:
                _certificates(recipient, entry, address, now, budget)
            if wanted.picture is not None and entry is not None:
                _picture(recipient, entry, wanted.picture)
    return root


def _options(options: etree._Element | None, version: str) -> Wanted:
    """The Options, without what ``version`` does not have (Availability 14.0, Picture 14.1)."""
    if options is None:
        return Wanted(DEFAULT_AMBIGUOUS, False, None, None, None)
    limit = ids.number(child_text(options, R + "MaxAmbiguousRecipients"))
    retrieval = ids.number(child_text(options, R + "CertificateRetrieval")) or NO_CERTIFICATES
    if retrieval not in (NO_CERTIFICATES, FULL_CERTIFICATES, MINI_CERTIFICATES):
        raise CommandStatus(PROTOCOL_ERROR, f"CertificateRetrieval {retrieval} is not 1, 2 or 3")
    span = None
    asked = options.find(R + "Availability")
    if asked is not None and versions.has(R + "Availability", version):
        start, end = date_time(child_text(asked, R + "StartTime")), date_time(child_text(asked, R + "EndTime"))
        if start is None or end is None or end <= start:
            raise CommandStatus(PROTOCOL_ERROR, "Availability without a StartTime before its EndTime")
        if freebusy.slots(start, end) > freebusy.MAX_SLOTS:
            raise CommandStatus(PROTOCOL_ERROR, f"Availability over {end - start}: more than 32 KB of free/busy")
        span = (start, end)
    return Wanted(DEFAULT_AMBIGUOUS if limit is None else min(limit, DEFAULT_AMBIGUOUS * 5),
                  retrieval != NO_CERTIFICATES, ids.number(child_text(options, R + "MaxCertificates")), span,
                  options.find(R + "Picture") if versions.has(R + "Picture", version) else None)


async def _resolve(ctx: Context, text: str, limit: int) -> Found:
    name, address = parseaddr(text)
    needle = address if "@" in address else text
    candidates = [(CONTACT, e) for e in await directory.search(ctx, needle, directory=False)] + \
        [(GAL, e) for e in await directory.search(ctx, needle, directory=True)]
    exact = [(kind, e) for kind, e in candidates if needle.lower() in (a.lower() for a in e.emails)]
    chosen = exact[:1] if exact else _unique(candidates)
    if not chosen and "@" in address:  # an address nobody knows is still an address
        return Found(OK, 1, [(CONTACT, name or address, address, None)])
    if not chosen:
        return Found(UNRESOLVED, 0, [])
    listed: list[Recipient] = [(kind, e.display_name, e.email or "", e) for kind, e in chosen[:limit]]
    return Found(OK if len(chosen) == 1 else AMBIGUOUS, len(chosen), listed)


def _unique(candidates: list[tuple[int, directory.Entry]]) -> list[tuple[int, directory.Entry]]:
    """One candidate per address: a contact of the user's before the directory's same entry."""
    seen: set[str] = set()
    out = []
    for kind, entry in candidates:
        key = (entry.email or entry.display_name).lower()
        if entry.email and key not in seen:
            seen.add(key)
            out.append((kind, entry))
    return out


def _availability(recipient: etree._Element, busy: str | int) -> None:
    element = E(recipient, R + "Availability")
    if isinstance(busy, int):
        E(element, R + "Status", busy)
        return
    E(element, R + "Status", availability.OK)
    E(element, R + "MergedFreeBusy", busy)


def _certificates(recipient: etree._Element, entry: directory.Entry | None, address: str, now: datetime,
                  budget: list[int | None]) -> None:
    """The recipient's usable certificates; ``budget``: what MaxCertificates still allows."""
    mine = [c for c in (entry.certificates if entry else ()) if certificates.usable(c, address, now)]
    element = E(recipient, R + "Certificates")
    if not mine:
        E(element, R + "Status", NO_CERTIFICATE)
        E(element, R + "CertificateCount", 0)
        return
    left = budget[0]
    if left is not None and left < len(mine):
        E(element, R + "Status", CERTIFICATE_LIMIT)
        E(element, R + "CertificateCount", len(mine))  # the ones not returned
        return
    if left is not None:
        budget[0] = left - len(mine)
    E(element, R + "Status", OK)
    E(element, R + "CertificateCount", len(mine))
    for cert in mine:
        E(element, R + "Certificate", cert)


def _picture(recipient: etree._Element, entry: directory.Entry, picture: etree._Element) -> None:
    holder = etree.Element("holder")
    gal_properties(holder, entry, True, ids.number(child_text(picture, R + "MaxSize")),
                   ids.number(child_text(picture, R + "MaxPictures")), 0, ns=R)
    found = holder.find(R + "Picture")
    if found is not None:
        recipient.append(found)
