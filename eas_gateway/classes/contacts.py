"""The Contacts class (MS-ASCNTC): vCards in CardDAV address books.

Everything a DAV class does is classes.dav.DavClass's; this says how a card is shown
to a phone (items.contacts, with each phone's form of a date) and how the phone's
fields go into the stored card (merged, never rebuilt; Supported ghosting).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lxml import etree

from eas_gateway.classes.base import A
from eas_gateway.classes.dav import DavClass
from eas_gateway.items import contacts
from eas_gateway.items.options import PLAIN, Options
from eas_gateway.items.vcard import VCardError
from eas_gateway.xml import E
from usm.upstream.dav_store import CONTACTS

if TYPE_CHECKING:
    from eas_gateway.context import Context


class ContactsClass(DavClass):
    kind = CONTACTS
    name = "Contacts"
    content_type = "text/vcard; charset=utf-8"
    extension = "vcf"
    conversion_errors = (contacts.ContactError, VCardError)

    def to_phone(self, ctx: Context, text: str, options: Options) -> etree._Element:
        data = E(None, A + "ApplicationData")
        plain = next((b for b in options.body if b.type == PLAIN), None)
        contacts.application_data(data, contacts.fields(text), version=float(ctx.version),
                                  truncation=plain.truncation if plain else None,
                                  date_hour=contacts.birthday_time(ctx.line.device_type, None))
        return data

    def from_phone(self, ctx: Context, stored: str | None, data: etree._Element | None, options: Options, *,
                   uid: str) -> str:
        ghosted = set(options.supported) if options.supported is not None else None
        return contacts.merge(stored, contacts.read_phone(data), uid=uid, ghosted=ghosted)
