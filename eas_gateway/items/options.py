"""Sync and ItemOperations Options (MS-ASCMD 2.2.3.125, MS-ASAIRS 2.2.2.7).

Parsed into plain data so that they can be kept per collection (phones send
them once) as JSON.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from lxml import etree

from eas_gateway.xml import child_text
from usm import ids

A = "{AirSync:}"
B = "{AirSyncBase:}"

# MS-ASCMD 2.2.3.70.2 FilterType: how far back mail goes (days); 0 is everything.
FILTER_DAYS = {0: None, 1: 1, 2: 3, 3: 7, 4: 14, 5: 30, 6: 90, 7: 180}
# MS-ASCMD 2.2.3.114 MIMETruncation (12.x): bytes of MIME to send.
MIME_TRUNCATION = {0: 0, 1: 4096, 2: 5120, 3: 7168, 4: 10240, 5: 20480, 6: 51200, 7: 102400, 8: None}

PLAIN, HTML, RTF, MIME = 1, 2, 3, 4


class OptionsError(ValueError):
    """Options the specification does not allow (Sync Status 4 / ItemOperations Status 2)."""


@dataclass(frozen=True)
class BodyPreference:
    type: int
    truncation: int | None = None
    all_or_none: bool = False
    preview: int = 0


@dataclass(frozen=True)
class Options:
    filter_type: int = 0
    body: list[BodyPreference] = field(default_factory=list)
    mime_support: int = 0  # 0 never, 1 S/MIME only, 2 always
    mime_truncation: int | None = None
    conflict: int | None = None
    # The fields the phone declared in Sync Supported (MS-ASCMD 2.2.3.168, contacts and
    # calendar): one it leaves out of a Change is cleared; None: it declared none.
    supported: list[str] | None = None

    def since(self, now: datetime | None = None) -> datetime | None:
        days = FILTER_DAYS.get(self.filter_type)
        if days is None:
            return None
        return (now or datetime.now(UTC)) - timedelta(days=days)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Options:
        if not data:
            return cls()
        return cls(filter_type=data.get("filter_type", 0),
                   body=[BodyPreference(**b) for b in data.get("body", [])],
                   mime_support=data.get("mime_support", 0), mime_truncation=data.get("mime_truncation"),
                   conflict=data.get("conflict"), supported=data.get("supported"))

    def chosen_body(self) -> BodyPreference:
        """The representation to send (MS-ASAIRS 3.2.5.1.1): MIME when asked for
        with MIMESupport, else HTML, else plain text (also for RTF, which the
        gateway does not produce)."""
        by_type = {b.type: b for b in self.body}
        if MIME in by_type and self.mime_support == 2:
            return by_type[MIME]
        for wanted in (HTML, PLAIN):
            if wanted in by_type:
                return by_type[wanted]
        if MIME in by_type and self.mime_support == 0 and len(by_type) == 1:
            return by_type[MIME]  # MIME alone is asked for; sending it is the only answer
        if not self.body and self.mime_support == 2:
            return BodyPreference(MIME, self.mime_truncation)
        return BodyPreference(PLAIN, self.body[0].truncation if self.body else None)

    def preview(self) -> int:
        return max((b.preview for b in self.body), default=0)


def _int(el: etree._Element, tag: str, low: int, high: int) -> int | None:
    text = child_text(el, tag)
    if text is None:
        return None
    value = ids.number(text, digits=10)
    if value is None or not low <= value <= high:
        raise OptionsError(f"{etree.QName(tag).localname} {text!r} is not in {low}..{high}")
    return value


def parse(elements: list[etree._Element], *, item_class: str = "Email",
          previous: Options | None = None) -> Options:
    """Options from the request's Options elements (only those for ``item_class``:
    an Options block without Class, or with that Class). None given: ``previous``."""
    mine = [el for el in elements if child_text(el, A + "Class") in (None, item_class)]
    if not mine:
        return previous or Options()
    el = mine[0]
    body = []
    for pref in el.iter(B + "BodyPreference"):
        body_type = _int(pref, B + "Type", 1, 4)
        if body_type is None:
            raise OptionsError("BodyPreference without Type")
        truncation = _int(pref, B + "TruncationSize", 0, 2**32 - 1)
        all_or_none = _int(pref, B + "AllOrNone", 0, 1) == 1
        preview = _int(pref, B + "Preview", 0, 255) or 0
        body.append(BodyPreference(body_type, truncation, all_or_none, preview))
    mime_truncation = _int(el, A + "MIMETruncation", 0, 8)
    return Options(
        supported=previous.supported if previous else None,
        filter_type=_int(el, A + "FilterType", 0, 8) or 0,
        body=body,
        mime_support=_int(el, A + "MIMESupport", 0, 2) or 0,
        mime_truncation=MIME_TRUNCATION[mime_truncation] if mime_truncation is not None else None,
        conflict=_int(el, A + "Conflict", 0, 1),
    )
