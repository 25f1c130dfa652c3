"""Find (MS-ASCMD 2.2.1.2, EAS 16.1; iOS sends it whenever the user searches the server):
the same engines as Search — the mailbox through JMAP Email/query, the directory through
CardDAV (classes.directory) — answered in Find's form. A mailbox result names the message
by a LongId as its ServerId, which ItemOperations Fetch takes.

Status (MS-ASCMD 2.2.3.177.5): 1 success, 2 a request the gateway cannot run (an unknown
criterion, a bad Range or query); an upstream that refuses the mailbox query (no search
engine) is Status 2 on the Response, with a log line that says why.
"""

from __future__ import annotations

import logging

from lxml import etree

from eas_gateway.classes import directory
from eas_gateway.commands.search import BadQuery, collection_ids, gal_properties, mail_page, mail_query, parse_range
from eas_gateway.context import Context
from eas_gateway.errors import CommandStatus
from eas_gateway.items import email
from eas_gateway.xml import E, child_text
from usm import ids
from usm.upstream import BodyRequest

log = logging.getLogger(__name__)

F, A, M, M2, G = "{Find:}", "{AirSync:}", "{Email:}", "{Email2:}", "{GAL:}"
OK, INVALID = 1, 2
PROTOCOL_ERROR = 2


async def handle(ctx: Context, tree: etree._Element | None) -> etree._Element:
    if tree is None or tree.tag != F + "Find":
        raise CommandStatus(PROTOCOL_ERROR, "Find request without a Find element")
    execute = tree.find(F + "ExecuteSearch")
    criterion = execute[0] if execute is not None and len(execute) else None
    root = E(None, F + "Find")
    if criterion is None or criterion.tag not in (F + "MailBoxSearchCriterion", F + "GalSearchCriterion"):
        log.info("Find: device %s sent no criterion the gateway knows", ctx.line.device_id)
        E(root, F + "Status", INVALID)
        return root
    E(root, F + "Status", OK)
    response = E(root, F + "Response")
    options = criterion.find(F + "Options")
    wanted = parse_range(child_text(options, F + "Range") if options is not None else None)
    if wanted is None:
        E(response, F + "Status", INVALID)
        return root
    if criterion.tag == F + "GalSearchCriterion":
        E(response, "{ItemOperations:}Store", "GAL")
        await _gal(ctx, criterion, options, wanted, response)
    else:
        E(response, "{ItemOperations:}Store", "Mailbox")
        await _mailbox(ctx, criterion, options, wanted, response)
    return root


async def _gal(ctx: Context, criterion: etree._Element, options: etree._Element | None, wanted: tuple[int, int],
               response: etree._Element) -> None:
    query = (child_text(criterion, F + "Query") or "").strip()
    if not query:
        E(response, F + "Status", INVALID)
        return
    found = await directory.search(ctx, query)
    picture = options.find(F + "Picture") if options is not None else None
    max_size = ids.number(child_text(picture, F + "MaxSize")) if picture is not None else None
    max_pictures = ids.number(child_text(picture, F + "MaxPictures")) if picture is not None else None
    E(response, F + "Status", OK)
    first, last = wanted
    page = found[first:last + 1]
    pictures = 0
    for entry in page:
        properties = E(E(response, F + "Result"), F + "Properties")
        pictures += gal_properties(properties, entry, picture is not None, max_size, max_pictures, pictures)
    if page:
        E(response, F + "Range", f"{first}-{first + len(page) - 1}")
    E(response, F + "Total", len(found))


async def _mailbox(ctx: Context, criterion: etree._Element, options: etree._Element | None,
                   wanted: tuple[int, int], response: etree._Element) -> None:
    first, _ = wanted
    try:
        query = await mail_query(ctx, criterion.find(F + "Query"), ns=F,
                                 deep=options is not None and options.find(F + "DeepTraversal") is not None)
    except BadQuery as exc:
        log.info("Find: device %s, mailbox query: %s", ctx.line.device_id, exc)
        E(response, F + "Status", INVALID)
        return
    page = await mail_page(ctx, query, wanted, "Find")
    if page is None:
        E(response, F + "Status", INVALID)
        return
    found, total = page
    messages = await ctx.upstream.mailstore.messages(ctx.credentials, found, BodyRequest(text=True, max_bytes=256))
    collections = await collection_ids(ctx, messages)
    E(response, F + "Status", OK)
    shown = [i for i in found if i in messages]
    for email_id in shown:
        message = messages[email_id]
        result = E(response, F + "Result")
        E(result, A + "Class", "Email")
        E(result, A + "ServerId", email.long_id(email_id))
        if email_id in collections:
            E(result, A + "CollectionId", collections[email_id])
        properties = E(result, F + "Properties")
        E(properties, M + "Subject", message.subject or "")
        E(properties, M + "DateReceived", email.eas_date(message.received_at))
        E(properties, M + "DisplayTo", email.display_names(message.to))
        if message.cc:
            E(properties, F + "DisplayCc", email.display_names(message.cc))
        E(properties, M + "Importance", email.IMPORTANCE.get(message.importance or "normal", 1))
        E(properties, M + "Read", 1 if email.SEEN in message.keywords else 0)
        E(properties, M2 + "IsDraft", 1 if "$draft" in message.keywords else 0)
        preview = email.preview_text(message, 255)
        if preview:
            E(properties, F + "Preview", preview)
        E(properties, F + "HasAttachments", 1 if message.attachments else 0)
        E(properties, M + "From", email.addresses_text(message.sender))
    if shown:
        E(response, F + "Range", f"{first}-{first + len(shown) - 1}")
    E(response, F + "Total", total)
