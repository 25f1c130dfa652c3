"""Calendar end to end, on Cyrus' CalDAV and on Radicale, with a raw EAS phone at
14.1 and at 16.1 (pyactivesync has no Calendar code page): events PUT upstream arrive
with exact UTC times, the blob of their zone, recurrence and exceptions; the phone's
adds, changes and deletes land in CalDAV exactly once, and a rename of a recurring
event keeps its RRULE, EXDATEs and overrides as they were; FilterType keeps a series
whose occurrences reach the window; MoveItems keeps the UID (Cyrus wants it once per
user); who mails the attendees is counted with the SMTP relay's record."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from icalendar import Calendar
from lxml import etree

import wbxml
from eas_gateway.items import timezone
from tests.conftest import CYRUS_DIRS, RunningGateway
from tests.gateway.helpers import Phone, collection, folder_sync, new_user, password
from usm.upstream import Credentials
from usm.upstream.dav import DavUpstream
from usm.upstream.dav_store import CALENDAR

pytestmark = [pytest.mark.postgres, pytest.mark.upstream]

A, C, B, F, M = "{AirSync:}", "{Calendar:}", "{AirSyncBase:}", "{FolderHierarchy:}", "{Move:}"

SERIES = """BEGIN:VCALENDAR\r
VERSION:2.0\r
PRODID:-//test//EN\r
BEGIN:VTIMEZONE\r
TZID:America/New_York\r
BEGIN:DAYLIGHT\r
TZOFFSETFROM:-0500\r
TZOFFSETTO:-0400\r
TZNAME:EDT\r
DTSTART:19700308T020000\r
RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=2SU\r
END:DAYLIGHT\r
BEGIN:STANDARD\r
TZOFFSETFROM:-0400\r
TZOFFSETTO:-0500\r
TZNAME:EST\r
DTSTART:19701101T020000\r
RRULE:FREQ=YEARLY;BYMONTH=11;BYDAY=1SU\r
END:STANDARD\r
END:VTIMEZONE\r
BEGIN:VEVENT\r
UID:{uid}\r
DTSTAMP:20260101T000000Z\r
DTSTART;TZID=America/New_York:{start}\r
DTEND;TZID=America/New_York:{end}\r
SUMMARY:Standup\r
LOCATION:Room 1\r
RRULE:{rule}\r
EXDATE;TZID=America/New_York:{exdate}\r
X-KEEP-ME:yes\r
END:VEVENT\r
BEGIN:VEVENT\r
UID:{uid}\r
DTSTAMP:20260101T000000Z\r
RECURRENCE-ID;TZID=America/New_York:{moved}\r
DTSTART;TZID=America/New_York:{moved_to}\r
DTEND;TZID=America/New_York:{moved_end}\r
SUMMARY:Standup (moved)\r
END:VEVENT\r
END:VCALENDAR\r
"""

SINGLE = ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:VEVENT\r\nUID:{uid}\r\n"
          "DTSTAMP:20260101T000000Z\r\n{times}SUMMARY:{summary}\r\n{extra}END:VEVENT\r\nEND:VCALENDAR\r\n")



def run(coroutine):  # type: ignore[no-untyped-def]
    return asyncio.run(coroutine)


async def _dav(gw: RunningGateway, user: str, action):  # type: ignore[no-untyped-def]
    client = DavUpstream(gw.dav_url)
    try:
        return await action(client, Credentials(user, password(user)))
    finally:
        await client.aclose()


def default_calendar(gw: RunningGateway, user: str) -> str:
    async def find(client: DavUpstream, creds: Credentials) -> str:
        calendars = [c for c in await client.collections(creds) if c.kind == CALENDAR]
        return sorted(calendars, key=lambda c: (not c.path.rstrip("/").endswith("/Default"), c.path))[0].path
    return str(run(_dav(gw, user, find)))


def put(gw: RunningGateway, user: str, path: str, text: str) -> str:
    return str(run(_dav(gw, user, lambda client, creds: client.create(creds, path, text, "text/calendar")))[0])


def objects(gw: RunningGateway, user: str, calendar: str) -> dict[str, str]:
    async def read(client: DavUpstream, creds: Credentials) -> dict[str, str]:
        _, etags = await client.listing(creds, calendar)
        return {p: o.data for p, o in (await client.multiget(creds, calendar, CALENDAR, list(etags))).items()}
    return dict(run(_dav(gw, user, read)))


def calendar_phone(gw: RunningGateway, version: str = "14.1", user: str | None = None) -> tuple[str, Phone, str, str]:
    """A user (new unless given), a phone, its default calendar folder, the calendar's path."""
    user = user or new_user(gw)
    phone = Phone(gw, user, version=version)  # on Radicale the gateway makes the calendar at this FolderSync
    assert "8" in phone.types, f"no default calendar folder in {phone.types}"
    return user, phone, phone.types["8"], default_calendar(gw, user)


def data(add: etree._Element) -> etree._Element:
    found = add.find(A + "ApplicationData")
    assert found is not None
    return found


def utc(text: str) -> datetime:
    return datetime.strptime(text, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)


def next_weekday(weekday: int, weeks: int = 1) -> datetime:
    """A date ``weeks`` weeks ahead on ``weekday`` (0 Monday), at midnight, naive."""
    today = datetime.now(UTC).replace(tzinfo=None, hour=0, minute=0, second=0, microsecond=0)
    return today + timedelta(days=(weekday - today.weekday()) % 7 + 7 * weeks)


def series(uid: str, rule: str = "FREQ=WEEKLY;BYDAY=MO") -> tuple[str, datetime]:
    start = next_weekday(0).replace(hour=9)
    f = "%Y%m%dT%H%M%S"
    return SERIES.format(uid=uid, start=start.strftime(f), end=(start + timedelta(minutes=30)).strftime(f),
                         rule=rule, exdate=(start + timedelta(weeks=1)).strftime(f),
                         moved=(start + timedelta(weeks=2)).strftime(f),
                         moved_to=(start + timedelta(weeks=2, hours=1)).strftime(f),
                         moved_end=(start + timedelta(weeks=2, hours=1, minutes=30)).strftime(f)), start


@pytest.mark.parametrize("version", ["14.1", "16.1"])
def test_events_made_upstream_arrive_with_exact_times_blob_recurrence_and_exceptions(
        pim: RunningGateway, version: str) -> None:
    user, phone, folder, calendar = calendar_phone(pim, version)
    text, start = series(f"standup-{user}")
    put(pim, user, calendar + "standup.ics", text)
    day = next_weekday(2, 2).date()
    put(pim, user, calendar + "holiday.ics", SINGLE.format(
        uid=f"holiday-{user}", summary="Holiday", extra="",
        times=f"DTSTART;VALUE=DATE:{day:%Y%m%d}\r\nDTEND;VALUE=DATE:{day + timedelta(days=1):%Y%m%d}\r\n"))
    _, adds = phone.sync_all(folder)
    by_subject = {data(a).findtext(C + "Subject"): data(a) for a in adds}
    assert set(by_subject) == {"Standup", "Holiday"}

    standup = by_subject["Standup"]
    new_york = ZoneInfo("America/New_York")
    assert utc(standup.findtext(C + "StartTime")) == start.replace(tzinfo=new_york)
    assert utc(standup.findtext(C + "EndTime")) == start.replace(tzinfo=new_york) + timedelta(minutes=30)
    blob = timezone.Blob.from_base64(standup.findtext(C + "Timezone"))
    assert timezone.to_zone(blob, start.year) == new_york or \
        all(timezone.to_zone(blob, start.year).utcoffset(start + timedelta(days=d)) ==
            new_york.utcoffset(start + timedelta(days=d)) for d in range(0, 366, 7))
    assert standup.findtext(f"{C}Recurrence/{C}Type") == "1"
    assert standup.findtext(f"{C}Recurrence/{C}DayOfWeek") == "2"  # Monday
    exceptions = standup.findall(f"{C}Exceptions/{C}Exception")
    deleted = [e for e in exceptions if e.findtext(C + "Deleted") == "1"]
    moved = [e for e in exceptions if e.findtext(C + "Deleted") != "1"]
    assert [utc(e.findtext(C + "ExceptionStartTime")) for e in deleted] == \
        [(start + timedelta(weeks=1)).replace(tzinfo=new_york)]
    assert [utc(e.findtext(C + "ExceptionStartTime")) for e in moved] == \
        [(start + timedelta(weeks=2)).replace(tzinfo=new_york)]
    assert moved[0].findtext(C + "Subject") == "Standup (moved)"
    assert utc(moved[0].findtext(C + "StartTime")) == (start + timedelta(weeks=2, hours=1)).replace(tzinfo=new_york)
    location = standup.findtext(f"{B}Location/{B}DisplayName") if version == "16.1" else \
        standup.findtext(C + "Location")
    assert location == "Room 1"

    holiday = by_subject["Holiday"]
    assert holiday.findtext(C + "AllDayEvent") == "1"
    if version == "16.1":  # the date at 00:00 and no Timezone (MS-ASCAL 2.2.2.42)
        assert holiday.find(C + "Timezone") is None
        assert holiday.findtext(C + "StartTime") == f"{day:%Y%m%d}T000000Z"
    else:  # local midnight of the users' zone (EAS_TIME_ZONE, UTC in the tests) with its blob
        assert holiday.findtext(C + "StartTime") == f"{day:%Y%m%d}T000000Z"
        assert timezone.Blob.from_base64(holiday.findtext(C + "Timezone")).bias == 0


def _add(client_id: str, fields: dict[str, str], *, version: str,
         attendees: list[tuple[str, str]] = ()) -> etree._Element:
    add = etree.Element(A + "Add")
    etree.SubElement(add, A + "ClientId").text = client_id
    app = etree.SubElement(add, A + "ApplicationData")
    for name, value in fields.items():
        if name == "Location" and version.startswith("16"):
            etree.SubElement(etree.SubElement(app, B + "Location"), B + "DisplayName").text = value
        elif name == "Body":
            body = etree.SubElement(app, B + "Body")
            etree.SubElement(body, B + "Type").text = "1"
            etree.SubElement(body, B + "Data").text = value
        else:
            etree.SubElement(app, C + name).text = value
    if attendees:
        holder = etree.SubElement(app, C + "Attendees")
        for email, name in attendees:
            one = etree.SubElement(holder, C + "Attendee")
            etree.SubElement(one, C + "Email").text = email
            etree.SubElement(one, C + "Name").text = name
            etree.SubElement(one, C + "AttendeeType").text = "1"
    return add


def _commands(*children: etree._Element) -> etree._Element:
    commands = etree.Element(A + "Commands")
    for child in children:
        commands.append(child)
    return commands


def _change(server_id: str, fields: dict[str, str], *, version: str,
            attendees: list[tuple[str, str]] = ()) -> etree._Element:
    change = _add("x", fields, version=version, attendees=attendees)
    change.tag = A + "Change"
    change.find(A + "ClientId").tag = A + "ServerId"
    change.find(A + "ServerId").text = server_id
    return change


def berlin_fields(subject: str, start: datetime, *, reminder: int | None = 15) -> dict[str, str]:
    berlin = ZoneInfo("Europe/Berlin")
    begin = start.replace(tzinfo=berlin)
    out = {"Timezone": timezone.for_zone(berlin, begin).to_base64(), "AllDayEvent": "0",
           "StartTime": begin.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ"),
           "EndTime": (begin + timedelta(hours=1)).astimezone(UTC).strftime("%Y%m%dT%H%M%SZ"),
           "Subject": subject, "Location": "Cafe", "BusyStatus": "2", "Sensitivity": "0", "MeetingStatus": "0"}
    if reminder is not None:
        out["Reminder"] = str(reminder)
    return out


@pytest.mark.parametrize("version", ["14.1", "16.1"])
def test_the_phone_adds_changes_and_deletes_events_exactly_once(pim: RunningGateway, version: str) -> None:
    user, phone, folder, calendar = calendar_phone(pim, version)
    key, _ = phone.sync_all(folder)
    start = next_weekday(3).replace(hour=15)
    add = _add("phone-1", berlin_fields("Dentist", start) | {"Body": "bring the card"}, version=version)
    old_key = key
    tree = phone.sync(collection(folder, key, commands=_commands(add)))
    status = tree.findtext(f".//{A}Responses/{A}Add/{A}Status")
    assert status == "1", etree.tostring(tree)
    server_id = tree.findtext(f".//{A}Responses/{A}Add/{A}ServerId")
    # The answer was lost: the phone sends the same Add again with the old key.
    again = phone.sync(collection(folder, old_key, commands=_commands(add)))
    assert again.findtext(f".//{A}Responses/{A}Add/{A}ServerId") == server_id
    stored = objects(pim, user, calendar)
    assert len(stored) == 1, stored
    event = Calendar.from_ical(next(iter(stored.values()))).walk("VEVENT")[0]
    assert event["DTSTART"].dt == start.replace(tzinfo=ZoneInfo("Europe/Berlin"))
    assert str(event["DTSTART"].dt.tzinfo) == "Europe/Berlin"
    assert (str(event["SUMMARY"]), str(event["LOCATION"]), str(event["DESCRIPTION"])) == \
        ("Dentist", "Cafe", "bring the card")
    assert event.walk("VALARM")[0]["TRIGGER"].dt == timedelta(minutes=-15)

    key = again.findtext(f".//{A}SyncKey")
    tree = phone.sync(collection(folder, key, commands=_commands(
        _change(server_id, berlin_fields("Dentist (moved)", start + timedelta(days=1), reminder=30),
                version=version))))
    assert tree.findtext(f".//{A}Responses/{A}Change/{A}Status") in (None, "1"), etree.tostring(tree)
    key = tree.findtext(f".//{A}SyncKey")
    stored = objects(pim, user, calendar)
    event = Calendar.from_ical(next(iter(stored.values()))).walk("VEVENT")[0]
    assert str(event["SUMMARY"]) == "Dentist (moved)"
    assert event["DTSTART"].dt == (start + timedelta(days=1)).replace(tzinfo=ZoneInfo("Europe/Berlin"))
    assert str(event["DESCRIPTION"]) == "bring the card"  # not sent with the change: kept
    assert event.walk("VALARM")[0]["TRIGGER"].dt == timedelta(minutes=-30)
    # Its own change does not come back to the phone.
    tree = phone.sync(collection(folder, key))
    assert tree is None or not list(tree.iter(A + "Change"))
    key = tree.findtext(f".//{A}SyncKey") if tree is not None else key

    delete = etree.Element(A + "Delete")
    etree.SubElement(delete, A + "ServerId").text = server_id
    tree = phone.sync(collection(folder, key, commands=_commands(delete)))
    assert tree.findtext(f".//{A}Status") == "1"
    assert objects(pim, user, calendar) == {}


def test_renaming_a_recurring_event_keeps_its_rule_exdates_and_overrides(pim: RunningGateway) -> None:
    """The upstream rule is one EAS cannot say (two days of the month): the phone sees the
    nearest pattern, sends it back with its rename, and the stored rule stays as it was."""
    user, phone, folder, calendar = calendar_phone(pim)
    text, _ = series(f"rule-{user}", rule="FREQ=MONTHLY;BYMONTHDAY=1,15;COUNT=20")
    path = calendar + "rule.ics"
    put(pim, user, path, text)
    before = objects(pim, user, calendar)[path]  # as the server keeps it (Cyrus rewrites with libical)
    key, adds = phone.sync_all(folder)
    shown = data(adds[0])
    change = etree.Element(A + "Change")
    etree.SubElement(change, A + "ServerId").text = adds[0].findtext(A + "ServerId")
    app = etree.SubElement(change, A + "ApplicationData")
    for element in shown:  # what a phone does: everything it has, one field edited
        app.append(element)
    app.find(C + "Subject").text = "Standup, renamed"
    tree = phone.sync(collection(folder, key, commands=_commands(change)))
    assert tree.findtext(f".//{A}Responses/{A}Change/{A}Status") in (None, "1")
    after = objects(pim, user, calendar)[path]

    def lines(ical: str, prefix: str) -> list[str]:
        unfolded = ical.replace("\r\n", "\n").replace("\n ", "")  # XML (multiget) gives LF
        return [line for line in unfolded.split("\n") if line.startswith(prefix)]
    for prefix in ("RRULE", "EXDATE", "RECURRENCE-ID", "X-KEEP-ME"):
        assert lines(after, prefix) == lines(before, prefix), prefix
    assert lines(after, "RRULE:FREQ=MONTHLY") == lines(before, "RRULE:FREQ=MONTHLY") != []
    assert lines(after, "SUMMARY") == ["SUMMARY:Standup\\, renamed", "SUMMARY:Standup (moved)"] or \
        sorted(lines(after, "SUMMARY")) == sorted(["SUMMARY:Standup\\, renamed", "SUMMARY:Standup (moved)"])


def test_filter_type_keeps_series_that_reach_the_window(pim: RunningGateway) -> None:
    user, phone, folder, calendar = calendar_phone(pim)
    long_ago = datetime.now(UTC) - timedelta(days=400)
    f = "%Y%m%dT%H%M%SZ"
    put(pim, user, calendar + "old.ics", SINGLE.format(
        uid=f"old-{user}", summary="Old", extra="",
        times=f"DTSTART:{long_ago:{f}}\r\nDTEND:{long_ago + timedelta(hours=1):{f}}\r\n"))
    put(pim, user, calendar + "weekly.ics", SINGLE.format(
        uid=f"weekly-{user}", summary="Weekly since long ago", extra="RRULE:FREQ=WEEKLY\r\n",
        times=f"DTSTART:{long_ago:{f}}\r\nDTEND:{long_ago + timedelta(hours=1):{f}}\r\n"))
    soon = datetime.now(UTC) + timedelta(days=3)
    put(pim, user, calendar + "soon.ics", SINGLE.format(
        uid=f"soon-{user}", summary="Soon", extra="",
        times=f"DTSTART:{soon:{f}}\r\nDTEND:{soon + timedelta(hours=1):{f}}\r\n"))
    options = etree.Element(A + "Options")
    etree.SubElement(options, A + "FilterType").text = "4"  # two weeks back
    _, adds = phone.sync_all(folder, options=options)
    assert sorted(data(a).findtext(C + "Subject") for a in adds) == ["Soon", "Weekly since long ago"]


def test_moving_an_event_to_another_calendar_keeps_its_uid(pim: RunningGateway) -> None:
    user, phone, folder, calendar = calendar_phone(pim)
    start = next_weekday(1).replace(hour=10)
    f = "%Y%m%dT%H%M%SZ"
    put(pim, user, calendar + "trip.ics", SINGLE.format(
        uid=f"trip-{user}", summary="Trip", extra="",
        times=f"DTSTART:{start:{f}}\r\nDTEND:{start + timedelta(hours=2):{f}}\r\n"))
    key, adds = phone.sync_all(folder)
    server_id = adds[0].findtext(A + "ServerId")

    async def make(client: DavUpstream, creds: Credentials) -> str:
        return await client.make_collection(creds, CALENDAR, "Travel", "travel")
    travel_path = run(_dav(pim, user, make))
    tree = wbxml.decode(phone.post("FolderSync", folder_sync("1")).content)
    travel = next(a.findtext(F + "ServerId") for a in tree.iter(F + "Add") if a.findtext(F + "DisplayName") == "Travel")
    assert next(a.findtext(F + "Type") for a in tree.iter(F + "Add") if a.findtext(F + "ServerId") == travel) == "13"
    travel_key, _ = phone.sync_all(travel)
    move = etree.Element(M + "MoveItems")
    m = etree.SubElement(move, M + "Move")
    etree.SubElement(m, M + "SrcMsgId").text = server_id
    etree.SubElement(m, M + "SrcFldId").text = folder
    etree.SubElement(m, M + "DstFldId").text = travel
    first = wbxml.decode(phone.post("MoveItems", move).content)
    assert first.findtext(f".//{M}Status") == "3", etree.tostring(first)
    again = wbxml.decode(phone.post("MoveItems", move).content)
    assert again.findtext(f".//{M}DstMsgId") == first.findtext(f".//{M}DstMsgId")
    moved = objects(pim, user, travel_path)
    assert list(moved) == [travel_path + "trip.ics"]
    assert str(Calendar.from_ical(moved[travel_path + "trip.ics"]).walk("VEVENT")[0]["UID"]) == f"trip-{user}"
    assert objects(pim, user, calendar) == {}
    tree = phone.sync(collection(folder, key))
    assert tree is None or not list(tree.iter(A + "Delete"))
    tree = phone.sync(collection(travel, travel_key))
    assert tree is None or not list(tree.iter(A + "Add"))


def test_fields_of_another_class_fail_that_event_only(pim: RunningGateway) -> None:
    user, phone, folder, calendar = calendar_phone(pim)
    key, _ = phone.sync_all(folder)
    bad = _add("bad-1", {"Subject": "x"}, version="14.1")
    etree.SubElement(bad.find(A + "ApplicationData"), "{Contacts:}FirstName").text = "Ada"
    good = _add("good-1", berlin_fields("Fine", next_weekday(4).replace(hour=8)), version="14.1")
    tree = phone.sync(collection(folder, key, commands=_commands(bad, good)))
    statuses = {r.findtext(A + "ClientId"): r.findtext(A + "Status") for r in tree.iter(A + "Add")}
    assert statuses == {"bad-1": "6", "good-1": "1"}
    assert len(objects(pim, user, calendar)) == 1


# -- who mails the attendees (Cyrus: CalDAV scheduling on, its SMTP relay keeps every message) -----


def sent_to(gw: RunningGateway) -> list[tuple[list[str], str]]:
    """(recipients, iTIP METHOD) of every message the upstream's relay has sent."""
    out = []
    sent = CYRUS_DIRS[gw.upstream] / "sent"
    for envelope in sorted(sent.glob("*.json"), key=lambda p: int(p.stem)) if sent.exists() else []:
        message = envelope.with_suffix(".eml").read_bytes().decode(errors="replace")
        method = next((line.split(":", 1)[1].strip() for line in message.splitlines() if line.startswith("METHOD:")),
                      "")
        out.append((json.loads(envelope.read_text())["to"], method))
    return out


def _wait_for_sent(gw: RunningGateway, before: int, seconds: float = 0.5) -> list[tuple[list[str], str]]:
    """What the relay sent since ``before``. Cyrus mails while it answers the PUT, so what is
    sent is there at once; the wait gives anything sent late (wrongly) the time to show."""
    import time
    time.sleep(seconds)
    return sent_to(gw)[before:]


@pytest.mark.parametrize("version", ["14.1", "16.1"])
def test_own_edits_mail_nobody_and_a_new_attendee_is_invited_once(gateway: RunningGateway, version: str) -> None:
    user, phone, folder, calendar = calendar_phone(gateway, version)
    key, _ = phone.sync_all(folder)
    start = next_weekday(1, 2).replace(hour=11)
    carol = f"carol-{user.split('@')[0]}@elsewhere.org"
    before = len(sent_to(gateway))
    tree = phone.sync(collection(folder, key, commands=_commands(
        _add("meet-1", berlin_fields("Planning", start) | {"MeetingStatus": "1"}, version=version,
             attendees=[(carol, "Carol")]))))
    assert tree.findtext(f".//{A}Responses/{A}Add/{A}Status") == "1"
    server_id = tree.findtext(f".//{A}Responses/{A}Add/{A}ServerId")
    key = tree.findtext(f".//{A}SyncKey")
    invited = _wait_for_sent(gateway, before)
    # Below 16.0 the phone mails the invitation (SendMail): the server must not mail it too.
    assert invited == ([] if version == "14.1" else [([carol], "REQUEST")])
    stored = Calendar.from_ical(next(iter(objects(gateway, user, calendar).values()))).walk("VEVENT")[0]
    assert str(stored["ORGANIZER"]).lower() == f"mailto:{user}"

    # The organizer's own fields: reminder, busy status, categories. Nobody is mailed.
    before = len(sent_to(gateway))
    own = berlin_fields("Planning", start, reminder=45) | {"MeetingStatus": "1", "BusyStatus": "0"}
    change = _change(server_id, own, version=version, attendees=[(carol, "Carol")])
    etree.SubElement(etree.SubElement(change.find(A + "ApplicationData"), C + "Categories"),
                     C + "Category").text = "Work"
    tree = phone.sync(collection(folder, key, commands=_commands(change)))
    key = tree.findtext(f".//{A}SyncKey")
    assert _wait_for_sent(gateway, before) == []

    # One attendee more: one invitation, to that attendee only (from 16.0; below, the phone's).
    dave = f"dave-{user.split('@')[0]}@elsewhere.org"
    before = len(sent_to(gateway))
    tree = phone.sync(collection(folder, key, commands=_commands(
        _change(server_id, own, version=version, attendees=[(carol, "Carol"), (dave, "Dave")]))))
    assert _wait_for_sent(gateway, before) == ([] if version == "14.1" else [([dave], "REQUEST")])


def test_at_16_an_instance_id_changes_or_deletes_that_occurrence_only(pim: RunningGateway) -> None:
    user, phone, folder, calendar = calendar_phone(pim, "16.1")
    text, start = series(f"instances-{user}")
    path = calendar + "instances.ics"
    put(pim, user, path, text)
    before = objects(pim, user, calendar)[path]
    key, adds = phone.sync_all(folder)
    server_id = adds[0].findtext(A + "ServerId")
    new_york = ZoneInfo("America/New_York")
    third = (start + timedelta(weeks=3)).replace(tzinfo=new_york).astimezone(UTC)
    fourth = (start + timedelta(weeks=4)).replace(tzinfo=new_york).astimezone(UTC)
    change = etree.Element(A + "Change")
    etree.SubElement(change, A + "ServerId").text = server_id
    etree.SubElement(change, B + "InstanceId").text = third.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    app = etree.SubElement(change, A + "ApplicationData")
    etree.SubElement(app, C + "Subject").text = "Standup (just this one)"
    delete = etree.Element(A + "Delete")
    etree.SubElement(delete, A + "ServerId").text = server_id
    etree.SubElement(delete, B + "InstanceId").text = fourth.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    tree = phone.sync(collection(folder, key, commands=_commands(change, delete)))
    assert [s.text for s in tree.iter(A + "Status")] == ["1"], etree.tostring(tree)
    after = Calendar.from_ical(objects(pim, user, calendar)[path])
    events = after.walk("VEVENT")
    master = next(e for e in events if "RECURRENCE-ID" not in e)
    assert str(master["SUMMARY"]) == "Standup" and master["RRULE"].to_ical() == b"FREQ=WEEKLY;BYDAY=MO"
    overrides = {e["RECURRENCE-ID"].dt.astimezone(UTC): str(e["SUMMARY"]) for e in events if "RECURRENCE-ID" in e}
    assert overrides.get(third) == "Standup (just this one)", (overrides, objects(pim, user, calendar)[path])
    assert len(overrides) == 2  # the moved one upstream made, and this one
    exdates = {d.dt.astimezone(UTC) for item in (master["EXDATE"] if isinstance(master["EXDATE"], list)
                                                 else [master["EXDATE"]]) for d in item.dts}
    assert fourth in exdates and len(exdates) == 2
    assert len(Calendar.from_ical(before).walk("VEVENT")) == 2
    # A single event has no occurrences: Status 6 for that command alone.
    put(pim, user, calendar + "single.ics", SINGLE.format(
        uid=f"single-{user}", summary="Once", extra="",
        times=f"DTSTART:{start:%Y%m%dT%H%M%S}Z\r\nDTEND:{start + timedelta(hours=1):%Y%m%dT%H%M%S}Z\r\n"))
    key = tree.findtext(f".//{A}SyncKey")
    tree = phone.sync(collection(folder, key))
    key = tree.findtext(f".//{A}SyncKey")
    single = next(a.findtext(A + "ServerId") for a in tree.iter(A + "Add"))
    bad = etree.Element(A + "Delete")
    etree.SubElement(bad, A + "ServerId").text = single
    etree.SubElement(bad, B + "InstanceId").text = fourth.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    tree = phone.sync(collection(folder, key, commands=_commands(bad)))
    assert tree.findtext(f".//{A}Responses/{A}Delete/{A}Status") == "6"
    assert calendar + "single.ics" in objects(pim, user, calendar)


def test_at_16_an_events_attachments_are_listed_and_fetched(pim: RunningGateway) -> None:
    import base64

    from tests.gateway.test_itemoperations import _by_reference, _fetch

    user, phone, folder, calendar = calendar_phone(pim, "16.1")
    content = b"Agenda\n1. Budget\n2. Hiring\n" * 20
    start = next_weekday(2).replace(hour=10)
    # A resource on the DAV server itself, as a server's managed attachment is.
    on_server = SINGLE.format(uid=f"notes-{user}", summary="Notes", extra="",
                              times=f"DTSTART:{start:%Y%m%dT%H%M%S}Z\r\nDURATION:PT1H\r\n")
    put(pim, user, calendar + "notes.ics", on_server)
    attach = ("ATTACH;VALUE=BINARY;ENCODING=BASE64;FMTTYPE=text/plain;X-FILENAME=agenda.txt:"
              + base64.b64encode(content).decode() + "\r\n"
              "ATTACH;FMTTYPE=application/pdf:https://files.example.org/minutes.pdf\r\n"
              f"ATTACH;FMTTYPE=text/calendar:{pim.dav_url}{calendar}notes.ics\r\n")
    put(pim, user, calendar + "review.ics", SINGLE.format(
        uid=f"review-{user}", summary="Review", extra=attach,
        times=f"DTSTART:{start:%Y%m%dT%H%M%S}Z\r\nDTEND:{start + timedelta(hours=1):%Y%m%dT%H%M%S}Z\r\n"))
    _, adds = phone.sync_all(folder)
    review = next(a for a in adds if a.findtext(f"{A}ApplicationData/{C}Subject") == "Review")
    listed = {a.findtext(B + "DisplayName"): a for a in review.iter(B + "Attachment")}
    assert set(listed) >= {"minutes.pdf", "notes.ics"} and len(listed) == 3, etree.tostring(review)
    agenda = next(a for name, a in listed.items() if name not in ("minutes.pdf", "notes.ics"))
    whole, elsewhere, forged, local = _fetch(
        phone, _by_reference(agenda.findtext(B + "FileReference")),
        _by_reference(listed["minutes.pdf"].findtext(B + "FileReference")),
        _by_reference(agenda.findtext(B + "FileReference").replace(user, "alice@example.com")),
        _by_reference(listed["notes.ics"].findtext(B + "FileReference")))
    assert whole.findtext("{ItemOperations:}Status") == "1"
    assert base64.b64decode(whole.findtext("{ItemOperations:}Properties/{ItemOperations:}Data")) == content
    assert local.findtext("{ItemOperations:}Status") == "1"
    assert b"SUMMARY:Notes" in base64.b64decode(local.findtext("{ItemOperations:}Properties/{ItemOperations:}Data"))
    assert elsewhere.findtext("{ItemOperations:}Status") != "1"  # another host: never fetched by the gateway
    assert forged.findtext("{ItemOperations:}Status") != "1"  # another user's object: the server says no
    # Below 16.0 the Calendar class has no attachments.
    old = Phone(pim, user)
    _, adds = old.sync_all(old.types["8"])
    assert all(a.find(f".//{B}Attachments") is None for a in adds)
