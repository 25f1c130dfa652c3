"""Loop protection (issue 4): an item that fails to convert does not block its
folder. It is left out and tried again at the next Sync; after
MAX_ITEM_FAILURES it is skipped, reported in the log and to the admin, and
tried again only when it changes upstream."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from lxml import etree

from eas_gateway.items import email
from tests.conftest import RunningGateway
from tests.gateway.helpers import A, deliver, emails, jmap, message, new_user
from tests.gateway.model_phone import E as M
from tests.gateway.model_phone import ModelPhone
from tests.gateway.test_admin import cli
from usm.sync_state import MAX_ITEM_FAILURES


@pytest.fixture
def poisoned(monkeypatch: pytest.MonkeyPatch) -> None:
    """The e-mail converter fails on one message, as a converter bug would."""
    convert = email.application_data

    def failing(parent: Any, msg: Any, *args: Any, **kwargs: Any) -> Any:
        if msg.subject == "poison":
            raise ValueError("cannot convert this one")
        return convert(parent, msg, *args, **kwargs)

    monkeypatch.setattr(email, "application_data", failing)


def test_an_item_that_fails_to_convert_is_retried_then_skipped_and_reported(
        gateway: RunningGateway, poisoned: None, caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    user = new_user(gateway)
    deliver(gateway, user, [message(s) for s in ("one", "poison", "two", "three")])
    phone = ModelPhone(gateway, user)
    phone.folder_sync()
    inbox = phone.folder("Inbox")
    phone.sync(inbox)
    # The rest of the folder arrived; the poison waits, and a Ping says there is more.
    assert sorted(phone.subjects(inbox)) == ["one", "three", "two"]
    assert phone.ping([inbox], heartbeat=60) == "2"
    for _ in range(MAX_ITEM_FAILURES - 1):
        phone.sync(inbox)
    [failure] = json.loads(cli(gateway, "device", user, phone.device, "--json").stdout)["item_failures"]
    assert (failure["failures"], failure["skipped"]) == (MAX_ITEM_FAILURES, True)
    assert "cannot convert this one" in failure["last_error"]
    assert failure["upstream_id"] == emails(gateway, user)["poison"]["id"]
    assert any("skipped" in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)
    listed = json.loads(cli(gateway, "devices", user, "--json").stdout)
    assert listed[0]["skipped_items"] == 1
    # Skipped: no more attempts.
    phone.sync(inbox)
    assert json.loads(cli(gateway, "device", user, phone.device, "--json").stdout)[
        "item_failures"][0]["failures"] == MAX_ITEM_FAILURES
    # It stays skipped, also when it changes upstream, until an admin resyncs the folder
    # (once the converter is fixed): then it arrives and the failure is forgotten.
    monkeypatch.undo()
    jmap(gateway, [["Email/set", {"update": {failure["upstream_id"]: {"keywords/$flagged": True}}}, "0"]],
         user=user)
    phone.sync(inbox)
    assert "poison" not in phone.subjects(inbox)
    cli(gateway, "resync-folder", user, "Inbox", "--device", phone.device)
    phone.sync(inbox)
    assert sorted(phone.subjects(inbox)) == ["one", "poison", "three", "two"]
    assert json.loads(cli(gateway, "device", user, phone.device, "--json").stdout)["item_failures"] == []


class RejectingPhone(ModelPhone):
    """A phone that fails on one message: it never takes an answer that holds it and
    asks again with the same SyncKey, as a phone whose client crashes would."""

    def _apply(self, collection_id: str, tree: etree._Element) -> None:
        if "poison" in [a.findtext(f"{A}ApplicationData/{M}Subject") for a in tree.iter(A + "Add")]:
            self.rejected += 1
            raise Rejected
        super()._apply(collection_id, tree)

    rejected = 0
    sent_key = "0"

    def request(self, command: str, body: etree._Element) -> etree._Element:
        if command == "Sync":
            self.sent_key = body.findtext(f".//{A}SyncKey") or "0"
        return super().request(command, body)


class Rejected(Exception):
    pass


def test_an_item_the_phone_keeps_rejecting_is_found_and_skipped(gateway: RunningGateway,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    user = new_user(gateway)
    deliver(gateway, user, [message(s) for s in ("a", "b", "poison", "c", "d")])
    phone = RejectingPhone(gateway, user)
    phone.folder_sync()
    inbox = phone.folder("Inbox")
    for _ in range(60):  # the phone's own retry loop: the same request until an answer is taken
        try:
            phone.sync(inbox)
            break
        except Rejected:
            phone.keys[inbox] = phone.sent_key
    else:
        raise AssertionError(f"the phone never got past the poison: {phone.statuses} {phone.rejected} "
                             f"{cli(gateway, 'device', user, phone.device).stdout}")
    assert sorted(phone.subjects(inbox)) == ["a", "b", "c", "d"]
    [failure] = json.loads(cli(gateway, "device", user, phone.device, "--json").stdout)["item_failures"]
    assert failure["skipped"] and "could not take it" in failure["last_error"]
    assert failure["upstream_id"] == emails(gateway, user)["poison"]["id"]
    assert phone.statuses["Sync 3"] == MAX_ITEM_FAILURES  # each round of rejections started the folder over
    assert any("cannot take the answer" in r.getMessage() for r in caplog.records)
