"""What `eas-gateway admin device` shows of a device's folders (usm.admin.show_device). Real database."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from usm import admin, database, devices, folders, sync_state
from usm.hierarchy import DeviceFolder
from usm.sync_state import Generation

pytestmark = pytest.mark.postgres


def test_the_admin_sees_a_listing_under_way(database_url: str) -> None:
    """`eas-gateway admin device`: a folder whose first listing is under way says so (its pending
    count is not all that waits)."""
    async def run() -> list[admin.FolderState]:
        pool = await database.connect(database_url, min_size=1, max_size=1)
        user, device = f"{uuid.uuid4().hex[:8]}@example.com", "DEV1"
        try:
            async with pool.acquire() as conn:
                await devices.touch(conn, user, device, "iPhone", None, "16.1")
                ids = await folders.server_ids(conn, user, ["inbox", "sent"])
                assert await folders.commit(conn, user, device, expected_key=0, new_key=1, response=b"", folders={
                    ids["inbox"]: DeviceFolder(ids["inbox"], 0, "Inbox", 2),
                    ids["sent"]: DeviceFolder(ids["sent"], 0, "Sent Items", 5)})
                for cid, listing in ((ids["inbox"], '["m7"]'), (ids["sent"], None)):
                    assert await sync_state.commit(conn, user, device, cid, expected_key=0, generation=Generation(
                        new_key=1, upstream_state="s1", filter_type=0, options={}, next_item=1, response=b"r",
                        reset=True, pending_new=["m8", "m9"], listing=listing))
                return (await admin.show_device(conn, user, device))[1]
        finally:
            await pool.close()

    inbox, sent = asyncio.run(run())
    assert (inbox.name, inbox.pending, inbox.listing) == ("Inbox", 2, True)
    assert (sent.name, sent.pending, sent.listing) == ("Sent Items", 2, False)
