"""MS-ASHTTP request line: the plain and the base64-encoded query forms.

A request names its command, user and device in the query string, either as
plain parameters (2.2.1.1.1.2) or as one base64 value (2.2.1.1.1.1) that
packs the protocol version, command code, locale, device id, policy key,
device type and command parameters in binary.
"""

from __future__ import annotations

import base64
import binascii
import re
import struct
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, unquote

from eas_gateway.errors import BadRequest

# MS-ASHTTP 2.2.1.1.1.1.2: command codes of the base64-encoded query.
COMMAND_CODES: dict[int, str] = {
    0: "Sync", 1: "SendMail", 2: "SmartForward", 3: "SmartReply", 4: "GetAttachment",
    9: "FolderSync", 10: "FolderCreate", 11: "FolderDelete", 12: "FolderUpdate", 13: "MoveItems",
    14: "GetItemEstimate", 15: "MeetingResponse", 16: "Search", 17: "Settings", 18: "Ping",
    19: "ItemOperations", 20: "Provision", 21: "ResolveRecipients", 22: "ValidateCert", 23: "Find",
}

# MS-ASHTTP 2.2.1.1.1.1.3: command parameter tags of the base64-encoded query.
PARAMETER_TAGS: dict[int, str] = {
    0: "AttachmentName", 1: "CollectionId", 2: "CollectionName", 3: "ItemId", 4: "LongId",
    5: "ParentId", 6: "Occurrence", 7: "Options", 8: "User",
}

# MS-ASHTTP 2.2.1.1.1.2.3: DeviceId up to 32 characters, alphanumeric.
_DEVICE_ID = re.compile(r"^[A-Za-z0-9_.\-]{1,32}$")
_DEVICE_TYPE = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")


@dataclass(frozen=True)
class RequestLine:
    command: str
    user: str
    device_id: str
    device_type: str
    version: str | None  # None: the client did not say (the header is checked later)
    policy_key: str | None = None
    locale: int | None = None
    params: dict[str, str] = field(default_factory=dict)
    save_in_sent: bool = False
    accept_multipart: bool = False


def parse(query: str, headers: dict[str, str]) -> RequestLine:
    """The request line from the raw query string and the (lower-case) headers."""
    # The plain form has at least four parameters; base64 text never has "&".
    if query and "&" not in query:
        return _parse_base64(query, headers)
    return _parse_plain(query, headers)


def _parse_plain(query: str, headers: dict[str, str]) -> RequestLine:
    try:
        params = dict(parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query)))
    except ValueError as exc:
        raise BadRequest(f"query string is not form-encoded: {exc}") from exc
    missing = [name for name in ("Cmd", "User", "DeviceId", "DeviceType") if not params.get(name)]
    if missing:
        raise BadRequest(f"query lacks {', '.join(missing)} (MS-ASHTTP 2.2.1.1.1.2)")
    command = params.pop("Cmd")
    user = params.pop("User")
    device_id = params.pop("DeviceId")
    device_type = params.pop("DeviceType")
    _check_device(device_id, device_type)
    save_in_sent = params.get("SaveInSent", "").upper() == "T"
    return RequestLine(
        command=command, user=user, device_id=device_id, device_type=device_type,
        version=headers.get("ms-asprotocolversion"),
        policy_key=headers.get("x-ms-policykey") or params.pop("PolicyKey", None),
        params=params, save_in_sent=save_in_sent,
        accept_multipart=headers.get("ms-asacceptmultipart", "").upper() == "T",
    )


def _parse_base64(query: str, headers: dict[str, str]) -> RequestLine:
    try:
        raw = base64.b64decode(unquote(query), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise BadRequest(f"base64-encoded query is not base64: {exc}") from exc
    reader = _Reader(raw)
    version_byte = reader.byte()
    code = reader.byte()
    locale = reader.u16()
    device_id = reader.counted().decode("ascii", "replace")
    policy = reader.counted()
    device_type = reader.counted().decode("ascii", "replace")
    params: dict[str, str] = {}
    options = 0
    while not reader.done():
        tag = reader.byte()
        value = reader.counted()
        name = PARAMETER_TAGS.get(tag)
        if name is None:
            raise BadRequest(f"base64-encoded query: unknown parameter tag {tag}")
        if name == "Options":
            options = int.from_bytes(value, "little") if value else 0
        else:
            params[name] = value.decode("utf-8", "replace")
    if code not in COMMAND_CODES:
        raise BadRequest(f"base64-encoded query: unknown command code {code}")
    if len(policy) not in (0, 4):
        raise BadRequest(f"base64-encoded query: policy key of {len(policy)} bytes (must be 0 or 4)")
    user = params.pop("User", "")
    if not user:
        raise BadRequest("base64-encoded query lacks the User parameter")
    _check_device(device_id, device_type)
    # The version byte is the version times ten: 121 = 12.1, 141 = 14.1, 161 = 16.1.
    version = f"{version_byte // 10}.{version_byte % 10}"
    return RequestLine(
        command=COMMAND_CODES[code], user=user, device_id=device_id, device_type=device_type,
        version=version, policy_key=str(struct.unpack("<I", policy)[0]) if policy else None,
        locale=locale, params=params, save_in_sent=bool(options & 0x01),
        accept_multipart=bool(options & 0x02),
    )


def _check_device(device_id: str, device_type: str) -> None:
    if not _DEVICE_ID.match(device_id):
        raise BadRequest(f"DeviceId {device_id[:40]!r} is not 1-32 letters and digits (MS-ASHTTP 2.2.1.1.1.2.3)")
    if not _DEVICE_TYPE.match(device_type):
        raise BadRequest(f"DeviceType {device_type[:70]!r} is not 1-64 letters and digits")


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def done(self) -> bool:
        return self.pos >= len(self.data)

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise BadRequest(f"base64-encoded query truncated at byte {self.pos}")
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk

    def byte(self) -> int:
        return self.take(1)[0]

    def u16(self) -> int:
        return int.from_bytes(self.take(2), "little")

    def counted(self) -> bytes:
        return self.take(self.byte())
