"""Search (MS-ASCMD 2.2.1.16). The GAL store: the directory (classes.directory) searched
for the Query, results sorted by display name, cut to the Range (default 0-99) with the
true Total, each with the GAL fields and, when asked (Picture, 14.1), the photo within
MaxSize and MaxPictures.

The Mailbox store needs the upstream's text search (JMAP Email/query with text filters);
Debian's Cyrus has none configured, so a Mailbox search is answered with Store Status 3
and a log line until the gateway's own Cyrus set-up gives it one (issue 15). Any other
store is Status 2 (MS-ASCMD 2.2.3.177.16 Search Status values).
"""

from __future__ import annotations

import base64
import logging
import re

from lxml import etree

import wbxml
from eas_gateway.classes import directory
from eas_gateway.context import Context
from eas_gateway.errors import CommandStatus
from eas_gateway.xml import E, child_text
from usm import ids

log = logging.getLogger(__name__)

S, G = "{Search:}", "{GAL:}"
OK, INVALID, SERVER_ERROR = 1, 2, 3
INVALID_XML = 103
DEFAULT_RANGE = (0, 99)
MAX_RANGE = 1000
RANGE = re.compile(r"^(\d{1,6})-(\d{1,6})$")
# GAL Picture Status (MS-ASCMD 2.2.3.177.16): 1 included, 173 none, 174 too large, 175 too many.
PICTURE_OK, NO_PICTURE, PICTURE_TOO_LARGE, TOO_MANY_PICTURES = 1, 173, 174, 175


async def handle(ctx: Context, tree: etree._Element | None) -> etree._Element:
    if tree is None or tree.tag != S + "Search":
        raise CommandStatus(INVALID_XML, "Search request without a Search element")
    store = tree.find(S + "Store")
    if store is None:
        raise CommandStatus(INVALID_XML, "Search without a Store")
    root = E(None, S + "Search")
    E(root, S + "Status", OK)
    answer = E(E(root, S + "Response"), S + "Store")
    name = (child_text(store, S + "Name") or "").strip()
    if name.upper() == "GAL":
        await _gal(ctx, store, answer)
    elif name.lower() == "mailbox":
        log.warning("Search: device %s searched the mailbox; the upstream offers no text search yet",
                    ctx.line.device_id)
        E(answer, S + "Status", SERVER_ERROR)
    else:
        log.info("Search: device %s asked for the store %r", ctx.line.device_id, name)
        E(answer, S + "Status", INVALID)
    return root


def parse_range(text: str | None) -> tuple[int, int] | None:
    """A Range "first-last" (MS-ASCMD 2.2.3.142); None when malformed."""
    if text is None:
        return DEFAULT_RANGE
    match = RANGE.match(text.strip())
    if not match:
        return None
    first, last = int(match[1]), int(match[2])
    if first > last or last - first >= MAX_RANGE:
        return None
    return first, last


async def _gal(ctx: Context, store: etree._Element, answer: etree._Element) -> None:
    query = (child_text(store, S + "Query") or "").strip()
    options = store.find(S + "Options")
    wanted = parse_range(child_text(options, S + "Range") if options is not None else None)
    picture = options.find(S + "Picture") if options is not None else None
    if not query or wanted is None:
        log.info("Search: device %s, GAL query %r, Range %r", ctx.line.device_id, query,
                 child_text(options, S + "Range") if options is not None else None)
        E(answer, S + "Status", INVALID)
        return
    found = await directory.search(ctx, query)
    E(answer, S + "Status", OK)
    first, last = wanted
    page = found[first:last + 1]
    if not page:
        E(answer, S + "Result")
    else:
        max_size = ids.number(child_text(picture, S + "MaxSize")) if picture is not None else None
        max_pictures = ids.number(child_text(picture, S + "MaxPictures")) if picture is not None else None
        pictures = 0
        for entry in page:
            properties = E(E(answer, S + "Result"), S + "Properties")
            pictures += gal_properties(properties, entry, picture is not None, max_size, max_pictures, pictures)
        E(answer, S + "Range", f"{first}-{first + len(page) - 1}")
    E(answer, S + "Total", len(found))


def gal_properties(parent: etree._Element, entry: directory.Entry, with_picture: bool, max_size: int | None,
                   max_pictures: int | None, pictures_so_far: int, ns: str = G) -> int:
    """The GAL fields of an entry under ``parent``; 1 if a picture was included, else 0."""
    for name, value in (("DisplayName", entry.display_name), ("Phone", entry.phone), ("Office", entry.office),
                        ("Title", entry.title), ("Company", entry.company), ("Alias", entry.alias),
                        ("FirstName", entry.first_name), ("LastName", entry.last_name),
                        ("HomePhone", entry.home_phone), ("MobilePhone", entry.mobile_phone),
                        ("EmailAddress", entry.email)):
        if value:
            E(parent, ns + name, value)
    if not with_picture:
        return 0
    element = E(parent, ns + "Picture")
    if entry.picture is None:
        E(element, ns + "Status", NO_PICTURE)
        return 0
    if max_pictures is not None and pictures_so_far >= max_pictures:
        E(element, ns + "Status", TOO_MANY_PICTURES)
        return 0
    data = base64.b64decode(entry.picture)
    if max_size is not None and len(data) > max_size:
        E(element, ns + "Status", PICTURE_TOO_LARGE)
        return 0
    E(element, ns + "Status", PICTURE_OK)
    wbxml.set_opaque(E(element, ns + "Data"), data)  # a byte array (MS-ASCMD 2.2.3.39.1): OPAQUE
    return 1
