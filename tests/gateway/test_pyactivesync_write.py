"""The mail write path end to end with pyactivesync (EAS 16.1) against the real
Cyrus: every operation the client offers reaches the upstream once."""

from __future__ import annotations

import email.policy
import uuid
from email.message import EmailMessage
from email.parser import BytesParser

import httpx
import pytest
from pyactivesync import EmailChange, FolderType

from tests.conftest import RunningGateway
from tests.gateway.helpers import deliver, jmap, message, new_device_id, new_user, pyactivesync_client, relayed
from tests.gateway.helpers import emails as upstream_emails

pytestmark = [pytest.mark.postgres, pytest.mark.upstream]


def _boxes(gw: RunningGateway, user: str) -> dict[str, dict]:
    [(_, result, _)] = jmap(gw, [["Mailbox/get", {"ids": None}, "0"]], user=user)
    return {m["name"]: m for m in result["list"]}


def test_every_write_operation_of_pyactivesync(gateway: RunningGateway) -> None:
    alice, bob = new_user(gateway), new_user(gateway)
    deliver(gateway, alice, [message(s, text=f"about {s}") for s in ("read me", "flag me", "delete me", "move me")])
    with pyactivesync_client(gateway, new_device_id(), user=alice) as client:
        folders = {f.type: f for f in client.list_folders()}
        inbox, drafts = folders[FolderType.INBOX], folders[FolderType.DRAFTS]
        key = client.sync_folder(inbox.id, "0").sync_key
        result = client.sync_folder(inbox.id, key)
        key = result.sync_key
        ids = {item.fields["Email.Subject"]: item.server_id for item in result.added}

        # Read, flag, delete in one Sync.
        changes = client.apply_email_changes(inbox.id, key, [
            EmailChange(ids["read me"], read=True), EmailChange(ids["flag me"], flagged=True),
            EmailChange(ids["delete me"], delete=True)])
        assert set(changes.statuses.values()) == {"1"}
        key = changes.sync_key
        emails = upstream_emails(gateway, alice)
        assert emails["read me"]["keywords"] == {"$seen": True}
        assert emails["flag me"]["keywords"] == {"$flagged": True}
        trash = next(b["id"] for b in _boxes(gateway, alice).values() if b["role"] == "trash")
        assert emails["delete me"]["mailboxIds"] == {trash: True}
        # Unread and unflag.
        key = client.apply_email_changes(inbox.id, key, [EmailChange(ids["read me"], read=False),
                                                         EmailChange(ids["flag me"], flagged=False)]).sync_key
        emails = upstream_emails(gateway, alice)
        assert emails["read me"]["keywords"] == {} and emails["flag me"]["keywords"] == {}
        after = client.sync_folder(inbox.id, key)
        assert not after.added and not after.changed and not after.deleted  # no echo
        key = after.sync_key

        # Folders: create, rename, move a message into it, delete it.
        folder = client.create_folder("Belege 2026")
        assert "Belege 2026" in _boxes(gateway, alice)
        client.update_folder(folder.id, "Belege – alt")
        boxes = _boxes(gateway, alice)
        assert "Belege 2026" not in boxes and "Belege – alt" in boxes
        new_id = client.move_item(ids["move me"], inbox.id, folder.id)
        assert new_id.startswith(f"{folder.id}:")
        assert upstream_emails(gateway, alice)["move me"]["mailboxIds"] == {boxes["Belege – alt"]["id"]: True}
        client.delete_folder(folder.id)
        assert "Belege – alt" not in _boxes(gateway, alice) and "move me" not in upstream_emails(gateway, alice)

        # A draft with an attachment, created once even when the same ClientId comes again.
        draft_key = client.sync_folder(drafts.id, "0").sync_key
        draft_key = client.sync_folder(drafts.id, draft_key).sync_key
        draft = EmailMessage()
        draft["To"], draft["Subject"] = bob, "Entwurf mit Anhang"
        draft.set_content("Noch nicht fertig – ünïcödé")
        pdf = bytes(range(256)) * 40
        draft.add_attachment(pdf, maintype="application", subtype="pdf", filename="angebot.pdf")
        added = client.create_email_draft(drafts.id, draft_key, draft, flagged=True, client_id="draft-1")
        assert added.status == "1" and added.server_id.startswith(f"{drafts.id}:")
        again = client.create_email_draft(drafts.id, added.sync_key, draft, client_id="draft-1")
        assert again.server_id == added.server_id
        stored = [e for e in upstream_emails(gateway, alice).values() if e["subject"] == "Entwurf mit Anhang"]
        assert len(stored) == 1 and stored[0]["keywords"].get("$draft") and stored[0]["keywords"].get("$flagged")
        assert not client.sync_folder(drafts.id, again.sync_key).added  # no echo of the draft

        # Send mail with an attachment: bob receives it, the attachment byte for byte.
        subject = f"Angebot {uuid.uuid4().hex[:6]}"
        mail = EmailMessage()
        mail["From"], mail["To"], mail["Subject"] = alice, bob, subject
        mail.set_content("Anbei das Angebot.")
        mail.add_attachment(pdf, maintype="application", subtype="pdf", filename="angebot.pdf")
        client.send_mail(mail, client_id="send-1")
        client.send_mail(mail, client_id="send-1")  # a retry sends nothing more
    assert len(relayed(gateway, subject)) == 1
    received = upstream_emails(gateway, bob)[subject]
    raw = httpx.get(f"{gateway.upstream}/jmap/download/{bob}/{received['blobId']}/m",
                    auth=(bob, bob.split("@")[0])).content
    got = BytesParser(policy=email.policy.default).parsebytes(raw)
    [part] = list(got.iter_attachments())
    assert part.get_filename() == "angebot.pdf" and part.get_content() == pdf
    assert subject in [e["subject"] for e in upstream_emails(gateway, alice).values()
                       if next(iter(e["mailboxIds"])) == _boxes(gateway, alice)["Sent"]["id"]]
