"""MS-ASHTTP behaviour over raw requests at 14.1 and 12.1 (no client library):
authentication, the User check, policy enforcement, the base64 query form,
refusals that change nothing."""

from __future__ import annotations

import httpx
import pytest

import wbxml
from tests.conftest import RunningGateway
from tests.gateway.helpers import (
    base64_query,
    device_information,
    device_rows,
    folder_sync,
    new_device_id,
    post,
    provision,
)

pytestmark = [pytest.mark.postgres, pytest.mark.upstream]


def test_options_needs_authentication_and_lists_versions_and_commands(gateway: RunningGateway) -> None:
    anonymous = httpx.options(gateway.endpoint)
    assert anonymous.status_code == 401
    assert anonymous.headers["WWW-Authenticate"].startswith("Basic")
    answer = httpx.options(gateway.endpoint, auth=("alice@example.com", "alice"))
    assert answer.status_code == 200
    assert answer.headers["MS-ASProtocolVersions"] == "12.0,12.1,14.0,14.1,16.0,16.1"
    assert {"Provision", "FolderSync"} <= set(answer.headers["MS-ASProtocolCommands"].split(","))


def test_wrong_password_is_401_and_records_nothing(gateway: RunningGateway) -> None:
    device = new_device_id()
    answer = post(gateway, "FolderSync", folder_sync("0"), device_id=device, secret="wrong")
    assert answer.status_code == 401
    assert device_rows(gateway, device) == 0


def test_user_parameter_must_name_the_authenticated_user(gateway: RunningGateway) -> None:
    device = new_device_id()
    answer = post(gateway, "FolderSync", folder_sync("0"), device_id=device, query_user="bob@example.com")
    assert answer.status_code == 403
    assert device_rows(gateway, device) == 0


def test_malformed_wbxml_is_400_and_changes_nothing(gateway: RunningGateway) -> None:
    device = new_device_id()
    answer = post(gateway, "FolderSync", b"\x03\x01\x6a\x00\x47\x52\x03abc", device_id=device)
    assert answer.status_code == 400
    assert "WBXML" in answer.text
    assert device_rows(gateway, device) == 0


def test_unknown_command_is_501(gateway: RunningGateway) -> None:
    assert post(gateway, "NoSuchCommand", None, device_id=new_device_id()).status_code == 501


def test_unoffered_protocol_version_is_400(gateway: RunningGateway) -> None:
    assert post(gateway, "FolderSync", folder_sync("0"), device_id=new_device_id(), version="2.5").status_code == 400


def _status(answer: httpx.Response) -> str | None:
    assert answer.status_code == 200, answer.text
    return wbxml.decode(answer.content).findtext("{FolderHierarchy:}Status")


def test_from_14_0_an_unprovisioned_device_gets_status_142_then_144(gateway: RunningGateway) -> None:
    device = new_device_id()
    assert _status(post(gateway, "FolderSync", folder_sync("0"), device_id=device)) == "142"
    key = provision(gateway, device)
    assert _status(post(gateway, "FolderSync", folder_sync("0"), device_id=device, policy_key="12345")) == "144"
    assert _status(post(gateway, "FolderSync", folder_sync("0"), device_id=device, policy_key=key)) == "1"


def test_below_14_0_an_unprovisioned_device_gets_449(gateway: RunningGateway) -> None:
    device = new_device_id()
    assert post(gateway, "FolderSync", folder_sync("0"), device_id=device, version="12.1").status_code == 449
    key = provision(gateway, device, version="12.1")
    answer = post(gateway, "FolderSync", folder_sync("0"), device_id=device, version="12.1", policy_key=key)
    assert _status(answer) == "1"


def test_reprovisioning_voids_the_old_key(gateway: RunningGateway) -> None:
    device = new_device_id()
    old = provision(gateway, device)
    new = provision(gateway, device)
    assert old != new
    assert _status(post(gateway, "FolderSync", folder_sync("0"), device_id=device, policy_key=old)) == "144"


def test_base64_encoded_query_as_exchange_clients_send_it(gateway: RunningGateway) -> None:
    device = new_device_id()
    key = int(provision(gateway, device))
    query = base64_query(9, device_id=device, user="alice@example.com", policy_key=key)
    answer = httpx.post(f"{gateway.endpoint}?{query}", content=wbxml.encode(folder_sync("0")),
                        auth=("alice@example.com", "alice"),
                        headers={"Content-Type": "application/vnd.ms-sync.wbxml"})
    assert _status(answer) == "1"
    names = {el.text for el in wbxml.decode(answer.content).iter("{FolderHierarchy:}DisplayName")}
    assert {"Inbox", "Outbox", "Sent"} <= names


def test_settings_device_information_is_stored_and_unoffered_parts_say_so(gateway: RunningGateway) -> None:
    from lxml import etree

    S = "{Settings:}"
    device = new_device_id()
    key = provision(gateway, device, version="16.1")
    root = etree.Element(S + "Settings")
    info = etree.SubElement(etree.SubElement(root, S + "DeviceInformation"), S + "Set")
    for name, value in (("Model", "iPhone15,2"), ("OS", "iOS 17.1 21B80"), ("FriendlyName", "Alice’s phone")):
        etree.SubElement(info, S + name).text = value
    password = etree.SubElement(etree.SubElement(root, S + "DevicePassword"), S + "Set")
    etree.SubElement(password, S + "Password").text = "1234"
    answer = post(gateway, "Settings", root, device_id=device, version="16.1", policy_key=key)
    tree = wbxml.decode(answer.content)
    assert tree.findtext(S + "Status") == "1"
    assert tree.findtext(f"{S}DeviceInformation/{S}Status") == "1"
    assert tree.findtext(f"{S}DevicePassword/{S}Status") == "2"
    assert device_information(gateway, device) == {"Model": "iPhone15,2", "OS": "iOS 17.1 21B80",
                                                    "FriendlyName": "Alice’s phone"}
