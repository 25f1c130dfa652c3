"""ResolveRecipients (MS-ASCMD 2.2.1.15): what the phone asks while the user types an address.

Each To is looked up in the user's contacts (Type 2) and the directory (Type 1,
classes.directory): an entry with that exact e-mail address resolves it; otherwise every
entry whose name or address holds the text is a candidate. Per To, Status (MS-ASCMD
2.2.3.177.13): 1 one recipient, 2 several (at most MaxAmbiguousRecipients of them are
listed, RecipientCount tells how many there are), 4 none. An address nobody knows is
still an address: it resolves to itself (Status 1), as Exchange does for external ones.
Certificates (the vCard KEY) and Availability (free/busy) are not offered yet: a request
for them is answered without them; a Picture is.
"""

from __future__ import annotations

import logging
from email.utils import parseaddr

from lxml import etree

from eas_gateway.classes import directory
from eas_gateway.commands.search import gal_properties
from eas_gateway.context import Context
from eas_gateway.errors import CommandStatus
from eas_gateway.xml import E, child_text
from usm import ids

log = logging.getLogger(__name__)

R = "{ResolveRecipients:}"
OK, AMBIGUOUS, AMBIGUOUS_PARTIAL, UNRESOLVED = 1, 2, 3, 4
PROTOCOL_ERROR = 5
MAX_TO = 100
DEFAULT_AMBIGUOUS = 19  # a phone that says nothing gets at most this many candidates (Exchange's)
GAL, CONTACT = 1, 2


async def handle(ctx: Context, tree: etree._Element | None) -> etree._Element:
    if tree is None or tree.tag != R + "ResolveRecipients":
        raise CommandStatus(PROTOCOL_ERROR, "ResolveRecipients request without its element")
    wanted = [(t.text or "").strip() for t in tree.iterfind(R + "To")]
    if not wanted or len(wanted) > MAX_TO or not all(wanted):
        raise CommandStatus(PROTOCOL_ERROR, f"ResolveRecipients with {len(wanted)} To elements")
    options = tree.find(R + "Options")
    limit = ids.number(child_text(options, R + "MaxAmbiguousRecipients")) if options is not None else None
    limit = DEFAULT_AMBIGUOUS if limit is None else min(limit, DEFAULT_AMBIGUOUS * 5)
    root = E(None, R + "ResolveRecipients")
    E(root, R + "Status", OK)
    for text in wanted:
        await _one(ctx, text, options, limit, E(root, R + "Response"))
    return root


async def _one(ctx: Context, text: str, options: etree._Element | None, limit: int,
               response: etree._Element) -> None:
    E(response, R + "To", text)
    name, address = parseaddr(text)
    needle = address if "@" in address else text
    candidates = [(CONTACT, e) for e in await directory.search(ctx, needle, directory=False)] + \
        [(GAL, e) for e in await directory.search(ctx, needle, directory=True)]
    exact = [(kind, e) for kind, e in candidates if needle.lower() in (a.lower() for a in e.emails)]
    chosen = exact[:1] if exact else _unique(candidates)
    if not chosen and "@" in address:  # an address nobody knows is still an address
        E(response, R + "Status", OK)
        E(response, R + "RecipientCount", 1)
        _recipient(response, CONTACT, name or address, address, None, options)
        return
    if not chosen:
        E(response, R + "Status", UNRESOLVED)
        E(response, R + "RecipientCount", 0)
        return
    E(response, R + "Status", OK if len(chosen) == 1 else AMBIGUOUS)
    E(response, R + "RecipientCount", len(chosen))
    for kind, entry in chosen[:limit]:
        _recipient(response, kind, entry.display_name, entry.email or "", entry, options)


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


def _recipient(response: etree._Element, kind: int, name: str, address: str, entry: directory.Entry | None,
               options: etree._Element | None) -> None:
    recipient = E(response, R + "Recipient")
    E(recipient, R + "Type", kind)
    E(recipient, R + "DisplayName", name)
    E(recipient, R + "EmailAddress", address)
    if options is None:
        return
    picture = options.find(R + "Picture")
    if picture is not None and entry is not None:
        holder = etree.Element("holder")
        gal_properties(holder, entry, True, ids.number(child_text(picture, R + "MaxSize")),
                       ids.number(child_text(picture, R + "MaxPictures")), 0, ns=R)
        found = holder.find(R + "Picture")
        if found is not None:
            recipient.append(found)
