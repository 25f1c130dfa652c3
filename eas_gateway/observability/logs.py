"""Log records as text for people or as one JSON object per line for log shippers.

Request lines carry their fields as ``extra`` (user, device, command,
version, status, ms, client); the JSON format puts them at the top level.
"""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime

FIELDS = ("user", "device", "command", "version", "status", "ms", "client")
FORMATS = ("text", "json")


class JSONFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update({name: getattr(record, name) for name in FIELDS if hasattr(record, name)})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


_CONTROL = re.compile(r"[\x00-\x1f\x7f\u0085\u2028\u2029]")


def escape(text: str) -> str:
    """Control characters (newlines above all) as escapes: text a client chose — a user
    name, a DeviceId, an exception's message — can never start a log line of its own."""
    return _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode(), text)


class TextFormatter(logging.Formatter):
    """One line per record, whatever the message holds; a traceback's lines are indented
    so that none of them looks like a record."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = escape(record.message)
        return super().formatMessage(record)

    def formatException(self, ei: object) -> str:
        text = super().formatException(ei)  # type: ignore[arg-type]
        return "\n".join("    " + escape(line) for line in text.splitlines())


def configure(level: str, fmt: str) -> None:
    if fmt not in FORMATS:
        raise SystemExit(f"log format {fmt!r} is not one of {', '.join(FORMATS)}")
    handler = logging.StreamHandler()
    if fmt == "json":
        handler.setFormatter(JSONFormatter())
    else:
        handler.setFormatter(TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # One line per upstream HTTP call is too much at INFO; failures are logged by the gateway.
    logging.getLogger("httpx").setLevel(logging.WARNING)
