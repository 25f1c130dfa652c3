"""Meetings end to end: an iMIP invitation in the Inbox is an Email with MeetingRequest
data; MeetingResponse puts the answer in the calendar (Cyrus and Radicale); the reply to
the organizer is sent once — by the phone below 16.0 (the gateway writes with
Schedule-Reply: F, so Cyrus sends nothing), by Cyrus' scheduling at 16.1 when the phone
asks (SendResponse) — counted at Cyrus' SMTP relay, and a retried MeetingResponse sends
nothing again. An invitation between two users of the same Cyrus arrives in the
invitee's calendar, and the answer reaches the organizer's copy."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage

import pytest
from icalendar import Calendar
from lxml import etree

import wbxml
from tests.conftest import RunningGateway
from tests.gateway.helpers import Phone, deliver, new_user
from tests.gateway.test_calendar import calendar_phone, default_calendar, objects, put, sent_to

pytestmark = [pytest.mark.postgres, pytest.mark.upstream]

A, M, M2, MR = "{AirSync:}", "{Email:}", "{Email2:}", "{MeetingResponse:}"


def invitation(uid: str, attendee: str, *, organizer: str = "carol@elsewhere.org", method: str = "REQUEST") -> str:
    start = (datetime.now(UTC) + timedelta(days=5)).replace(hour=14, minute=0, second=0, microsecond=0)
    f = "%Y%m%dT%H%M%SZ"
    return (f"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//elsewhere//EN\r\nMETHOD:{method}\r\nBEGIN:VEVENT\r\n"
            f"UID:{uid}\r\nDTSTAMP:{datetime.now(UTC):{f}}\r\nDTSTART:{start:{f}}\r\n"
            f"DTEND:{start + timedelta(hours=1):{f}}\r\nSUMMARY:Budget review\r\nLOCATION:Room 9\r\n"
            f"ORGANIZER;CN=Carol:mailto:{organizer}\r\n"
            f"ATTENDEE;PARTSTAT=ACCEPTED:mailto:{organizer}\r\n"
            f"ATTENDEE;PARTSTAT=NEEDS-ACTION;RSVP=TRUE:mailto:{attendee}\r\nSEQUENCE:0\r\n"
            "END:VEVENT\r\nEND:VCALENDAR\r\n")


def imip(uid: str, attendee: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = "Carol <carol@elsewhere.org>"
    message["To"] = attendee
    message["Subject"] = "Invitation: Budget review"
    message.set_content("You are invited.")
    message.add_alternative(invitation(uid, attendee), subtype="calendar", params={"method": "REQUEST"})
    return message


def respond(phone: Phone, collection_id: str, request_id: str, response: int, *,
            send: bool = False) -> etree._Element:
    root = etree.Element(MR + "MeetingResponse")
    request = etree.SubElement(root, MR + "Request")
    etree.SubElement(request, MR + "UserResponse").text = str(response)
    etree.SubElement(request, MR + "CollectionId").text = collection_id
    etree.SubElement(request, MR + "RequestId").text = request_id
    if send:
        etree.SubElement(request, MR + "SendResponse")
    return wbxml.decode(phone.post("MeetingResponse", root).content)


def _settle() -> None:
    time.sleep(1.0)  # Cyrus mails while it answers the PUT; the relay writes the copy at once


def partstat(text: str, address: str) -> str:
    event = Calendar.from_ical(text).walk("VEVENT")[0]
    attendees = event.get("ATTENDEE")
    for attendee in attendees if isinstance(attendees, list) else [attendees]:
        if str(attendee).lower() == f"mailto:{address}":
            return str(attendee.params.get("PARTSTAT", ""))
    raise AssertionError(f"{address} is no attendee")


@pytest.mark.parametrize("version", ["14.1", "16.1"])
def test_an_imip_invitation_is_a_meeting_request_and_the_answer_is_sent_once(pim: RunningGateway,
                                                                              version: str) -> None:
    user, phone, calendar_folder, calendar = calendar_phone(pim, version)
    uid = f"budget-{user}"
    deliver(pim, user, [imip(uid, user)])
    _, adds = phone.sync_all(phone.inbox)
    data = adds[0].find(A + "ApplicationData")
    assert data.findtext(M + "MessageClass") == "IPM.Schedule.Meeting.Request"
    request = data.find(M + "MeetingRequest")
    assert request.findtext(M + "Organizer") == "carol@elsewhere.org"
    assert request.findtext(M + "ResponseRequested") == "1"
    assert request.findtext(M + "GlobalObjId")
    location = request.findtext("{AirSyncBase:}Location/{AirSyncBase:}DisplayName") if version == "16.1" \
        else request.findtext(M + "Location")
    assert location == "Room 9"

    before = len(sent_to(pim)) if pim.dav == "" else 0
    answer = respond(phone, phone.inbox, adds[0].findtext(A + "ServerId"), 1, send=version == "16.1")
    assert answer.findtext(f"{MR}Result/{MR}Status") == "1", etree.tostring(answer)
    again = respond(phone, phone.inbox, adds[0].findtext(A + "ServerId"), 1, send=version == "16.1")
    assert again.findtext(f"{MR}Result/{MR}Status") == "1"
    stored = [t for t in objects(pim, user, calendar).values() if uid in t]
    assert len(stored) == 1 and partstat(stored[0], user) == "ACCEPTED"
    assert "METHOD" not in Calendar.from_ical(stored[0])
    if pim.dav == "":  # Cyrus schedules; Radicale does not mail at all
        _settle()
        replies = sent_to(pim)[before:]
        # 14.1: the phone mails its reply (SendMail); the server must not. 16.1: the server, once.
        assert replies == ([] if version == "14.1" else [(["carol@elsewhere.org"], "REPLY")])
    # The calendar folder shows the accepted meeting.
    _, events = phone.sync_all(calendar_folder)
    assert [e.findtext(f"{A}ApplicationData/{{Calendar:}}MeetingStatus") for e in events] == ["3"]


def test_declining_at_16_mails_the_organizer_once_and_keeps_nothing(gateway: RunningGateway) -> None:
    user, phone, _, calendar = calendar_phone(gateway, "16.1")
    uid = f"decline-{user}"
    deliver(gateway, user, [imip(uid, user)])
    _, adds = phone.sync_all(phone.inbox)
    before = len(sent_to(gateway))
    answer = respond(phone, phone.inbox, adds[0].findtext(A + "ServerId"), 3, send=True)
    assert answer.findtext(f"{MR}Result/{MR}Status") == "1"
    assert answer.find(f"{MR}Result/{MR}CalendarId") is None
    _settle()
    assert sent_to(gateway)[before:] == [(["carol@elsewhere.org"], "REPLY")]
    assert not [t for t in objects(gateway, user, calendar).values() if uid in t]


def test_an_invitation_between_users_of_one_server_is_answered_in_the_calendar(gateway: RunningGateway) -> None:
    organizer, attendee = new_user(gateway), new_user(gateway)
    Phone(gateway, organizer)  # the organizer's first FolderSync (Cyrus makes the Default calendar)
    _, phone, calendar_folder, _ = calendar_phone(gateway, "16.1", user=attendee)
    own = default_calendar(gateway, organizer)
    uid = f"local-{attendee}"
    put(gateway, organizer, own + "local.ics", invitation(uid, attendee, organizer=organizer).replace(
        "METHOD:REQUEST\r\n", ""))
    _, events = phone.sync_all(calendar_folder)
    assert len(events) == 1
    data = events[0].find(A + "ApplicationData")
    assert data.findtext("{Calendar:}MeetingStatus") == "3" and data.findtext("{Calendar:}ResponseRequested") == "1"
    answer = respond(phone, calendar_folder, events[0].findtext(A + "ServerId"), 2, send=True)
    assert answer.findtext(f"{MR}Result/{MR}Status") == "1"
    assert answer.findtext(f"{MR}Result/{MR}CalendarId") == events[0].findtext(A + "ServerId")
    deadline = time.monotonic() + 5
    while partstat(objects(gateway, organizer, own)[own + "local.ics"], attendee) != "TENTATIVE":
        assert time.monotonic() < deadline, "the organizer's copy never got the answer"
        time.sleep(0.2)


def test_bad_requests_answer_a_status_and_change_nothing(gateway: RunningGateway) -> None:
    user, phone, calendar_folder, calendar = calendar_phone(gateway, "14.1")
    plain = EmailMessage()
    plain["From"], plain["To"], plain["Subject"] = "x@elsewhere.org", user, "no meeting"
    plain.set_content("hello")
    deliver(gateway, user, [plain])
    _, adds = phone.sync_all(phone.inbox)
    server_id = adds[0].findtext(A + "ServerId")
    assert respond(phone, phone.inbox, server_id, 1).findtext(f"{MR}Result/{MR}Status") == "2"
    assert respond(phone, phone.inbox, server_id, 9).findtext(f"{MR}Result/{MR}Status") == "2"
    assert respond(phone, phone.inbox, "999:1", 1).findtext(f"{MR}Result/{MR}Status") == "2"
    assert respond(phone, "²", server_id, 1).findtext(f"{MR}Result/{MR}Status") == "2"
    assert objects(gateway, user, calendar) == {}


def test_at_16_an_answer_for_one_occurrence_is_that_occurrences_only(gateway: RunningGateway) -> None:
    organizer, attendee = new_user(gateway), new_user(gateway)
    Phone(gateway, organizer)
    _, phone, calendar_folder, calendar = calendar_phone(gateway, "16.1", user=attendee)
    own = default_calendar(gateway, organizer)
    start = (datetime.now(UTC) + timedelta(days=3)).replace(hour=9, minute=0, second=0, microsecond=0)
    f = "%Y%m%dT%H%M%SZ"
    put(gateway, organizer, own + "weekly.ics", (
        f"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nBEGIN:VEVENT\r\nUID:weekly-{attendee}\r\n"
        f"DTSTAMP:{start:{f}}\r\nDTSTART:{start:{f}}\r\nDTEND:{start + timedelta(hours=1):{f}}\r\n"
        f"RRULE:FREQ=WEEKLY;COUNT=4\r\nSUMMARY:Weekly sync\r\nORGANIZER:mailto:{organizer}\r\n"
        f"ATTENDEE;PARTSTAT=ACCEPTED:mailto:{organizer}\r\n"
        f"ATTENDEE;PARTSTAT=NEEDS-ACTION;RSVP=TRUE:mailto:{attendee}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"))
    _, events = phone.sync_all(calendar_folder)
    second = start + timedelta(weeks=1)
    root = etree.Element(MR + "MeetingResponse")
    request = etree.SubElement(root, MR + "Request")
    etree.SubElement(request, MR + "UserResponse").text = "1"
    etree.SubElement(request, MR + "CollectionId").text = calendar_folder
    etree.SubElement(request, MR + "RequestId").text = events[0].findtext(A + "ServerId")
    etree.SubElement(request, MR + "InstanceId").text = second.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    etree.SubElement(request, MR + "SendResponse")
    answer = wbxml.decode(phone.post("MeetingResponse", root).content)
    assert answer.findtext(f"{MR}Result/{MR}Status") == "1", etree.tostring(answer)
    mine = Calendar.from_ical(next(t for t in objects(gateway, attendee, calendar).values() if "Weekly" in t))
    by_instance = {e.get("RECURRENCE-ID").dt if "RECURRENCE-ID" in e else None: e for e in mine.walk("VEVENT")}
    assert set(by_instance) == {None, second}
    assert partstat(by_instance[second].to_ical().decode().replace("BEGIN:VEVENT", "BEGIN:VCALENDAR\r\nBEGIN:VEVENT")
                    .replace("END:VEVENT", "END:VEVENT\r\nEND:VCALENDAR"), attendee) == "ACCEPTED"
    # Cyrus scheduled the reply for that occurrence (SCHEDULE-STATUS 1.2: delivered to the organizer;
    # Cyrus 3.6 then keeps the organizer's copy as it is when it has no override for the occurrence).
    assert str(by_instance[second]["ORGANIZER"].params.get("SCHEDULE-STATUS", "")).startswith("1.")
    assert "SCHEDULE-STATUS" not in by_instance[None]["ORGANIZER"].params  # nothing for the series
    assert partstat(mine.to_ical().decode(), attendee) == "NEEDS-ACTION"  # the series is not answered


def test_at_16_a_new_time_proposed_goes_to_the_organizer_once(gateway: RunningGateway) -> None:
    user, phone, _, _ = calendar_phone(gateway, "16.1")
    uid = f"counter-{user}"
    deliver(gateway, user, [imip(uid, user)])
    _, adds = phone.sync_all(phone.inbox)
    root = etree.Element(MR + "MeetingResponse")
    request = etree.SubElement(root, MR + "Request")
    etree.SubElement(request, MR + "UserResponse").text = "2"
    etree.SubElement(request, MR + "CollectionId").text = phone.inbox
    etree.SubElement(request, MR + "RequestId").text = adds[0].findtext(A + "ServerId")
    send = etree.SubElement(request, MR + "SendResponse")
    later = (datetime.now(UTC) + timedelta(days=6)).replace(hour=16, minute=0, second=0, microsecond=0)
    etree.SubElement(send, MR + "ProposedStartTime").text = f"{later:%Y%m%dT%H%M%SZ}"
    etree.SubElement(send, MR + "ProposedEndTime").text = f"{later + timedelta(hours=1):%Y%m%dT%H%M%SZ}"
    before = len(sent_to(gateway))
    for _ in range(2):  # the second time: the phone lost the answer
        answer = wbxml.decode(phone.post("MeetingResponse", root).content)
        assert answer.findtext(f"{MR}Result/{MR}Status") == "1", etree.tostring(answer)
    _settle()
    sent = sent_to(gateway)[before:]
    assert sorted(sent) == [(["carol@elsewhere.org"], "COUNTER"), (["carol@elsewhere.org"], "REPLY")]
