"""vCard content lines (RFC 6350 3.3, RFC 2426 for 3.0), kept exactly as they came.

Why not vobject: a phone edits a few fields of a contact and the rest of the
card must stay as it was (X- properties, a third work number, several URLs,
the order of lines). vobject re-serialises every line it read (sorted by name)
and drops a vCard 4 ``PHOTO:data:image/jpeg;base64,...`` (it splits the value at
the comma) — tests/items/test_vcard.py holds that case. So the card is kept as
a list of lines: the ones the gateway does not change are written back byte for
byte; only the ones it sets are made anew.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_NAME = re.compile(r"^(?:([A-Za-z0-9-]+)\.)?([A-Za-z0-9-]+)")


class VCardError(ValueError):
    """Not a vCard the gateway can read."""


@dataclass
class Line:
    name: str  # upper case
    params: list[tuple[str, str]] = field(default_factory=list)  # (NAME upper, value as written)
    value: str = ""  # as written: escaped, components separated by ';'
    group: str | None = None
    raw: str | None = None  # the unfolded original line; None once changed

    def param(self, name: str) -> list[str]:
        """Every value of a parameter, comma lists split, unquoted."""
        out = []
        for key, value in self.params:
            if key == name:
                out += [v.strip().strip('"') for v in value.split(",") if v.strip()]
        return out

    @property
    def types(self) -> set[str]:
        """TYPE values, lower case (vCard 3 also allows bare parameters: TEL;HOME;VOICE)."""
        found = {t.lower() for t in self.param("TYPE")}
        found |= {k.lower() for k, v in self.params if v == "" and k not in ("ENCODING", "VALUE")}
        return found

    @property
    def text(self) -> str:
        """The value unescaped, as one text."""
        return unescape(self.value)

    @property
    def parts(self) -> list[str]:
        """Structured value components (N, ADR, ORG), unescaped."""
        return [unescape(p) for p in split(self.value, ";")]

    def render(self) -> str:
        if self.raw is not None:
            return self.raw
        head = (self.group + "." if self.group else "") + self.name
        for key, value in self.params:
            head += f";{key}={value}" if value != "" else f";{key}"
        return f"{head}:{self.value}"


@dataclass
class Card:
    lines: list[Line]

    @property
    def version(self) -> str:
        found = self.first("VERSION")
        return found.text.strip() if found else "3.0"

    def all(self, name: str) -> list[Line]:
        return [line for line in self.lines if line.name == name]

    def first(self, name: str) -> Line | None:
        return next((line for line in self.lines if line.name == name), None)

    def remove(self, line: Line) -> None:
        self.lines = [x for x in self.lines if x is not line]

    def add(self, line: Line) -> None:
        """A new line, before END:VCARD."""
        end = max((i for i, x in enumerate(self.lines) if x.name == "END"), default=len(self.lines))
        self.lines.insert(end, line)

    def serialize(self) -> str:
        return "".join(fold(line.render()) for line in self.lines)


def parse(text: str) -> Card:
    """The first vCard in ``text``."""
    lines: list[Line] = []
    inside = False
    for raw in unfold(text):
        if not raw.strip():
            continue
        line = _line(raw)
        if line.name == "BEGIN" and line.text.upper() == "VCARD":
            inside = True
            lines = [line]
            continue
        if not inside:
            continue
        lines.append(line)
        if line.name == "END" and line.text.upper() == "VCARD":
            return Card(lines)
    raise VCardError("no BEGIN:VCARD ... END:VCARD in the data")


def new(version: str = "3.0") -> Card:
    return Card([Line("BEGIN", value="VCARD"), Line("VERSION", value=version), Line("END", value="VCARD")])


def unfold(text: str) -> list[str]:
    """Logical lines: CRLF or LF, continuation lines start with a space or a tab."""
    out: list[str] = []
    for physical in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        if physical[:1] in (" ", "\t") and out:
            out[-1] += physical[1:]
        else:
            out.append(physical)
    return out


def fold(line: str, limit: int = 75) -> str:
    """One content line folded at ``limit`` octets (RFC 6350 3.2), without splitting a character."""
    out, current, size = [], "", 0
    for ch in line:
        width = len(ch.encode())
        if size + width > limit:
            out.append(current)
            current, size = " ", 1
        current += ch
        size += width
    out.append(current)
    return "\r\n".join(out) + "\r\n"


def _line(raw: str) -> Line:
    match = _NAME.match(raw)
    if not match:
        raise VCardError(f"not a content line: {raw[:80]!r}")
    group, name = match.group(1), match.group(2).upper()
    rest = raw[match.end():]
    params: list[tuple[str, str]] = []
    position = 0
    while position < len(rest) and rest[position] == ";":
        position += 1
        start = position
        quoted = False
        while position < len(rest) and (quoted or rest[position] not in ";:"):
            if rest[position] == '"':
                quoted = not quoted
            position += 1
        key, _, value = rest[start:position].partition("=")
        params.append((key.strip().upper(), value))
    if position >= len(rest) or rest[position] != ":":
        raise VCardError(f"content line without a value: {raw[:80]!r}")
    return Line(name, params, rest[position + 1:], group, raw)


def split(value: str, separator: str) -> list[str]:
    """Split at separators that are not backslash-escaped (escapes are kept)."""
    out, current, escaped = [], "", False
    for ch in value:
        if escaped:
            current += "\\" + ch
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == separator:
            out.append(current)
            current = ""
        else:
            current += ch
    out.append(current + ("\\" if escaped else ""))
    return out


def unescape(value: str) -> str:
    out, escaped = [], False
    for ch in value:
        if escaped:
            out.append("\n" if ch in "nN" else ch)
            escaped = False
        elif ch == "\\":
            escaped = True
        else:
            out.append(ch)
    return "".join(out)


def escape(text: str) -> str:
    """Text value escaping (RFC 6350 3.4): backslash, comma, semicolon, newline."""
    return (text.replace("\\", "\\\\").replace(",", "\\,").replace(";", "\\;")
            .replace("\r\n", "\n").replace("\n", "\\n"))


def structured(parts: list[str]) -> str:
    return ";".join(escape(p) for p in parts)
