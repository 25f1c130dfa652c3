"""The MS-ASHTTP request line, both query forms (pure code)."""

from __future__ import annotations

import base64
import struct

import pytest

from eas_gateway import ashttp
from eas_gateway.errors import BadRequest
from tests.gateway.helpers import base64_query


def test_plain_query() -> None:
    line = ashttp.parse("Cmd=Sync&User=alice%40example.com&DeviceId=ABC123&DeviceType=iPhone&SaveInSent=T",
                        {"ms-asprotocolversion": "16.1", "x-ms-policykey": "42"})
    assert (line.command, line.user, line.device_id, line.device_type) == ("Sync", "alice@example.com",
                                                                         "ABC123", "iPhone")
    assert (line.version, line.policy_key, line.save_in_sent) == ("16.1", "42", True)


@pytest.mark.parametrize("query", ["", "Cmd=Sync", "Cmd=Sync&User=a&DeviceId=x", "Cmd=Sync&User=a&DeviceType=y"])
def test_plain_query_missing_parameters(query: str) -> None:
    with pytest.raises(BadRequest):
        ashttp.parse(query, {})


def test_device_id_must_be_short_alphanumeric() -> None:
    with pytest.raises(BadRequest, match="DeviceId"):
        ashttp.parse("Cmd=Sync&User=a&DeviceId=" + "x" * 33 + "&DeviceType=y", {})
    with pytest.raises(BadRequest, match="DeviceId"):
        ashttp.parse("Cmd=Sync&User=a&DeviceId=a%2Fb&DeviceType=y", {})


def test_base64_query() -> None:
    query = base64_query(0, device_id="Appl123", user="bob@example.com", version=141, policy_key=3735928559)
    line = ashttp.parse(query, {})
    assert (line.command, line.user, line.device_id, line.device_type) == ("Sync", "bob@example.com",
                                                                         "Appl123", "TestPhone")
    assert (line.version, line.policy_key, line.locale) == ("14.1", "3735928559", 0x0409)


def test_base64_query_parameters_and_options() -> None:
    raw = bytes([121, 3]) + struct.pack("<H", 0x0407) + b"\x03dev" + b"\x00" + b"\x02PP"
    raw += b"\x01\x015" + b"\x03\x0410:7" + b"\x07\x01\x01" + b"\x08\x01u"
    line = ashttp.parse(base64.b64encode(raw).decode(), {})
    assert line.command == "SmartReply" and line.version == "12.1"
    assert line.params == {"CollectionId": "5", "ItemId": "10:7"}
    assert line.save_in_sent and not line.accept_multipart and line.policy_key is None


@pytest.mark.parametrize("raw", [
    b"\x8d",                                            # truncated
    bytes([141, 99, 0, 0, 1, 65, 0, 1, 66, 8, 1, 117]),   # unknown command code
    bytes([141, 0, 0, 0, 1, 65, 2, 0, 0, 1, 66, 8, 1, 117]),  # 2-byte policy key
    bytes([141, 0, 0, 0, 1, 65, 0, 1, 66, 42, 1, 117]),  # unknown parameter tag
    bytes([141, 0, 0, 0, 1, 65, 0, 1, 66]),             # no User
])
def test_base64_query_refusals(raw: bytes) -> None:
    with pytest.raises(BadRequest):
        ashttp.parse(base64.b64encode(raw).decode(), {})


def test_not_base64_at_all() -> None:
    with pytest.raises(BadRequest, match="base64"):
        ashttp.parse("!!!notbase64", {})
