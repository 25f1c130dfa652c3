"""Log records as text for people or as one JSON object per line for log shippers.

Request lines carry their fields as ``extra`` (user, device, command,
version, status, ms, client); the JSON format puts them at the top level.
"""

from __future__ import annotations

import json
import logging
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


def configure(level: str, fmt: str) -> None:
    if fmt not in FORMATS:
        raise SystemExit(f"log format {fmt!r} is not one of {', '.join(FORMATS)}")
    handler = logging.StreamHandler()
    if fmt == "json":
        handler.setFormatter(JSONFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # One line per upstream HTTP call is too much at INFO; failures are logged by the gateway.
    logging.getLogger("httpx").setLevel(logging.WARNING)
