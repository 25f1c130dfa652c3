"""End to end with a real EAS client (pyactivesync, EAS 16.1) against the real
Cyrus upstream and PostgreSQL (embedded and server)."""

from __future__ import annotations

import pytest
from pyactivesync import FolderType

from tests.conftest import RunningGateway
from tests.gateway.helpers import device_information, new_device_id, pyactivesync_client

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
