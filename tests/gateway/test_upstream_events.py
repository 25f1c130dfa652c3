"""eas_gateway.upstream_events: whose mailbox an upstream event is about, and which store (pure)."""

from __future__ import annotations

from eas_gateway.upstream_events import owner_of, store_of
from usm.push import DAV, MAIL


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


def test_cyrus_calendar_and_address_book_events_are_dav_the_rest_mail() -> None:
    """As Debian's Cyrus 3.6 sends them for a CalDAV and a CardDAV PUT (shortened)."""
    calendar = {"event": "MessageNew", "mailboxID": "pz7v5jk6jy0sfzgl9u48mli5", "vnd.cmu.mbtype": "c",
                "uri": "imap://localhost/user/fan1/%23calendars/Default%40example.com;UIDVALIDITY=1796036554/;UID=1",
                "user": "fan1@example.com"}
    book = {"event": "MailboxModseq", "vnd.cmu.mbtype": "a", "user": "",
            "uri": "imap://localhost/user/fan1/%23addressbooks/Default%40example.com;UIDVALIDITY=1796036559"}
    assert (owner_of(calendar), store_of(calendar)) == ("fan1@example.com", DAV)
    assert (owner_of(book), store_of(book)) == ("fan1@example.com", DAV)
    no_type = {"event": "MessageNew", "uri": "imap://localhost/user/fan1/%23calendars/Work%40example.com;UIDVALIDITY=3"}
    assert store_of(no_type) == DAV
    inbox = {"event": "MessageNew", "vnd.cmu.mbtype": "e",
             "uri": "imap://localhost/user/fan1%40example.com;UIDVALIDITY=1/;UID=9"}
    folder = {"event": "MessageNew", "uri": "imap://localhost/user/fan1/Calendars%20talk%40example.com;UIDVALIDITY=4"}
    assert store_of(inbox) == store_of(folder) == MAIL
    assert store_of({"user": "dave@example.org", "folder": "INBOX", "event": "MessageNew"}) == MAIL
