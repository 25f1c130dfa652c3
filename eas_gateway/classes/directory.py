"""The directory (the GAL of Search, Find and ResolveRecipients) and the user's own contacts,
searched through CardDAV (usm.upstream.dav query_cards: an addressbook-query).

The directory is the address book ``EAS_DIRECTORY`` names (e.g. a company book every
user may read), else the union of the user's own address books. An entry carries what
MS-ASCMD's GAL code page has: display name, first/last name, e-mail, phones, company,
title, office, alias, the picture, and the certificates (KEY) for ResolveRecipients.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from eas_gateway.items import contacts, vcard
from usm.upstream import NotFound, WriteRefused
from usm.upstream.dav_store import CONTACTS

if TYPE_CHECKING:
    from eas_gateway.context import Context

log = logging.getLogger(__name__)

MAX_MATCHES = 1000  # considered per search: enough to count a Total, not a whole company


@dataclass(frozen=True)
class Entry:
    display_name: str
    email: str | None
    first_name: str | None
    last_name: str | None
    company: str | None
    title: str | None
    office: str | None
    alias: str | None
    phone: str | None
    home_phone: str | None
    mobile_phone: str | None
    picture: str | None  # base64
    emails: tuple[str, ...]  # every address of the card (ResolveRecipients matches any)
    certificates: tuple[str, ...] = ()  # base64 DER of the card's KEY lines (S/MIME certificates, unchecked)


def entry(text: str) -> Entry | None:
    """A vCard as a directory entry; None for one that cannot be read."""
    try:
        card = vcard.parse(text)
        fields = contacts.card_fields(card)
    except (contacts.ContactError, vcard.VCardError, ValueError):
        return None
    values = fields.values
    emails = tuple(line.text.strip() for line in card.all("EMAIL") if line.text.strip())
    name_line = card.first("FN")
    display = (name_line.text.strip() if name_line and name_line.text else "") or \
        " ".join(v for v in (values.get("FirstName"), values.get("LastName")) if v) or (emails[0] if emails else "")
    if not display:
        return None
    return Entry(display, emails[0] if emails else None, values.get("FirstName"), values.get("LastName"),
                 values.get("CompanyName"), values.get("JobTitle"), values.get("OfficeLocation"),
                 values.get("NickName"), values.get("BusinessPhoneNumber"), values.get("HomePhoneNumber"),
                 values.get("MobilePhoneNumber"), fields.picture, emails,
                 tuple(k for line in card.all("KEY") if (k := contacts.inline_base64(line))))


async def books(ctx: Context, *, directory: bool) -> list[str]:
    """The address books searched: the directory (``directory``) or the user's own."""
    if directory and ctx.settings.directory:
        return [ctx.settings.directory if ctx.settings.directory.endswith("/") else ctx.settings.directory + "/"]
    return [c.path for c in await ctx.upstream.collections(ctx.credentials) if c.kind == CONTACTS]


async def search(ctx: Context, text: str, *, directory: bool = True) -> list[Entry]:
    """Entries whose name, e-mail, nickname or company holds ``text``, by display name."""
    dav = ctx.upstream.dav
    if dav is None or not text.strip():
        return []
    found: dict[str, Entry] = {}
    for book in await books(ctx, directory=directory):
        try:
            cards = await dav.query_cards(ctx.credentials, book, text.strip())
        except (NotFound, WriteRefused) as exc:  # a directory the user may not read: nothing from it
            log.warning("directory: %s cannot search %s: %s", ctx.user, book, exc)
            continue
        for card in cards[:MAX_MATCHES]:
            one = entry(card.data)
            if one is not None:
                found.setdefault((one.email or one.display_name).lower(), one)
    return sorted(found.values(), key=lambda e: (e.display_name.casefold(), e.email or ""))
