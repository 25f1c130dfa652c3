"""The codec's exception tree: everything it raises derives from WBXMLError.

An error knows the HTTP status a gateway should answer with (every decoding
problem is the client's fault: 400) and, when decoding, the byte offset where
the problem was found, so that a log line can say exactly why.
"""

from __future__ import annotations


class WBXMLError(ValueError):
    """Base of every decoding or encoding error raised by this package."""

    http_status = 400

    def __init__(self, message: str, *, offset: int | None = None) -> None:
        self.reason = message
        self.offset = offset
        where = f" (at byte {offset})" if offset is not None else ""
        super().__init__(message + where)


class TruncatedError(WBXMLError):
    """The document ended before its root element was closed."""


class MalformedError(WBXMLError):
    """The bytes break the WBXML 1.3 grammar (header, integers, structure)."""


class UnknownTokenError(WBXMLError):
    """A code page, token or element name that MS-ASWBXML does not define."""


class UnsupportedError(WBXMLError):
    """Valid WBXML that EAS never uses: attributes, LITERAL, extensions, PI."""


class LimitExceededError(WBXMLError):
    """A configured limit (size, depth, element count, string length) was hit."""

    http_status = 413
