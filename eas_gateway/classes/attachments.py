"""Attachments by reference, whatever item they belong to: what ItemOperations Fetch
(FileReference) and GetAttachment (AttachmentName, 12.0-14.1) download.

A reference is one the gateway gave out: a mail attachment's (items.email: the JMAP
blob, its type and name) or an event's (items.calendar_attachments: the object and the
ATTACH's place in it, read again with the user's credentials; inline bytes, or a URI on
the DAV server itself: the phone's reference never makes the gateway reach another host).
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from eas_gateway.items import calendar_attachments, email
from usm.upstream import AuthenticationFailed, NotFound, UpstreamError, UpstreamUnavailable

if TYPE_CHECKING:
    from eas_gateway.context import Context


class UnknownReference(ValueError):
    """A reference the gateway never gave out."""


async def read(ctx: Context, reference: str) -> tuple[bytes, str]:
    """(bytes, content type) of the attachment ``reference`` names; UnknownReference, or
    NotFound when it is gone (or not the user's)."""
    parsed = email.parse_file_reference(reference)
    if parsed is not None:
        blob_id, content_type, name = parsed
        return await ctx.upstream.mailstore.download(ctx.credentials, blob_id, type=content_type, name=name), \
            content_type
    event = calendar_attachments.parse_reference(reference)
    if event is None:
        raise UnknownReference(reference)
    return await _of_event(ctx, *event)


async def _of_event(ctx: Context, path: str, index: int) -> tuple[bytes, str]:
    dav = ctx.upstream.dav
    if dav is None:
        raise NotFound("no calendar upstream")
    try:
        found = await dav.get(ctx.credentials, path)
    except (UpstreamUnavailable, AuthenticationFailed):
        raise
    except UpstreamError as exc:  # 403, or a redirect elsewhere (Cyrus): not the user's to read
        raise NotFound(str(exc)) from exc
    attachment = calendar_attachments.find(found.data, index)
    if attachment is None:
        raise NotFound(f"{path} has no attachment {index}")
    if attachment.data is not None:
        return attachment.data, attachment.content_type
    uri = urlsplit(attachment.uri or "")
    own = urlsplit(getattr(dav, "base_url", ""))
    if uri.scheme not in ("http", "https") or (uri.scheme, uri.netloc) != (own.scheme, own.netloc):
        raise NotFound(f"the attachment is elsewhere ({uri.scheme}://{uri.netloc}): not fetched")
    return (await dav.get_bytes(ctx.credentials, uri.path)), attachment.content_type
