"""WBXML bytes -> lxml element tree.

Design: the tokens are translated into XML text (precomputed tag strings, the
content bytes copied through) and lxml's C parser builds the tree from it. A
Python loop does one cheap step per token; the tree itself, the UTF-8 decoding
and the text nodes are made in C. That is what makes this decoder faster than
codecs that build their nodes in Python.

The translation of the documents phones send (UTF-8, one string or opaque
block per element, no string table references) also exists in C
(wbxml/csrc/, ``translate``), which writes the same XML text or
declines (None); then the Python translator below runs, which is also where
every error is raised.

Grammar: WAP-192-WBXML (WBXML 1.3) section 5, restricted as MS-ASWBXML uses it.
Accepted: SWITCH_PAGE anywhere (also before END and after the root), STR_I,
STR_T with a string table, ENTITY, OPAQUE, empty elements, mixed content.
Rejected with an error: attributes, LITERAL*, EXT*, PI, unknown pages/tokens.
"""

from __future__ import annotations

import binascii
import re
from dataclasses import dataclass

from lxml import etree

from wbxml.codepages import TOKENS
from wbxml.errors import LimitExceededError, MalformedError, TruncatedError, UnknownTokenError, UnsupportedError
from wbxml.tokens import BINARY_TAGS, NAMESPACE_OF_PAGE, WBXML_NS, clark

# Global tokens, WAP-192-WBXML 7.1.
SWITCH_PAGE, END, ENTITY, STR_I, LITERAL = 0x00, 0x01, 0x02, 0x03, 0x04
EXT_I_0, EXT_I_1, EXT_I_2, PI, LITERAL_C = 0x40, 0x41, 0x42, 0x43, 0x44
EXT_T_0, EXT_T_1, EXT_T_2, STR_T, LITERAL_A = 0x80, 0x81, 0x82, 0x83, 0x84
EXT_0, EXT_1, EXT_2, OPAQUE, LITERAL_AC = 0xC0, 0xC1, 0xC2, 0xC3, 0xC4

# IANA MIBenum -> Python codec for the charsets a peer may declare. EAS always
# sends 0x6A (UTF-8); 0 means "unknown", which we read as UTF-8 too.
_CHARSETS = {106: None, 0: None, 3: "ascii", 4: "latin-1"}

# Bytes that cannot be copied into XML text as they are. Control characters
# and U+FFFE/U+FFFF are not XML characters at all (_not_xml); CR would be
# normalised away by the XML parser; & < > need escaping.
# One character class (searched at C speed): bytes that *may* need work. \xef
# starts U+F000-U+FFFF, which includes the two non-characters U+FFFE/U+FFFF.
_MAYBE_SPECIAL = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f&<>\r\xef]")
_CONTROLS = bytes([*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20)])


def _not_xml(text: bytes) -> bool:
    """True if ``text`` holds bytes that are no XML 1.0 character at all."""
    # bytes.translate and `in` run at C speed; a regex with an alternation would not.
    return len(text.translate(None, _CONTROLS)) != len(text) or b"\xef\xbf\xbe" in text or b"\xef\xbf\xbf" in text
_ESCAPES = ((b"&", b"&amp;"), (b"<", b"&lt;"), (b">", b"&gt;"), (b"\r", b"&#13;"))

_RAW_DECL = b' xmlns:wbxml="' + WBXML_NS.encode() + b'" wbxml:raw="'

_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=True, remove_blank_text=False)


@dataclass(frozen=True)
class Limits:
    """Decoding limits; each one exceeded raises LimitExceededError.

    The defaults fit every legitimate EAS document (a SendMail with a 25 MB
    attachment, a 5,000-folder FolderSync) and stop hostile ones early.
    """

    max_size: int = 64 * 1024 * 1024  # whole document, bytes
    max_depth: int = 64  # element nesting; real EAS documents stay below 15
    max_elements: int = 1_000_000  # elements in the document
    max_string: int = 48 * 1024 * 1024  # one string or opaque block, bytes


# Kind of each byte in tag position.
_TAG, _TAG_CONTENT, _ATTR = 1, 2, 3
_KIND = [0] * 256  # 0: a global token (WAP-192-WBXML 7.1)
for _b in range(256):
    if _b & 0x3F >= 5:
        _KIND[_b] = _ATTR if _b & 0x80 else (_TAG_CONTENT if _b & 0x40 else _TAG)

_UNSUPPORTED = {
    LITERAL: "LITERAL tag",
    LITERAL_C: "LITERAL_C tag",
    LITERAL_A: "LITERAL_A tag",
    LITERAL_AC: "LITERAL_AC tag",
    PI: "processing instruction",
    EXT_I_0: "extension token EXT_I_0",
    EXT_I_1: "extension token EXT_I_1",
    EXT_I_2: "extension token EXT_I_2",
    EXT_T_0: "extension token EXT_T_0",
    EXT_T_1: "extension token EXT_T_1",
    EXT_T_2: "extension token EXT_T_2",
    EXT_0: "extension token EXT_0",
    EXT_1: "extension token EXT_1",
    EXT_2: "extension token EXT_2",
}


_Entry = tuple[bytes, bytes, bytes, bytes, tuple[bytes, int], bool]


def _tag_strings() -> list[list[_Entry | None]]:
    """Per page and token: open, open with xmlns, empty, empty with xmlns, (close, page),
    and whether the element is a byte array (MS-ASDTYPE 2.7.1)."""
    pages: list[list[_Entry | None]] = []
    for page in range(256):
        row: list[_Entry | None] = [None] * 64
        for token, name in TOKENS.get(page, {}).items():
            n = name.encode()
            ns = b' xmlns="' + NAMESPACE_OF_PAGE[page].encode() + b'"'
            close = (b"</" + n + b">", page)
            binary = clark(page, name) in BINARY_TAGS
            row[token] = (b"<" + n + b">", b"<" + n + ns + b">", b"<" + n + b"/>", b"<" + n + ns + b"/>", close, binary)
        pages.append(row)
    return pages


_TAGS = _tag_strings()


def _mb_u_int32(data: bytes, pos: int) -> tuple[int, int]:
    """Read a WBXML multi-byte integer (at most 5 bytes, 32 bits) at ``pos``."""
    value = 0
    for i in range(5):
        try:
            byte = data[pos + i]
        except IndexError:
            raise TruncatedError("document ends inside a multi-byte integer", offset=pos) from None
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            if value > 0xFFFFFFFF:
                break
            return value, pos + i + 1
    raise MalformedError("multi-byte integer longer than 32 bits", offset=pos)


def _escape(text: bytes) -> bytes:
    for raw, escaped in _ESCAPES:
        text = text.replace(raw, escaped)
    return text


class _Translator:
    """One pass over the body, writing XML text into ``self.out``."""

    def __init__(self, data: bytes, limits: Limits, strict: bool) -> None:
        self.data = data
        self.limits = limits
        # strict: validate UTF-8 of every string (second pass, after lxml refused
        # the optimistic first one).
        self.strict = strict
        self.out: list[bytes] = []

    def header(self) -> int:
        """Parse version, public id, charset and string table; return body offset."""
        data = self.data
        if not data:
            raise TruncatedError("empty document", offset=0)
        version = data[0]
        if version > 0x03:
            raise UnsupportedError(f"WBXML version byte 0x{version:02X} (1.0-1.3 supported)", offset=0)
        publicid, pos = _mb_u_int32(data, 1)
        publicid_index = None
        if publicid == 0:
            publicid_index, pos = _mb_u_int32(data, pos)
        charset = 106
        if version != 0x00:  # WBXML 1.0 has no charset field
            charset, pos = _mb_u_int32(data, pos)
        if charset not in _CHARSETS:
            raise UnsupportedError(f"charset MIBenum {charset} (EAS uses UTF-8, 106)", offset=pos)
        self.codec = _CHARSETS[charset]
        length, pos = _mb_u_int32(data, pos)
        if pos + length > len(data):
            raise TruncatedError("string table runs past the end of the document", offset=pos)
        self.strtbl = data[pos : pos + length]
        if publicid_index is not None and publicid_index >= length:
            raise MalformedError("public identifier index outside the string table", offset=1)
        return pos + length

    def text_piece(self, raw: bytes, offset: int) -> bytes:
        """A string as UTF-8, transcoded from the declared charset."""
        if self.codec is not None:
            try:
                return raw.decode(self.codec).encode()
            except UnicodeDecodeError:
                raise MalformedError(f"string is not valid {self.codec}", offset=offset) from None
        return raw

    def content(
        self, open_tag: bytes, pieces: list[tuple[bool, bytes]], offset: int, child_follows: bool, binary: bool = False
    ) -> None:
        """Write an element's start tag and its content (strings and opaque data).

        Content that cannot be XML text is written as a raw element; that is
        refused when a child element follows, since a tree cannot hold it there.
        """
        has_opaque = any(is_opaque for is_opaque, _ in pieces)
        text = pieces[0][1] if len(pieces) == 1 else b"".join(p for _, p in pieces)
        if has_opaque:
            if child_follows:
                raise UnsupportedError("opaque data before a child element", offset=offset)
            self.raw(open_tag, b"opaque", text)
            return
        special = _MAYBE_SPECIAL.search(text) is not None
        # An inline string in a byte-array element stays marked, so that it is
        # written back as a string, not as opaque data.
        keep_raw = (binary and not child_follows) or (special and _not_xml(text))
        if keep_raw or (self.strict and not _valid_utf8(text)):
            if child_follows:
                raise UnsupportedError("non-XML characters in text before a child element", offset=offset)
            self.raw(open_tag, b"string", text)
            return
        self.out.append(open_tag)
        self.out.append(_escape(text) if special else text)

    def raw(self, open_tag: bytes, kind: bytes, payload: bytes) -> None:
        self.out.append(open_tag[:-1] + _RAW_DECL + kind + b'">')
        self.out.append(binascii.b2a_base64(payload, newline=False))

    def flush(
        self, pending: bytes, text: bytes | None, pieces: list[tuple[bool, bytes]], at: int, child: bool, binary: bool
    ) -> None:
        """Write a pending start tag with its content (the uncommon cases)."""
        if pieces:
            self.content(pending, pieces, at, child, binary)
        elif text is not None:
            self.content(pending, [(False, text)], at, child, binary)
        else:
            self.out.append(pending)

    def body(self, pos: int) -> bytes:
        data = self.data
        size = len(data)
        limits = self.limits
        max_depth, max_elements, max_string = limits.max_depth, limits.max_elements, limits.max_string
        out = self.out
        append = out.append
        find = data.find
        # In the strict pass every string goes through content() for validation.
        maybe_special = _MAYBE_SPECIAL.search if not self.strict else (lambda _: True)
        transcode = self.codec is not None
        kinds = _KIND
        tags = _TAGS
        page = 0
        row = tags[0]
        # Stack of (close tag, page of the element); parent_page is its top's page.
        stack: list[tuple[bytes, int]] = []
        push, pop = stack.append, stack.pop
        parent_page = -1
        elements = 0
        root_done = False
        # The element whose start tag is not written yet: its content decides
        # whether it needs the raw marker. Its content is one string in
        # pending_text (the common case) or, mixed with opaque data or split
        # into several strings, (is_opaque, bytes) pieces.
        pending: bytes | None = None
        pending_text: bytes | None = None
        pieces: list[tuple[bool, bytes]] = []
        pending_at = 0
        pending_binary = False
        while pos < size:
            b = data[pos]
            kind = kinds[b]
            if kind == _TAG_CONTENT or kind == _TAG:
                if root_done:
                    raise MalformedError("a second root element", offset=pos)
                entry = row[b & 0x3F]
                if entry is None:
                    raise UnknownTokenError(
                        f"unknown token 0x{b & 0x3F:02X} on code page {page} ({NAMESPACE_OF_PAGE[page]})", offset=pos
                    )
                elements += 1
                if elements > max_elements:
                    raise LimitExceededError(f"more than {max_elements} elements", offset=pos)
                if pending is not None:
                    if pending_text is None and not pieces:
                        append(pending)
                    else:
                        self.flush(pending, pending_text, pieces, pending_at, True, pending_binary)
                        pending_text, pieces = None, []
                    pending = None
                if kind == _TAG_CONTENT:
                    if len(stack) >= max_depth:
                        raise LimitExceededError(f"elements nested deeper than {max_depth}", offset=pos)
                    pending = entry[0] if page == parent_page else entry[1]
                    pending_binary = entry[5]
                    pending_at = pos
                    push(entry[4])
                    parent_page = page
                else:
                    append(entry[2] if page == parent_page else entry[3])
                    if not stack:
                        root_done = True
                pos += 1
            elif b == END:
                if pending is not None:
                    if pieces:
                        self.flush(pending, pending_text, pieces, pending_at, False, pending_binary)
                        pieces = []
                    elif pending_text is not None:
                        if not pending_binary and maybe_special(pending_text) is None:
                            append(pending)
                            append(pending_text)
                        else:
                            self.content(pending, [(False, pending_text)], pending_at, False, pending_binary)
                    else:
                        append(pending)
                    pending = pending_text = None
                if not stack:
                    raise MalformedError("END without an open element", offset=pos)
                close = pop()
                append(close[0])
                if stack:
                    parent_page = stack[-1][1]
                else:
                    root_done = True
                    parent_page = -1
                pos += 1
            elif b == STR_I:
                end = find(b"\x00", pos + 1)
                if end < 0:
                    raise TruncatedError("inline string without its terminating NUL", offset=pos)
                if end - pos - 1 > max_string:
                    raise LimitExceededError(f"string longer than {max_string} bytes", offset=pos)
                text = data[pos + 1 : end]
                if transcode:
                    text = self.text_piece(text, pos)
                if pending is not None and pending_text is None and not pieces:
                    pending_text = text
                else:
                    pending_text = self.add_text(pending, pending_text, pieces, text, stack, pos)
                pos = end + 1
            elif b == STR_T or b == ENTITY:
                at = pos
                if b == STR_T:
                    index, pos = _mb_u_int32(data, pos + 1)
                    stop = self.strtbl.find(b"\x00", index)
                    if index >= len(self.strtbl) or stop < 0:
                        raise MalformedError(f"string table reference {index} outside the table", offset=at)
                    text = self.text_piece(self.strtbl[index:stop], at)
                else:
                    code, pos = _mb_u_int32(data, pos + 1)
                    if code == 0 or 0xD800 <= code <= 0xDFFF or code > 0x10FFFF:
                        raise MalformedError(f"character entity {code} is not a character", offset=at)
                    text = chr(code).encode()
                if pending is not None and pending_text is None and not pieces:
                    pending_text = text
                else:
                    pending_text = self.add_text(pending, pending_text, pieces, text, stack, at)
            elif b == SWITCH_PAGE:
                if pos + 1 >= size:
                    raise TruncatedError("SWITCH_PAGE without its page number", offset=pos)
                page = data[pos + 1]
                if page not in NAMESPACE_OF_PAGE:
                    raise UnknownTokenError(f"unknown code page {page}", offset=pos)
                row = tags[page]
                pos += 2
            elif b == OPAQUE:
                at = pos
                length, pos = _mb_u_int32(data, pos + 1)
                if length > max_string:
                    raise LimitExceededError(f"opaque data longer than {max_string} bytes", offset=at)
                if pos + length > size:
                    raise TruncatedError("opaque data runs past the end of the document", offset=at)
                if pending is None:
                    where = "outside the root element" if not stack else "after a child element"
                    raise UnsupportedError(f"opaque data {where}", offset=at)
                if pending_text is not None:
                    pieces.append((False, pending_text))
                    pending_text = None
                pieces.append((True, data[pos : pos + length]))
                pos += length
            elif kind == _ATTR:
                raise UnsupportedError("element with attributes (EAS never uses attributes)", offset=pos)
            else:
                raise UnsupportedError(_UNSUPPORTED.get(b, f"token 0x{b:02X}"), offset=pos)
        if stack:
            raise TruncatedError(f"document ends with {len(stack)} element(s) still open", offset=pos)
        if not root_done:
            raise MalformedError("document has no root element", offset=pos)
        return b"".join(out)

    def add_text(
        self, pending: bytes | None, text: bytes | None, pieces: list[tuple[bool, bytes]], new: bytes,
        stack: list[tuple[bytes, int]], at: int,
    ) -> bytes | None:
        """A string that is not the first content of a pending element."""
        if pending is None:
            if not stack:
                raise MalformedError("text outside the root element", offset=at)
            # Text after a child element (mixed content): becomes a tail.
            if _not_xml(new) or (self.strict and not _valid_utf8(new)):
                raise UnsupportedError("non-XML characters in text that follows a child element", offset=at)
            self.out.append(_escape(new))
            return None
        if text is not None:
            pieces.append((False, text))
        pieces.append((False, new))
        return None


def _valid_utf8(text: bytes) -> bool:
    try:
        text.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


try:
    from wbxml import _speedups  # type: ignore[attr-defined]
except ImportError:  # built without a compiler: the Python translator alone
    _speedups = None
else:
    _speedups.set_decode_table([row if page in NAMESPACE_OF_PAGE else None for page, row in enumerate(_TAGS)],
                               _RAW_DECL)


def translate_python(data: bytes, limits: Limits, strict: bool = False) -> bytes:
    """The XML text of a document, by the Python translator alone."""
    translator = _Translator(data, limits, strict=strict)
    return translator.body(translator.header())


def _check(data: bytes, limits: Limits) -> bytes:
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"decode() takes bytes, not {type(data).__name__}")
    data = bytes(data)
    if len(data) > limits.max_size:
        raise LimitExceededError(f"document of {len(data)} bytes exceeds {limits.max_size}")
    return data


def decode(data: bytes, limits: Limits) -> etree._Element:
    data = _check(data, limits)
    if _speedups is not None:
        xml = _speedups.translate(data, limits.max_depth, limits.max_elements, limits.max_string)
        if xml is not None:
            try:
                return etree.fromstring(xml, _PARSER)
            except etree.XMLSyntaxError:
                # The Python translator's first pass writes these same bytes,
                # so it would fail alike: go straight to the strict pass.
                return _parse(translate_python(data, limits, strict=True))
    return _decode_python(data, limits)


def decode_python(data: bytes, limits: Limits) -> etree._Element:
    """``decode`` by the Python translator alone."""
    return _decode_python(_check(data, limits), limits)


def _decode_python(data: bytes, limits: Limits) -> etree._Element:
    try:
        return etree.fromstring(translate_python(data, limits), _PARSER)
    except etree.XMLSyntaxError:
        # Optimistic pass failed: some string is not valid UTF-8 (or not XML).
        # Translate again validating every string; those become raw elements.
        pass
    return _parse(translate_python(data, limits, strict=True))


def _parse(xml: bytes) -> etree._Element:
    try:
        return etree.fromstring(xml, _PARSER)
    except etree.XMLSyntaxError as exc:  # pragma: no cover - would be a codec bug
        raise MalformedError(f"document could not be represented as XML: {exc}") from exc
