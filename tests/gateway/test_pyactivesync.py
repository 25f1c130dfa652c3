"""End to end with a real EAS client (pyactivesync, EAS 16.1) against the real
Cyrus upstream and PostgreSQL (embedded and server)."""

from __future__ import annotations

import hashlib

import httpx
import pytest
from pyactivesync import FolderType
from pyactivesync.models import BodyType

from tests.conftest import RunningGateway
from tests.gateway.helpers import (
    deliver,
    device_information,
    jmap,
    message,
    new_device_id,
    new_user,
    password,
    pyactivesync_client,
)

pytestmark = [pytest.mark.postgres, pytest.mark.upstream]


def test_provision_then_folders_with_every_required_type(gateway: RunningGateway) -> None:
    device = new_device_id()
    with pyactivesync_client(gateway, device) as client:
        key = client.provision()
        folders = client.list_folders()
    assert key.isdigit() and key != "0"
    # pyactivesync sends Settings:DeviceInformation inside its first Provision.
    assert device_information(gateway, device)["Model"] == "pyactivesync"
    by_type = {f.type: f for f in folders}
    assert by_type[FolderType.INBOX].name == "Inbox"
    assert by_type[FolderType.DRAFTS].name == "Drafts"
    assert by_type[FolderType.DELETED_ITEMS].name == "Trash"
    assert by_type[FolderType.SENT_ITEMS].name == "Sent"
    # Cyrus has no Outbox mailbox; Android resets an account whose hierarchy lacks one.
    assert by_type[FolderType.OUTBOX].name == "Outbox"
    assert {f.name for f in folders} >= {"Archive", "Junk"}
    assert all(f.parent_id == "0" for f in folders)
    assert len({f.id for f in folders}) == len(folders)


def test_folder_ids_are_the_same_for_every_device_and_every_restart(gateway: RunningGateway) -> None:
    device = new_device_id()
    with pyactivesync_client(gateway, device) as client:
        first = {f.name: f.id for f in client.list_folders()}
        # pyactivesync sends FolderSync with key 0 before every folder operation.
        again = {f.name: f.id for f in client.list_folders()}
    with pyactivesync_client(gateway, new_device_id()) as other:
        other_device = {f.name: f.id for f in other.list_folders()}
    assert first == again == other_device


def _mailbox_of_300(gateway: RunningGateway, user: str) -> dict[str, bytes]:
    """Deliver 300 messages (plain, HTML, attachments, non-ASCII); subject -> attachment bytes."""
    attachments = {}
    messages = []
    for i in range(300):
        subject = f"#{i:03d} " + ("Grüße aus Köln ☕" if i % 3 == 0 else "plain report")
        kind = i % 4
        if kind == 0:
            messages.append(message(subject, text=f"Text {i}: ünïcödé"))
        elif kind == 1:
            messages.append(message(subject, html=f"<p>HTML <b>{i}</b> – 日本語</p>"))
        elif kind == 2:
            messages.append(message(subject, text=f"both {i}", html=f"<p>both <i>{i}</i></p>"))
        else:
            data = hashlib.sha256(str(i).encode()).digest() * 300 + bytes(range(256))
            attachments[subject] = data
            messages.append(message(subject, text=f"with attachment {i}",
                                    attachments=[(f"report-{i}.bin", "application/octet-stream", data)]))
    deliver(gateway, user, messages)
    return attachments


def test_a_mailbox_of_300_messages_end_to_end(gateway: RunningGateway) -> None:
    user = new_user(gateway)
    attachments = _mailbox_of_300(gateway, user)
    with pyactivesync_client(gateway, new_device_id(), user=user) as client:
        inbox = next(f for f in client.list_folders() if f.type == FolderType.INBOX)
        first = client.sync_folder(inbox.id, "0")
        assert first.sync_key == "1" and not first.added
        assert client.get_item_estimate(inbox.id, first.sync_key) == 300
        key, items, rounds = first.sync_key, {}, 0
        while True:
            result = client.sync_folder(inbox.id, key, window_size=100)
            rounds += 1
            key = result.sync_key
            for item in result.added:
                assert item.server_id not in items
                items[item.server_id] = item.fields
            if not result.more_available:
                break
        assert rounds == 3 and len(items) == 300
        subjects = {fields["Email.Subject"]: sid for sid, fields in items.items()}
        assert len(subjects) == 300 and "#000 Grüße aus Köln ☕" in subjects
        assert client.get_item_estimate(inbox.id, key) == 0

        # Bodies and attachments, byte-exact.
        html = client.fetch_item(inbox.id, subjects["#001 plain report"], body_type=BodyType.HTML)
        assert "<b>1</b> – 日本語" in html.body.data
        subject = "#003 Grüße aus Köln ☕"
        fetched = client.fetch_item(inbox.id, subjects[subject], body_type=BodyType.PLAIN_TEXT)
        assert fetched.body.data.strip() == "with attachment 3"
        [attachment] = fetched.attachments
        assert attachment.display_name == "report-3.bin"
        assert client.fetch_attachment(attachment.file_reference) == attachments[subject]
        mime = client.fetch_item(inbox.id, subjects[subject], body_type=BodyType.MIME)
        assert mime.body.data == _raw_message(gateway, user, subject)

        # Changes made upstream by another client arrive in the next Sync.
        ids = {e["subject"]: e["id"] for e in jmap(gateway, [
            ["Email/query", {"limit": 1000}, "q"],
            ["Email/get", {"#ids": {"resultOf": "q", "name": "Email/query", "path": "/ids"},
                           "properties": ["subject"]}, "g"]], user=user)[1][1]["list"]}
        jmap(gateway, [["Email/set", {"update": {ids["#010 plain report"]: {"keywords/$seen": True}},
                                      "destroy": [ids["#011 plain report"]]}, "0"]], user=user)
        result = client.sync_folder(inbox.id, key)
        assert [c.server_id for c in result.changed] == [subjects["#010 plain report"]]
        assert result.changed[0].fields["Email.Read"] == "1"
        assert result.deleted == [subjects["#011 plain report"]]


def _raw_message(gateway: RunningGateway, user: str, subject: str) -> bytes:
    [(_, query, _), (_, got, _)] = jmap(gateway, [
        ["Email/query", {"limit": 1000}, "q"],  # (no text search configured upstream)
        ["Email/get", {"#ids": {"resultOf": "q", "name": "Email/query", "path": "/ids"},
                       "properties": ["blobId", "subject"]}, "g"]], user=user)
    blob = next(e["blobId"] for e in got["list"] if e["subject"] == subject)
    session = httpx.get(gateway.upstream + "/jmap/", auth=(user, password(user))).json()
    url = session["downloadUrl"].replace("{accountId}", user).replace("{blobId}", blob).replace(
        "{name}", "m.eml").replace("{type}", "message/rfc822")
    return httpx.get(httpx.URL(gateway.upstream).join(url), auth=(user, password(user))).content
