"""ItemOperations Fetch and GetItemEstimate over raw WBXML at 14.1: Range,
bad references, items the device does not have, estimate statuses."""

from __future__ import annotations

import base64

import pytest
from lxml import etree

import wbxml
from tests.conftest import RunningGateway
from tests.gateway.helpers import A, B, Phone, collection, deliver, message, new_user, options, post

pytestmark = [pytest.mark.postgres, pytest.mark.upstream]
I = "{ItemOperations:}"
G = "{GetItemEstimate:}"


def _fetch(phone: Phone, *fetches: etree._Element) -> list[etree._Element]:
    root = etree.Element(I + "ItemOperations")
    root.extend(fetches)
    tree = wbxml.decode(phone.post("ItemOperations", root).content)
    assert tree.findtext(I + "Status") == "1"
    return tree.findall(f"{I}Response/{I}Fetch")


def _by_reference(reference: str, byte_range: str | None = None) -> etree._Element:
    fetch = etree.Element(I + "Fetch")
    etree.SubElement(fetch, I + "Store").text = "Mailbox"
    etree.SubElement(fetch, B + "FileReference").text = reference
    if byte_range:
        etree.SubElement(etree.SubElement(fetch, I + "Options"), I + "Range").text = byte_range
    return fetch


def _by_server_id(collection_id: str, server_id: str, store: str = "Mailbox") -> etree._Element:
    fetch = etree.Element(I + "Fetch")
    etree.SubElement(fetch, I + "Store").text = store
    etree.SubElement(fetch, A + "CollectionId").text = collection_id
    etree.SubElement(fetch, A + "ServerId").text = server_id
    opts = etree.SubElement(fetch, I + "Options")
    pref = etree.SubElement(opts, B + "BodyPreference")
    etree.SubElement(pref, B + "Type").text = "1"
    etree.SubElement(pref, B + "TruncationSize").text = "5"
    return fetch


def test_attachment_ranges_and_bad_references(gateway: RunningGateway) -> None:
    user = new_user(gateway)
    data = bytes(range(256)) * 10
    deliver(gateway, user, [message("att", text="body text", attachments=[("a.bin", "application/pdf", data)])])
    phone = Phone(gateway, user)
    _, [add] = phone.sync_all(phone.inbox)
    reference = add.findtext(f".//{B}FileReference")
    whole, part, beyond, bogus = _fetch(phone, _by_reference(reference), _by_reference(reference, "100-199"),
                                        _by_reference(reference, "5000-5001"), _by_reference("not|ours"))
    assert whole.findtext(I + "Status") == "1"
    assert whole.findtext(f"{I}Properties/{B}ContentType") == "application/pdf"
    assert base64.b64decode(whole.findtext(f"{I}Properties/{I}Data")) == data
    assert part.findtext(f"{I}Properties/{I}Range") == "100-199"
    assert part.findtext(f"{I}Properties/{I}Total") == str(len(data))
    assert base64.b64decode(part.findtext(f"{I}Properties/{I}Data")) == data[100:200]
    assert beyond.findtext(I + "Status") == "8"
    assert bogus.findtext(I + "Status") in ("6", "15")


def test_fetch_by_server_id_with_truncation_and_unknown_items(gateway: RunningGateway) -> None:
    user = new_user(gateway)
    deliver(gateway, user, [message("item", text="a longer body text")])
    phone = Phone(gateway, user)
    _, [add] = phone.sync_all(phone.inbox)
    server_id = add.findtext(A + "ServerId")
    found, unknown, foreign, store = _fetch(phone, _by_server_id(phone.inbox, server_id),
                                            _by_server_id(phone.inbox, phone.inbox + ":999999"),
                                            _by_server_id(phone.folders["Archive"], server_id),
                                            _by_server_id(phone.inbox, server_id, store="DocumentLibrary"))
    assert found.findtext(I + "Status") == "1"
    body = found.find(f"{I}Properties/{B}Body")
    assert (body.findtext(B + "Data"), body.findtext(B + "Truncated")) == ("a lon", "1")
    assert found.findtext(f"{I}Properties/{{Email:}}Subject") == "item"
    assert unknown.findtext(I + "Status") == "6"
    assert foreign.findtext(I + "Status") == "6"
    assert store.findtext(I + "Status") == "9"


def test_estimate_statuses(gateway: RunningGateway) -> None:
    user = new_user(gateway)
    deliver(gateway, user, [message(f"e{i}", text="x") for i in range(7)])
    phone = Phone(gateway, user)

    def estimate(collection_id: str, key: str) -> tuple[str, str | None]:
        root = etree.Element(G + "GetItemEstimate")
        c = etree.SubElement(etree.SubElement(root, G + "Collections"), G + "Collection")
        etree.SubElement(c, A + "SyncKey").text = key
        etree.SubElement(c, G + "CollectionId").text = collection_id
        c.append(options(filter_type=0))
        tree = wbxml.decode(phone.post("GetItemEstimate", root).content)
        return tree.findtext(f"{G}Response/{G}Status"), tree.findtext(f".//{G}Estimate")

    assert estimate(phone.inbox, "0")[0] == "3"  # not primed
    phone.sync(collection(phone.inbox, "0"))
    assert estimate(phone.inbox, "1") == ("1", "7")
    assert estimate(phone.inbox, "5")[0] == "4"
    assert estimate("424242", "1")[0] == "2"


def test_a_12_1_phone_downloads_an_attachment_with_get_attachment(gateway: RunningGateway) -> None:
    user = new_user(gateway)
    data = bytes(range(256)) * 40 + b"\x00end"
    deliver(gateway, user, [message("att", text="body", attachments=[("report.pdf", "application/pdf", data)])])
    phone = Phone(gateway, user, version="12.1")
    _, [add] = phone.sync_all(phone.inbox)
    reference = add.findtext(f".//{B}FileReference")
    got = post(gateway, "GetAttachment", None, device_id=phone.device, user=user, version="12.1",
               policy_key=phone.policy_key, params={"AttachmentName": reference})
    assert got.status_code == 200 and got.headers["content-type"].startswith("application/pdf")
    assert got.content == data  # byte for byte
    unknown = post(gateway, "GetAttachment", None, device_id=phone.device, user=user, version="12.1",
                   policy_key=phone.policy_key, params={"AttachmentName": "not|ours|at all|x"})
    assert unknown.status_code == 400
    gone = post(gateway, "GetAttachment", None, device_id=phone.device, user=user, version="12.1",
                policy_key=phone.policy_key, params={"AttachmentName": reference.replace(reference[:5], "Gxxxx")})
    assert gone.status_code == 404
    modern = Phone(gateway, user, version="16.1")  # GetAttachment is gone at 16.x: ItemOperations does it
    assert post(gateway, "GetAttachment", None, device_id=modern.device, user=user, version="16.1",
                policy_key=modern.policy_key, params={"AttachmentName": reference}).status_code == 400
