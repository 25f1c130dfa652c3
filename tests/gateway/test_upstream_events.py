"""eas_gateway.upstream_events.owner_of: whose mailbox an upstream event is about (pure)."""

from __future__ import annotations

from eas_gateway.upstream_events import owner_of


def test_cyrus_events_name_the_mailbox_owner_not_the_actor() -> None:
    new = {"event": "MessageNew", "uri": "imap://localhost/user/alice%40example.com;UIDVALIDITY=17/;UID=1",
           "user": "alice@example.com"}
    assert owner_of(new) == "alice@example.com"
    sent = {"event": "MailboxModseq", "uri": "imap://localhost/user/alice/Sent%40example.com;UIDVALIDITY=18",
            "user": ""}
    assert owner_of(sent) == "alice@example.com"
    shared = {"event": "FlagsSet", "uri": "imap://localhost/user/bob/Team%40example.com;UIDVALIDITY=2/;UID=3",
              "user": "alice@example.com"}  # alice flagged a message in bob's folder: bob's phones look
    assert owner_of(shared) == "bob@example.com"
    plain = {"event": "MessageNew", "uri": "imap://mail/user/carol;UIDVALIDITY=1/;UID=1"}
    assert owner_of(plain) == "carol"


def test_dovecot_ox_events_and_events_without_a_user() -> None:
    assert owner_of({"user": "dave@example.org", "folder": "INBOX", "event": "MessageNew"}) == "dave@example.org"
    assert owner_of({"event": "Login"}) is None
    assert owner_of({"uri": "imap://localhost/shared/news;UIDVALIDITY=1", "user": ""}) is None
