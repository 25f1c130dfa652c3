#!/usr/bin/env python3
"""Give the demo users something to see on a phone: a few mails, contacts, events (one
recurring, one all-day, one meeting another user organizes), tasks and notes.

    demo-data.py --upstream http://127.0.0.1:8580 --lmtp DIR/socket/lmtp --marker DIR/demo-seeded

Idempotent: DAV objects are PUT with If-None-Match (a second run finds them there), and
the mails are delivered once (the marker file records it). Used by scripts/serve.sh.
"""

from __future__ import annotations

import argparse
import smtplib
import sys
from datetime import UTC, date, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

import httpx

USERS = {"alice@example.com": "alice", "bob@example.com": "bob"}  # scripts/cyrus-upstream.sh's


def _event(uid: str, summary: str, lines: list[str]) -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return "\r\n".join(["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//eas-gateway demo//EN", "BEGIN:VEVENT",
                        f"UID:{uid}", f"DTSTAMP:{stamp}", f"SUMMARY:{summary}", *lines, "END:VEVENT",
                        "END:VCALENDAR", ""])


def _objects(user: str, users: dict[str, str]) -> dict[str, tuple[str, str]]:
    """{name: (kind, text)} for one user."""
    monday = date.today() + timedelta(days=(7 - date.today().weekday()) % 7 or 7)
    friday = monday + timedelta(days=4)
    name = user.split("@")[0]
    other = next((u for u in users if u != user), user)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return {
        "standup.ics": ("calendar", _event(f"demo-standup-{name}", "Team stand-up", [
            f"DTSTART;TZID=Europe/Berlin:{monday:%Y%m%d}T093000", f"DTEND;TZID=Europe/Berlin:{monday:%Y%m%d}T094500",
            "RRULE:FREQ=WEEKLY;BYDAY=MO,WE,FR", "LOCATION:Room 4", "BEGIN:VALARM", "ACTION:DISPLAY",
            "DESCRIPTION:Stand-up", "TRIGGER:-PT10M", "END:VALARM"])),
        "holiday.ics": ("calendar", _event(f"demo-holiday-{name}", "Company holiday", [
            f"DTSTART;VALUE=DATE:{friday:%Y%m%d}", f"DTEND;VALUE=DATE:{friday + timedelta(days=1):%Y%m%d}",
            "TRANSP:TRANSPARENT"])),
        "review.ics": ("calendar", _event(f"demo-review-{name}", f"Design review ({other.split('@')[0]} invites)", [
            f"DTSTART:{monday + timedelta(days=1):%Y%m%d}T130000Z",
            f"DTEND:{monday + timedelta(days=1):%Y%m%d}T140000Z",
            f"ORGANIZER;CN={other.split('@')[0].title()}:mailto:{other}",
            f"ATTENDEE;CN={other.split('@')[0].title()};PARTSTAT=ACCEPTED:mailto:{other}",
            f"ATTENDEE;CN={name.title()};PARTSTAT=NEEDS-ACTION;RSVP=TRUE;SCHEDULE-AGENT=CLIENT:mailto:{user}"])),
        "taxes.ics": ("tasks", "\r\n".join([
            "BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//eas-gateway demo//EN", "BEGIN:VTODO",
            f"UID:demo-taxes-{name}", f"DTSTAMP:{stamp}", "SUMMARY:File the tax return", "PRIORITY:1",
            f"DUE;VALUE=DATE:{friday:%Y%m%d}", "END:VTODO", "END:VCALENDAR", ""])),
        "milk.ics": ("tasks", "\r\n".join([
            "BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//eas-gateway demo//EN", "BEGIN:VTODO",
            f"UID:demo-milk-{name}", f"DTSTAMP:{stamp}", "SUMMARY:Buy milk", "STATUS:COMPLETED",
            f"COMPLETED:{stamp}", "END:VTODO", "END:VCALENDAR", ""])),
        "ideas.ics": ("notes", "\r\n".join([
            "BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//eas-gateway demo//EN", "BEGIN:VJOURNAL",
            f"UID:demo-ideas-{name}", f"DTSTAMP:{stamp}", f"DTSTART;VALUE=DATE:{date.today():%Y%m%d}",
            "SUMMARY:Ideas", "DESCRIPTION:Sync every class.\\nPush in under a second.", "END:VJOURNAL",
            "END:VCALENDAR", ""])),
        "ada.vcf": ("contacts", "\r\n".join([
            "BEGIN:VCARD", "VERSION:3.0", f"UID:demo-ada-{name}", "FN:Ada Lovelace", "N:Lovelace;Ada;;;",
            "ORG:Analytical Engines", "EMAIL;TYPE=INTERNET:ada@example.org", "TEL;TYPE=CELL:+44 20 7946 0000",
            "BDAY:1815-12-10", "END:VCARD", ""])),
        "colleague.vcf": ("contacts", "\r\n".join([
            "BEGIN:VCARD", "VERSION:3.0", f"UID:demo-colleague-{name}", f"FN:{other.split('@')[0].title()}",
            f"N:;{other.split('@')[0].title()};;;", f"EMAIL;TYPE=INTERNET:{other}", "END:VCARD", ""])),
    }


def _collection(client: httpx.Client, user: str, password: str, kind: str) -> str:
    home = f"/dav/addressbooks/user/{user}/Default/" if kind == "contacts" else f"/dav/calendars/user/{user}/Default/"
    # Cyrus makes a user's Default collections on the first DAV request; ask once to be sure.
    client.request("PROPFIND", home, auth=(user, password), headers={"Depth": "0"})
    return home


def seed(upstream: str, lmtp: Path, marker: Path, users: dict[str, str] | None = None) -> None:
    users = users or USERS
    with httpx.Client(base_url=upstream, timeout=30) as client:
        for user, password in users.items():
            for name, (kind, text) in _objects(user, users).items():
                path = _collection(client, user, password, kind) + name
                answer = client.put(path, content=text.encode(), auth=(user, password), headers={
                    "If-None-Match": "*",
                    "Content-Type": "text/vcard" if kind == "contacts" else "text/calendar"})
                if answer.status_code not in (201, 204, 412):
                    sys.exit(f"demo-data: PUT {path}: {answer.status_code} {answer.text[:200]}")
    if marker.exists():
        return
    with smtplib.LMTP(str(lmtp)) as server:
        for user in users:
            for subject, text in (("Welcome to eas-gateway", "Mail, calendars, contacts, tasks and notes, with push."),
                                  ("Lunch on Friday?", "The usual place at noon?"),
                                  ("Quarterly figures", "Attached are the figures for the quarter.")):
                message = EmailMessage()
                message["From"] = "demo@example.com"
                message["To"] = user
                message["Subject"] = subject
                message.set_content(text)
                server.send_message(message)
    marker.write_text("seeded\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--upstream", required=True)
    parser.add_argument("--lmtp", required=True, type=Path)
    parser.add_argument("--marker", required=True, type=Path)
    parser.add_argument("--user", action="append", default=[], metavar="NAME@DOMAIN:PASSWORD",
                        help="a user to seed (repeatable); default: alice and bob")
    args = parser.parse_args()
    users = dict(u.split(":", 1) for u in args.user) if args.user else None
    seed(args.upstream, args.lmtp, args.marker, users)


if __name__ == "__main__":
    main()
