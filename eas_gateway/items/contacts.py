"""Contacts (MS-ASCNTC, code pages Contacts and Contacts2) <-> vCard 3.0/4.0 (RFC 6350).

Pure: no I/O. ``fields`` reads a card into EAS field values; ``application_data``
writes them for a phone; ``read_phone`` reads what a phone sent; ``merge`` puts
the phone's fields into the stored card and leaves every other line as it was
(a third work number, a second mobile, X- properties, several URLs, IMPP beyond
three: EAS cannot hold them, so the phone never sees them and must not erase
them). Where a field sits in the card:

- slots: a property's lines are sorted into categories by TYPE (TEL: home,
  work, cell, fax, ...; ADR: home, work, other); the first lines of a category
  fill its EAS fields in order (HomePhoneNumber, Home2PhoneNumber), later ones
  are left alone;
- vCard 4 has ANNIVERSARY and RELATED; for 3.0 (and as aliases read in both)
  the X- properties other clients write (Evolution, KAddressBook, Outlook,
  Apple): a value found under an alias is updated where it is.

Dates (Birthday, Anniversary): phones send a time of day with them (iOS, Gmail,
Samsung 00:00Z, older Android 08:00Z, BlackBerry 11:00Z; a phone east of UTC
its local midnight, e.g. 22:00Z the day before). The card keeps the date the
phone meant: the nearest midnight. Each phone gets the date back in the form
it shows as that date (``birthday_time``).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from email.utils import parseaddr

from lxml import etree

from eas_gateway.items import body, vcard
from eas_gateway.items.vcard import Card, Line
from eas_gateway.xml import E

C, C2, B = "{Contacts:}", "{Contacts2:}", "{AirSyncBase:}"
# MS-ASCNTC 2.2.2.58: the server limits Picture; 48 KB of base64 is what Exchange sends at most.
MAX_PICTURE = 48 * 1024


class ContactError(ValueError):
    """A phone's contact the gateway cannot store (another class's fields, bad values)."""


# -- where each field lives ------------------------------------------------


@dataclass(frozen=True)
class Slot:
    """The n-th line of a category of a property."""

    prop: str
    category: str
    index: int


def _tel_category(line: Line) -> str:
    t = line.types
    if "fax" in t:
        return "homefax" if "home" in t else "workfax"
    for name, aliases in (("cell", {"cell", "mobile", "iphone"}), ("car", {"car"}), ("pager", {"pager"}),
                          ("radio", {"x-radio", "x-evolution-radio"}),
                          ("assistant", {"x-assistant", "x-evolution-assistant"}),
                          ("company", {"x-company-main", "x-evolution-company", "main"}),
                          ("mms", {"x-mms", "msg"}), ("work", {"work"})):
        if t & aliases:
            return name
    return "home"


def _adr_category(line: Line) -> str:
    t = line.types
    return "home" if "home" in t else "work" if "work" in t else "other"


CATEGORIZE: dict[str, Callable[[Line], str]] = {
    "TEL": _tel_category, "ADR": _adr_category, "EMAIL": lambda _: "", "IMPP": lambda _: "", "URL": lambda _: ""}
# TYPE parameters of lines the gateway makes, by (property, category).
NEW_TYPES = {("TEL", "home"): "HOME,VOICE", ("TEL", "work"): "WORK,VOICE", ("TEL", "cell"): "CELL",
             ("TEL", "car"): "CAR", ("TEL", "pager"): "PAGER", ("TEL", "radio"): "X-RADIO",
             ("TEL", "assistant"): "X-ASSISTANT", ("TEL", "company"): "X-COMPANY-MAIN", ("TEL", "mms"): "X-MMS",
             ("TEL", "homefax"): "HOME,FAX", ("TEL", "workfax"): "WORK,FAX", ("ADR", "home"): "HOME",
             ("ADR", "work"): "WORK", ("ADR", "other"): "OTHER", ("EMAIL", ""): "INTERNET"}

PHONES = {
    "HomePhoneNumber": Slot("TEL", "home", 0), "Home2PhoneNumber": Slot("TEL", "home", 1),
    "BusinessPhoneNumber": Slot("TEL", "work", 0), "Business2PhoneNumber": Slot("TEL", "work", 1),
    "MobilePhoneNumber": Slot("TEL", "cell", 0), "CarPhoneNumber": Slot("TEL", "car", 0),
    "PagerNumber": Slot("TEL", "pager", 0), "RadioPhoneNumber": Slot("TEL", "radio", 0),
    "AssistantPhoneNumber": Slot("TEL", "assistant", 0), "HomeFaxNumber": Slot("TEL", "homefax", 0),
    "BusinessFaxNumber": Slot("TEL", "workfax", 0), "CompanyMainPhone": Slot("TEL", "company", 0),
    "MMS": Slot("TEL", "mms", 0),
}
EMAILS = {f"Email{n}Address": Slot("EMAIL", "", n - 1) for n in (1, 2, 3)}
IMS = {"IMAddress": Slot("IMPP", "", 0), "IMAddress2": Slot("IMPP", "", 1), "IMAddress3": Slot("IMPP", "", 2)}
WEB = {"WebPage": Slot("URL", "", 0)}
SLOTS: dict[str, Slot] = {**PHONES, **EMAILS, **IMS, **WEB}
# Address fields: (category, ADR component index) - ADR is pobox;ext;street;locality;region;code;country.
ADDRESS_PARTS = {"Street": 2, "City": 3, "State": 4, "PostalCode": 5, "Country": 6}
ADDRESSES = {f"{prefix}Address{part}": (category, index)
             for prefix, category in (("Home", "home"), ("Business", "work"), ("Other", "other"))
             for part, index in ADDRESS_PARTS.items()}
# Structured-value components: N is family;given;additional;prefix;suffix, ORG name;unit.
COMPONENTS = {"LastName": ("N", 0), "FirstName": ("N", 1), "MiddleName": ("N", 2), "Title": ("N", 3),
              "Suffix": ("N", 4), "CompanyName": ("ORG", 0), "Department": ("ORG", 1)}
# Single text properties: field -> (property written for a new value, properties read in this
# order; a value found under one of them is updated where it is).
TEXTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "FileAs": ("FN", ("X-EVOLUTION-FILE-AS", "X-FILE-AS", "FN")),
    "JobTitle": ("TITLE", ("TITLE", "ROLE")),  # Evolution writes the job title as ROLE
    "NickName": ("NICKNAME", ("NICKNAME",)),
    "OfficeLocation": ("X-OFFICE-LOCATION", ("X-OFFICE-LOCATION", "X-EVOLUTION-OFFICE", "X-KADDRESSBOOK-X-OFFICE")),
    "AssistantName": ("X-ASSISTANT", ("X-ASSISTANT", "X-EVOLUTION-ASSISTANT", "X-MS-ASSISTANT",
                                      "X-KADDRESSBOOK-X-ASSISTANTSNAME")),
    "ManagerName": ("X-MANAGER", ("X-MANAGER", "X-EVOLUTION-MANAGER", "X-MS-MANAGER", "X-KADDRESSBOOK-X-MANAGERSNAME")),
    "Spouse": ("X-SPOUSE", ("X-SPOUSE", "X-EVOLUTION-SPOUSE", "X-MS-SPOUSE", "X-KADDRESSBOOK-X-SPOUSENAME")),
    "YomiFirstName": ("X-PHONETIC-FIRST-NAME", ("X-PHONETIC-FIRST-NAME",)),
    "YomiLastName": ("X-PHONETIC-LAST-NAME", ("X-PHONETIC-LAST-NAME",)),
    "YomiCompanyName": ("X-PHONETIC-ORG", ("X-PHONETIC-ORG",)),
    # Contacts2 fields no vCard property holds; kept so that nothing a phone sets is lost.
    "CustomerId": ("X-CUSTOMER-ID", ("X-CUSTOMER-ID",)),
    "GovernmentId": ("X-GOVERNMENT-ID", ("X-GOVERNMENT-ID",)),
    "AccountName": ("X-ACCOUNT-NAME", ("X-ACCOUNT-NAME",)),
}
DATES: dict[str, tuple[str, tuple[str, ...]]] = {
    "Birthday": ("BDAY", ("BDAY",)),
    "Anniversary": ("X-ANNIVERSARY", ("ANNIVERSARY", "X-ANNIVERSARY", "X-EVOLUTION-ANNIVERSARY", "X-MS-ANNIVERSARY",
                                      "X-KADDRESSBOOK-X-ANNIVERSARY")),
}
# Field -> its namespace (everything else is Contacts).
CONTACTS2 = {"IMAddress", "IMAddress2", "IMAddress3", "ManagerName", "CompanyMainPhone", "NickName", "MMS",
             "CustomerId", "GovernmentId", "AccountName"}
# Every field the phone may send, in the order MS-ASCNTC lists them; Body, Picture,
# Categories and Children are handled on their own.
SIMPLE_FIELDS = [*COMPONENTS, *TEXTS, *DATES, *SLOTS, *ADDRESSES]
LIST_FIELDS = {"Categories": "Category", "Children": "Child"}
# Alias and WeightedRank are the server's to say (WeightedRank: MS-ASCNTC 2.2.2.64, only in recipient
# information cache answers): accepted from a phone, not stored.
KNOWN = set(SIMPLE_FIELDS) | set(LIST_FIELDS) | {"Picture", "Body", "Alias", "WeightedRank"}


def _slot_lines(card: Card, prop: str, category: str) -> list[Line]:
    sort = CATEGORIZE[prop]
    return [line for line in card.all(prop) if sort(line) == category]


def _alias_line(card: Card, names: tuple[str, ...]) -> Line | None:
    for name in names:
        found = card.first(name)
        if found is not None:
            return found
    return None


def _vcard4_name(field_name: str, card: Card) -> str:
    # vCard 4 has ANNIVERSARY (RFC 6350 6.2.6); 3.0 has not.
    if field_name == "Anniversary" and card.version.startswith("4"):
        return "ANNIVERSARY"
    return DATES[field_name][0] if field_name in DATES else TEXTS[field_name][0]


# -- reading a card ------------------------------------------------------------


@dataclass
class Contact:
    """A contact as EAS fields: text values, lists, the picture (base64), the note."""

    values: dict[str, str]
    lists: dict[str, list[str]]
    picture: str | None
    body: str | None


def fields(text: str) -> Contact:
    return card_fields(vcard.parse(text))


def card_fields(card: Card) -> Contact:
    """The EAS fields of a parsed card (who has the card already parses it once only)."""
    values: dict[str, str] = {}
    for name, (prop, index) in COMPONENTS.items():
        line = card.first(prop)
        parts = line.parts if line else []
        if index < len(parts) and parts[index].strip():
            values[name] = parts[index]
    for name, (_, order) in TEXTS.items():
        line = _alias_line(card, order)
        if line and line.text.strip():
            values[name] = line.text
    for name, (_, order) in DATES.items():
        line = _alias_line(card, order)
        day = _date(line.text) if line else None
        if day is not None:
            values[name] = day.isoformat()
    for name, slot in SLOTS.items():
        lines = _slot_lines(card, slot.prop, slot.category)
        if slot.index < len(lines) and lines[slot.index].text.strip():
            value = lines[slot.index].text.strip()
            if slot.prop == "TEL" and value.lower().startswith("tel:"):
                value = value[4:]
            values[name] = value
    for name, (category, index) in ADDRESSES.items():
        lines = _slot_lines(card, "ADR", category)
        parts = lines[0].parts if lines else []
        if index < len(parts) and parts[index].strip():
            values[name] = parts[index]
    categories = [c for line in card.all("CATEGORIES") for c in (vcard.unescape(v).strip()
                                                                 for v in vcard.split(line.value, ",")) if c]
    children = [line.text for line in card.all("RELATED") if "child" in line.types and line.text.strip()]
    children += [line.text for line in card.all("X-CHILD") if line.text.strip()]
    note = card.first("NOTE")
    return Contact(values, {"Categories": categories, "Children": children}, inline_base64(card.first("PHOTO")),
                   note.text if note and note.text else None)


def inline_base64(line: Line | None) -> str | None:
    """The bytes a PHOTO or KEY line holds (vCard 3 ENCODING=b, vCard 4 a data: URI) as
    base64; None for a URL or something unreadable."""
    if line is None:
        return None
    value = line.value.strip()
    if value.startswith("data:"):
        head, _, payload = value.partition(",")
        if ";base64" not in head:
            return None
        value = payload
    elif not ({"b", "base64"} & {e.lower() for e in line.param("ENCODING")}):
        return None  # a URL: nothing to show
    try:
        return base64.b64encode(base64.b64decode(value.replace(" ", ""), validate=False)).decode()
    except (binascii.Error, ValueError):
        return None


def _date(text: str) -> date | None:
    """A vCard date: 19800102, 1980-01-02, --0102 (no year: not for EAS), with or without a time."""
    digits = text.strip().split("T")[0].replace("-", "")
    if len(digits) == 8 and digits.isascii() and digits.isdigit():
        try:
            return date(int(digits[:4]), int(digits[4:6]), int(digits[6:]))
        except ValueError:
            return None
    return None


# -- to the phone ----------------------------------------------------------------

# The time of day each phone shows as the date it stands for (quirks seen by other
# servers; the phone names itself in DeviceType / User-Agent).
BIRTHDAY_TIMES: tuple[tuple[tuple[str, ...], int], ...] = (
    (("blackberry", "rim"), 11),
    (("android/2", "android/3", "android/4"), 8),  # older AOSP Exchange
)


def birthday_time(device_type: str, user_agent: str | None) -> int:
    """The hour (UTC) at which this phone wants a date (Birthday, Anniversary)."""
    who = f"{device_type} {user_agent or ''}".lower()
    for names, hour in BIRTHDAY_TIMES:
        if any(name in who for name in names):
            return hour
    return 0


def application_data(parent: etree._Element, contact: Contact, *, version: float, truncation: int | None,
                     date_hour: int = 0) -> None:
    """The contact's fields under ``parent`` (an ApplicationData element)."""
    for name in SIMPLE_FIELDS:
        value = contact.values.get(name)
        if value is None:
            continue
        if name in DATES:
            value = f"{value}T{date_hour:02d}:00:00.000Z"
        E(parent, (C2 if name in CONTACTS2 else C) + name, value)
    for name, child in LIST_FIELDS.items():
        if contact.lists.get(name):
            holder = E(parent, C + name)
            for value in contact.lists[name]:
                E(holder, C + child, value)
    if contact.picture and len(contact.picture) <= MAX_PICTURE:
        E(parent, C + "Picture", contact.picture)
    if version >= 12.0:
        body.plain(parent, contact.body or "", truncation)
    elif contact.body:
        E(parent, C + "Body", contact.body)


# -- from the phone ------------------------------------------------------------


@dataclass
class PhoneContact:
    """What a phone sent: a value per field it named (None: it sent the field empty)."""

    values: dict[str, str | None]
    lists: dict[str, list[str]]
    picture: str | None  # base64; "" when the phone sent an empty Picture
    body: str | None  # None: no Body element


def read_phone(data: etree._Element | None) -> PhoneContact:
    """The fields of a phone's ApplicationData. ContactError for fields of another class."""
    if data is None:
        raise ContactError("no ApplicationData")
    out = PhoneContact({}, {}, None, None)
    for element in data:
        q = etree.QName(element)
        name = q.localname
        if q.namespace == "AirSyncBase:" and name == "Body":
            out.body = element.findtext(B + "Data") or ""
            continue
        if q.namespace not in ("Contacts:", "Contacts2:") or name not in KNOWN:
            raise ContactError(f"{{{q.namespace}}}{name} is no contact field")
        text = (element.text or "").strip()
        if name in LIST_FIELDS:
            out.lists[name] = [(c.text or "").strip() for c in element if (c.text or "").strip()]
        elif name == "Picture":
            out.picture = re.sub(r"\s+", "", text)
            if out.picture:
                try:
                    base64.b64decode(out.picture, validate=True)
                except binascii.Error as exc:
                    raise ContactError("Picture is not base64") from exc
        elif name == "Body":  # EAS 2.5's own Body
            out.body = element.text or ""
        elif name in DATES:
            out.values[name] = _phone_date(text).isoformat() if text else None
        elif name in SIMPLE_FIELDS:
            if name in EMAILS and text:
                text = (parseaddr(text)[1] or text).strip()  # iOS sends "Name" <address>
            out.values[name] = text or None
    return out


def _phone_date(text: str) -> date:
    """The date a phone meant: the nearest midnight of the UTC time it sent."""
    try:
        moment = datetime.strptime(text.rstrip("Z")[:19], "%Y-%m-%dT%H:%M:%S")
    except ValueError:
        try:
            return date.fromisoformat(text[:10])
        except ValueError as exc:
            raise ContactError(f"{text!r} is not a date") from exc
    return (moment + timedelta(hours=12)).date()


# -- into the card ---------------------------------------------------------------


def merge(stored: str | None, phone: PhoneContact, *, uid: str, ghosted: set[str] | None = None) -> str:
    """The card with the phone's fields put in. ``stored``: the card as it is upstream
    (None for a new contact). ``ghosted``: the fields the phone declared it supports
    (Sync Supported, MS-ASCMD 2.2.3.168): one of them it left out is cleared; any
    other field it left out is kept."""
    card = vcard.parse(stored) if stored else vcard.new("3.0")
    if not stored:
        card.add(Line("UID", value=vcard.escape(uid)))
    sent = dict(phone.values)
    for name in ghosted or ():
        if name in SIMPLE_FIELDS and name not in sent:
            sent[name] = None
    components: dict[str, dict[int, str | None]] = {}
    for name, value in sent.items():
        if name in COMPONENTS:
            prop, index = COMPONENTS[name]
            components.setdefault(prop, {})[index] = value
        elif name in TEXTS or name in DATES:
            _set_single(card, name, value)
        elif name in SLOTS:
            _set_slot(card, SLOTS[name], value)
    addresses: dict[str, dict[int, str | None]] = {}
    for name, value in sent.items():
        if name in ADDRESSES:
            category, index = ADDRESSES[name]
            addresses.setdefault(category, {})[index] = value
    for prop, parts in components.items():
        _set_components(card, prop, parts, 5 if prop == "N" else 2)
    if "N" in components and "FileAs" not in sent and card.first("FN") is not None:
        card.remove(card.first("FN"))  # type: ignore[arg-type]  # made again from the new name below
    for category, parts in addresses.items():
        _set_address(card, category, parts)
    lists = dict(phone.lists)
    for name in LIST_FIELDS:
        if ghosted and name in ghosted and name not in lists:
            lists[name] = []
    if "Categories" in lists:
        for line in card.all("CATEGORIES"):
            card.remove(line)
        if lists["Categories"]:
            card.add(Line("CATEGORIES", value=",".join(vcard.escape(c) for c in lists["Categories"])))
    if "Children" in lists:
        for line in card.all("RELATED"):
            if "child" in line.types:
                card.remove(line)
        for line in card.all("X-CHILD"):
            card.remove(line)
        for child in lists["Children"]:
            card.add(Line("RELATED", [("TYPE", "child"), ("VALUE", "text")], vcard.escape(child)))
    # An empty Picture leaves the picture (iOS sends one on every edit of a contact whose
    # picture it did not make); a Supported Picture the phone left out clears it.
    if phone.picture or (ghosted and "Picture" in ghosted and phone.picture is None):
        for line in card.all("PHOTO"):
            card.remove(line)
        if phone.picture:
            if card.version.startswith("4"):
                card.add(Line("PHOTO", value="data:image/jpeg;base64," + phone.picture))
            else:
                card.add(Line("PHOTO", [("ENCODING", "b"), ("TYPE", "JPEG")], phone.picture))
    if phone.body is not None or (ghosted and "Body" in ghosted):
        _set_line(card, "NOTE", card.first("NOTE"), vcard.escape(phone.body.replace("\r\n", "\n"))
                  if phone.body else None)
    _ensure_names(card)
    return card.serialize()


def _set_line(card: Card, prop: str, line: Line | None, value: str | None,
              params: list[tuple[str, str]] | None = None) -> None:
    if value is None or value == "":
        if line is not None:
            card.remove(line)
        return
    if line is not None:
        line.value, line.raw = value, None
        line.params = [(k, v) for k, v in line.params if k != "ENCODING"]
    else:
        card.add(Line(prop, params or [], value))


def _set_single(card: Card, name: str, value: str | None) -> None:
    _, order = DATES[name] if name in DATES else TEXTS[name]
    line = _alias_line(card, order)
    if name in DATES and value is not None:
        value = value.replace("-", "") if line is None or "-" not in line.value else value
        if line is not None:
            line.params = [(k, v) for k, v in line.params if k != "VALUE"]
        _set_line(card, _vcard4_name(name, card), line, value)
        return
    _set_line(card, _vcard4_name(name, card), line, vcard.escape(value) if value else None)


def _set_slot(card: Card, slot: Slot, value: str | None) -> None:
    lines = _slot_lines(card, slot.prop, slot.category)
    line = lines[slot.index] if slot.index < len(lines) else None
    if line is not None and value and line.value.lower().startswith("tel:"):
        value = "tel:" + value
    types = NEW_TYPES.get((slot.prop, slot.category))
    escaped = vcard.escape(value) if value and slot.prop not in ("URL", "IMPP") else value
    _set_line(card, slot.prop, line, escaped, [("TYPE", types)] if types else None)


def _set_components(card: Card, prop: str, parts: dict[int, str | None], size: int) -> None:
    line = card.first(prop)
    current = line.parts if line else []
    current += [""] * (size - len(current))
    for index, value in parts.items():
        current[index] = value or ""
    _set_line(card, prop, line, vcard.structured(current) if any(current) else None)


def _set_address(card: Card, category: str, parts: dict[int, str | None]) -> None:
    lines = _slot_lines(card, "ADR", category)
    line = lines[0] if lines else None
    current = line.parts if line else []
    current += [""] * (7 - len(current))
    for index, value in parts.items():
        current[index] = value or ""
    _set_line(card, "ADR", line, vcard.structured(current) if any(current) else None,
              [("TYPE", NEW_TYPES[("ADR", category)])])


def _ensure_names(card: Card) -> None:
    """vCard 3.0 requires N and FN; FN is made from the name (or company, or an address)."""
    if card.first("FN") is None:
        n = card.first("N")
        parts = n.parts if n else []
        name = " ".join(p for p in (parts[3:4] + parts[1:2] + parts[2:3] + parts[0:1] + parts[4:5]) if p.strip())
        if not name:
            org, email = card.first("ORG"), card.first("EMAIL")
            name = (org.parts[0] if org else "") or (email.text if email else "")
        card.add(Line("FN", value=vcard.escape(name)))
    if card.first("N") is None and card.version.startswith("3"):
        card.add(Line("N", value=";;;;"))
