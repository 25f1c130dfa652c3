"""Meetings, pure: an iMIP invitation as an Email's MeetingRequest (golden: Horde's
invitation_one.eml and the MeetingRequest Horde made of it), GlobalObjId both ways, and
the user's answer written as their PARTSTAT."""

from __future__ import annotations

import base64
import email
from datetime import date
from email.message import Message
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from icalendar import Calendar
from lxml import etree

from eas_gateway.items import meeting
from eas_gateway.items.calendar import Shown

CORPUS = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "eas-corpus" / "horde-activesync"
A, M, M2 = "{AirSync:}", "{Email:}", "{Email2:}"


def _calendar_part(path: Path) -> str:
    parsed: Message = email.message_from_bytes(path.read_bytes())
    part = next(p for p in parsed.walk() if p.get_content_type() == "text/calendar")
    payload = part.get_payload(decode=True)
    assert isinstance(payload, bytes)
    return payload.decode()


def test_horde_invitation_becomes_the_meeting_request_horde_made_of_it() -> None:
    invitation = meeting.read(_calendar_part(CORPUS / "invitation_one.eml"))
    assert invitation is not None and invitation.message_class == "IPM.Schedule.Meeting.Request"
    data = etree.Element(A + "ApplicationData")
    meeting.meeting_request(data, invitation, Shown(14.1, ZoneInfo("UTC"), frozenset({"mike@theupstairsroom.com"})))
    ours = {etree.QName(e).localname: e.text for e in data.find(M + "MeetingRequest")}
    golden = etree.parse(str(CORPUS / "derived-wrapped" / "meeting_request_one.xml")).getroot()
    theirs = {etree.QName(e).localname.replace("DTStamp", "DtStamp"): e.text for e in golden}
    for name in ("AllDayEvent", "StartTime", "DtStamp", "EndTime", "InstanceType", "Location", "Organizer",
                 "ResponseRequested", "BusyStatus"):
        assert ours[name] == theirs[name], name
    assert ours["MeetingMessageType"] == "1"
    # Horde writes the UID's length as the data size; Exchange (below) and we the data's.
    mine, horde = base64.b64decode(ours["GlobalObjId"]), base64.b64decode(theirs["GlobalObjId"])
    assert mine[:36] == horde[:36] and mine[40:] == horde[40:]
    assert meeting.uid_of_global_object_id(ours["GlobalObjId"]) == "03au89vlc3j4k1l48j1t8eftvs@google.com"


# GlobalObjIds of real Exchange messages and the UIDs of their calendar events (Nacho Cove's tests).
EXCHANGE_VCAL = ("BAAAAIIA4AB0xbcQGoLgCAAAAAAAAAAAAAAAAAAAAAAAAAAAMwAAAHZDYWwtVWlkAQAAAHs4MTQxMkQzQy0yQTI0LTRFOUQt"
                 "QjIwRS0xMUY3QkJFOTI3OTl9AA==", "{81412D3C-2A24-4E9D-B20E-11F7BBE92799}")
EXCHANGE_OUTLOOK = ("BAAAAIIA4AB0xbcQGoLgCAfUCRDgQMnBJoXEAQAAAAAAAAAAEAAAAAvw7UtuTulOnjnjhns3jvM=",
                    "040000008200E00074C5B7101A82E00800000000E040C9C12685C4010000000000000000100000000BF0ED4B6E4E"
                    "E94E9E39E3867B378EF3")


@pytest.mark.parametrize(("goid", "uid"), [EXCHANGE_VCAL, EXCHANGE_OUTLOOK])
def test_global_object_ids_of_exchange_both_ways(goid: str, uid: str) -> None:
    assert meeting.uid_of_global_object_id(goid) == uid
    raw = base64.b64decode(goid)
    instance = raw[16:20]  # an instance's id carries its date (2004-09-16 in the Outlook one)
    day = None if instance == b"\0" * 4 else date(
        int.from_bytes(instance[:2], "big"), instance[2], instance[3])
    assert meeting.global_object_id(uid, day) == raw


CANCEL = ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nMETHOD:CANCEL\r\nBEGIN:VEVENT\r\nUID:u-1\r\n"
          "DTSTAMP:20261101T000000Z\r\nDTSTART;TZID=Europe/Berlin:20261210T100000\r\n"
          "DTEND;TZID=Europe/Berlin:20261210T110000\r\nRRULE:FREQ=WEEKLY;COUNT=4\r\nSEQUENCE:2\r\n"
          "ORGANIZER:mailto:carol@elsewhere.org\r\nATTENDEE;RSVP=TRUE:mailto:Alice@Example.com\r\n"
          "STATUS:CANCELLED\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n")


def test_a_cancellation_of_a_series_in_its_zone() -> None:
    invitation = meeting.read(CANCEL)
    assert invitation is not None and invitation.message_class == "IPM.Schedule.Meeting.Canceled"
    data = etree.Element(A + "ApplicationData")
    meeting.meeting_request(data, invitation, Shown(16.1, ZoneInfo("UTC"), frozenset({"alice@example.com"})))
    request = data.find(M + "MeetingRequest")
    assert request.findtext(M + "StartTime") == "2026-12-10T09:00:00.000Z"
    assert request.findtext(M + "InstanceType") == "1"
    assert request.findtext(M + "ResponseRequested") == "0"  # a cancellation asks nothing
    assert request.findtext(f"{M}Recurrences/{M}Recurrence/{M}Type") == "1"
    assert request.findtext(f"{M}Recurrences/{M}Recurrence/{M}Occurrences") == "4"
    assert request.findtext(M2 + "MeetingMessageType") == "2"


def test_other_methods_are_no_meeting_request_and_garbage_is_refused() -> None:
    assert meeting.read(CANCEL.replace("METHOD:CANCEL", "METHOD:REPLY")) is None
    with pytest.raises(meeting.MeetingError):
        meeting.read("BEGIN:VCALENDAR\r\nMETHOD:REQUEST\r\nEND:VCALENDAR\r\n")


@pytest.mark.parametrize(("response", "partstat"), [(1, "ACCEPTED"), (2, "TENTATIVE"), (3, "DECLINED")])
def test_the_answer_is_the_users_partstat_and_the_method_goes(response: int, partstat: str) -> None:
    text, uid = meeting.respond(CANCEL.replace("METHOD:CANCEL", "METHOD:REQUEST"), frozenset({"alice@example.com"}),
                                response, server_replies=False)
    assert uid == "u-1"
    calendar = Calendar.from_ical(text)
    assert "METHOD" not in calendar
    attendee = calendar.walk("VEVENT")[0]["ATTENDEE"]
    assert attendee.params["PARTSTAT"] == partstat and "RSVP" not in attendee.params
    # The phone mails the reply: the server is told not to (RFC 6638 SCHEDULE-AGENT=CLIENT).
    assert calendar.walk("VEVENT")[0]["ORGANIZER"].params["SCHEDULE-AGENT"] == "CLIENT"
    again, _ = meeting.respond(text, frozenset({"alice@example.com"}), response, server_replies=True)
    assert "SCHEDULE-AGENT" not in Calendar.from_ical(again).walk("VEVENT")[0]["ORGANIZER"].params
    with pytest.raises(meeting.MeetingError):
        meeting.respond(CANCEL, frozenset({"bob@example.com"}), response, server_replies=True)


SERIES = ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nBEGIN:VEVENT\r\nUID:s-1\r\n"
          "DTSTAMP:20261101T000000Z\r\nDTSTART;TZID=Europe/Berlin:20261207T100000\r\n"
          "DTEND;TZID=Europe/Berlin:20261207T110000\r\nRRULE:FREQ=WEEKLY;COUNT=5\r\nSUMMARY:Weekly\r\n"
          "ORGANIZER:mailto:carol@elsewhere.org\r\nATTENDEE;RSVP=TRUE;PARTSTAT=NEEDS-ACTION:mailto:alice@example.com\r\n"
          "END:VEVENT\r\nEND:VCALENDAR\r\n")


def test_an_answer_for_one_occurrence_goes_into_its_override_only() -> None:
    from datetime import UTC, datetime

    second = datetime(2026, 12, 14, 9, 0, tzinfo=UTC)  # 10:00 in Berlin
    text, _ = meeting.respond(SERIES, frozenset({"alice@example.com"}), 3, server_replies=True, instance=second)
    events = Calendar.from_ical(text).walk("VEVENT")
    master = next(e for e in events if "RECURRENCE-ID" not in e)
    override = next(e for e in events if "RECURRENCE-ID" in e)
    assert master["ATTENDEE"].params["PARTSTAT"] == "NEEDS-ACTION"  # the series is not answered
    assert override["ATTENDEE"].params["PARTSTAT"] == "DECLINED"
    assert override["RECURRENCE-ID"].dt == second and override["DTEND"].dt - override["DTSTART"].dt == \
        master["DTEND"].dt - master["DTSTART"].dt
    assert "RRULE" not in override and str(override["SUMMARY"]) == "Weekly"
    again, _ = meeting.respond(text, frozenset({"alice@example.com"}), 1, server_replies=True, instance=second)
    assert len(Calendar.from_ical(again).walk("VEVENT")) == 2  # the same override, answered again
    with pytest.raises(meeting.MeetingError):  # no occurrence starts then
        meeting.respond(SERIES, frozenset({"alice@example.com"}), 1, server_replies=True,
                        instance=datetime(2026, 12, 15, 9, 0, tzinfo=UTC))
