"""An upgrade serves the same phones without a resync: a database holding the
mail state of the gateway before source-qualified folder ids (sql/011), migrated
at start, keeps every SyncKey, ServerId and item; the phone's next requests go on
from where they were, and the new contacts folder comes as one FolderSync Add."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

import wbxml
from tests.conftest import fresh_server_database, running_gateway
from tests.gateway.helpers import A, Phone, collection, deliver, folder_sync, message, new_user

pytestmark = [pytest.mark.postgres, pytest.mark.upstream]

F = "{FolderHierarchy:}"
DATABASE = "eas_gateway_upgrade_test"


def _as_before_011(url: str) -> list[str]:
    """The state as the gateway before migration 011 wrote it: bare JMAP Mailbox ids.
    Returns the ids, to check that they were bare (no source) before the upgrade."""
    async def downgrade() -> list[str]:
        conn = await asyncpg.connect(url)
        try:
            await conn.execute("UPDATE folder_ids SET upstream_id = substr(upstream_id, 6)"
                               " WHERE upstream_id LIKE 'jmap:%'")
            await conn.execute("DELETE FROM schema_migrations WHERE version = 11")
            return [r["upstream_id"] for r in await conn.fetch("SELECT upstream_id FROM folder_ids")]
        finally:
            await conn.close()
    return asyncio.run(downgrade())


def test_a_migrated_database_serves_the_same_phone_without_a_resync(cyrus: str) -> None:
    url = fresh_server_database(DATABASE)
    with running_gateway(cyrus, url, poll_seconds=0.5, dav_upstream="none") as before:
        user = new_user(before)
        deliver(before, user, [message(f"Before {i}", text="x") for i in range(3)])
        phone = Phone(before, user)
        assert "9" not in phone.types  # mail only, as before contacts existed
        folder_key = "1"
        tree = phone.sync(collection(phone.inbox, "0"))
        tree = phone.sync(collection(phone.inbox, tree.findtext(f".//{A}SyncKey")))
        key = tree.findtext(f".//{A}SyncKey")
        assert len(list(tree.iter(A + "Add"))) == 3
    bare = _as_before_011(url)
    assert bare and not any(i.startswith("jmap:") for i in bare)
    with running_gateway(cyrus, url, poll_seconds=0.5) as after:  # migrates at start, now with contacts and calendars
        phone.gw = after
        deliver(after, user, [message("After", text="y")])
        tree = phone.sync(collection(phone.inbox, key))
        assert tree.findtext(f".//{A}Status") == "1"
        adds = list(tree.iter(A + "Add"))
        assert [a.findtext(".//{Email:}Subject") for a in adds] == ["After"]  # nothing sent again
        hierarchy = wbxml.decode(phone.post("FolderSync", folder_sync(folder_key)).content)
        assert hierarchy.findtext(F + "Status") == "1"
        # What is new is added (contacts, and Cyrus' Default calendar as Calendar, Tasks, Notes).
        assert sorted(a.findtext(F + "Type") for a in hierarchy.iter(F + "Add")) == ["10", "7", "8", "9"]
        assert not list(hierarchy.iter(F + "Delete")) and not list(hierarchy.iter(F + "Update"))
