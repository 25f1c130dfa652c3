"""Search (MS-ASCMD 2.2.1.16). The GAL store: the directory (classes.directory) searched
for the Query, results sorted by display name, cut to the Range (default 0-99) with the
true Total, each with the GAL fields and, when asked (Picture, 14.1), the photo within
MaxSize and MaxPictures.

The Mailbox store: JMAP Email/query (text in any part of the message, needing the
upstream's search engine: scripts/cyrus-upstream.sh sets up Xapian) in a folder (with
its subfolders under DeepTraversal) or everywhere, received after or before a date,
newest first; each result the message as a Sync would show it, with its LongId (which
ItemOperations, SmartReply and SmartForward take) and its folder. Any other store is
Status 2 (MS-ASCMD 2.2.3.177.16 Search Status values); an upstream that refuses the
query (no search engine) is Status 3.
"""

from __future__ import annotations

import base64
import dataclasses
import logging
import re
from datetime import datetime

from lxml import etree

import wbxml
from eas_gateway.classes import directory, meetings
from eas_gateway.context import Context
from eas_gateway.errors import CommandStatus
from eas_gateway.items import email, fetch
from eas_gateway.items.options import OptionsError
from eas_gateway.items.options import parse as parse_options
from eas_gateway.xml import E, child_text, date_time
from usm import folders, hierarchy, ids
from usm.upstream import MailQuery, Message, UpstreamError, UpstreamUnavailable

log = logging.getLogger(__name__)

S, G, A = "{Search:}", "{GAL:}", "{AirSync:}"
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
        await _mailbox(ctx, store, answer)
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


async def _mailbox(ctx: Context, store: etree._Element, answer: etree._Element) -> None:
    options_el = store.find(S + "Options")
    wanted = parse_range(child_text(options_el, S + "Range") if options_el is not None else None)
    try:
        query = await mail_query(ctx, store.find(S + "Query"), deep=options_el is not None and
                                 options_el.find(S + "DeepTraversal") is not None)
        options = parse_options([options_el] if options_el is not None else [])
    except (BadQuery, OptionsError) as exc:
        log.info("Search: device %s, mailbox query: %s", ctx.line.device_id, exc)
        E(answer, S + "Status", INVALID)
        return
    if wanted is None:
        E(answer, S + "Status", INVALID)
        return
    first, _ = wanted
    page = await mail_page(ctx, query, wanted, "Search")
    if page is None:
        E(answer, S + "Status", SERVER_ERROR)
        return
    found, total = page
    messages, mime = await fetch.for_display(ctx.upstream.mailstore, ctx.credentials, found, options)
    invitations = await meetings.for_messages(ctx, options, list(messages.values()))
    collections = await collection_ids(ctx, messages)
    E(answer, S + "Status", OK)
    shown = [i for i in found if i in messages]
    if not shown:
        E(answer, S + "Result")
    for email_id in shown:
        message = messages[email_id]
        result = E(answer, S + "Result")
        E(result, A + "Class", "Email")
        E(result, S + "LongId", email.long_id(email_id))
        if email_id in collections:
            E(result, A + "CollectionId", collections[email_id])
        properties = E(result, S + "Properties")
        email.application_data(properties, message, options, float(ctx.version), mime.get(email_id),
                               invitations.get(email_id))
    if shown:
        E(answer, S + "Range", f"{first}-{first + len(shown) - 1}")
    E(answer, S + "Total", total)


async def mail_page(ctx: Context, query: MailQuery, wanted: tuple[int, int],
                    command: str) -> tuple[list[str], int] | None:
    """(ids of the Range's messages, the Total); None when the upstream refuses the query
    (no search engine): logged, and the caller answers its own Status."""
    first, last = wanted
    try:
        return await ctx.upstream.mailstore.search(
            ctx.credentials, dataclasses.replace(query, position=first, limit=last - first + 1))
    except UpstreamUnavailable:
        raise
    except UpstreamError as exc:
        log.warning("%s: the upstream refused a mailbox search of %s (is its search engine set up?): %s",
                    command, ctx.user, exc)
        return None


async def collection_ids(ctx: Context, messages: dict[str, Message]) -> dict[str, int]:
    """Email id -> the ServerId of its folder (the CollectionId a result names)."""
    folder_ids = sorted({f for m in messages.values() for f in m.folder_ids})
    if not folder_ids:
        return {}
    async with ctx.db.acquire() as conn:
        server_ids = await folders.server_ids(conn, ctx.user, folder_ids)
    return {i: server_ids[min(m.folder_ids)] for i, m in messages.items()
            if m.folder_ids and min(m.folder_ids) in server_ids}


class BadQuery(ValueError):
    """A query the gateway cannot run (Status 2)."""


async def mail_query(ctx: Context, element: etree._Element | None, *, deep: bool, ns: str = S) -> MailQuery:
    """The conditions of a mailbox Search Query (MS-ASCMD 2.2.3.139.2): And of Class,
    CollectionId, FreeText, GreaterThan/LessThan of DateReceived, ConversationId (the bytes
    of an Email2:ConversationId; not with FreeText) (``ns``: Find's Query has the same parts
    in its own namespace, without the And and the ConversationId)."""
    if element is None:
        raise BadQuery("no Query")
    conditions = element.find(S + "And")
    parts = list(conditions if conditions is not None else element)
    text, folder, after, before, conversation = None, None, None, None, None
    for part in parts:
        tag = part.tag
        if tag == A + "Class":
            if (part.text or "").strip() != "Email":
                raise BadQuery(f"Class {part.text!r}: the mailbox holds Email")
        elif tag == A + "CollectionId":
            folder = (part.text or "").strip()
        elif tag == S + "ConversationId":
            conversation = wbxml.element_bytes(part)
        elif tag == ns + "FreeText":
            text = (part.text or "").strip() or None
        elif tag in (S + "GreaterThan", S + "LessThan"):
            if part.find("{Email:}DateReceived") is None:
                raise BadQuery(f"{etree.QName(tag).localname} of something other than DateReceived")
            moment = _date(child_text(part, S + "Value"))
            if tag == S + "GreaterThan":
                after = moment
            else:
                before = moment
        else:
            raise BadQuery(f"{etree.QName(tag).localname} is no condition this gateway searches by")
    folder_ids = None
    if folder is not None:
        number = ids.number(folder)
        async with ctx.db.acquire() as conn:
            found = (await folders.upstream_ids(conn, ctx.user, [number])).get(number) if number is not None \
                else None
        if found is None or not found.startswith("jmap:"):
            raise BadQuery(f"CollectionId {folder!r} is no mail folder of the user")
        folder_ids = [found]
        if deep:
            folder_ids += [f.id for f in hierarchy.descendants(await ctx.upstream.mailstore.folders(ctx.credentials),
                                                                 found)]
    if text is None and after is None and before is None and folder_ids is None and conversation is None:
        raise BadQuery("a Query with no condition")
    if text is not None and conversation is not None:
        raise BadQuery("FreeText within one ConversationId: search the conversation, or the text")
    return MailQuery(text=text, folder_ids=folder_ids, after=after, before=before, conversation=conversation)


def _date(text: str | None) -> datetime:
    moment = date_time(text)
    if moment is None:
        raise BadQuery(f"{text!r} is no date-time")
    return moment
