"""GetAttachment (MS-ASCMD 2.2.1.7, EAS 12.0-14.1; gone from 16.0, where ItemOperations
does it): the bytes of the attachment the AttachmentName query parameter names (the
FileReference the gateway gave out), as the HTTP body with the attachment's content
type. An unknown name is HTTP 400, an attachment gone upstream (or not the user's) 404:
the command has no Status element to carry either (MS-ASCMD 2.2.1.7.2)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from eas_gateway.classes import attachments
from eas_gateway.context import Context
from eas_gateway.errors import LegacyStatus
from usm.upstream import NotFound

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Download:
    """A command's answer that is no WBXML document: bytes of their own type."""

    content: bytes
    media_type: str


async def handle(ctx: Context, tree: Any) -> Download:
    name = ctx.line.params.get("AttachmentName") or ""
    if not name:
        raise LegacyStatus(400, "GetAttachment without AttachmentName")
    try:
        content, media_type = await attachments.read(ctx, name)
    except attachments.UnknownReference as exc:
        raise LegacyStatus(400, f"GetAttachment: {name!r} is no attachment of this gateway") from exc
    except NotFound as exc:
        raise LegacyStatus(404, f"GetAttachment: {name!r} is gone upstream: {exc}") from exc
    log.info("GetAttachment: device %s got %d bytes of %s", ctx.line.device_id, len(content), media_type)
    return Download(content, media_type or "application/octet-stream")
