"""Tasks and Notes end to end on Cyrus and on Radicale with a raw 14.1 phone: the default
folders of each class (Cyrus' Default calendar holds events, tasks and notes and is
shown as three folders; Radicale gets a collection per class made), each folder sees its
own component only, at the first sync and in later changes; the phone adds, completes
and deletes tasks and writes notes; Supported in a Notes Sync is Status 4."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from icalendar import Calendar
from lxml import etree

from tests.conftest import RunningGateway
from tests.gateway.helpers import Phone, collection, new_user
from tests.gateway.test_calendar import SINGLE, _commands, _dav, objects, put, run
from usm.upstream import Credentials
from usm.upstream.dav import DavUpstream
from usm.upstream.dav_store import NOTES, TASKS

pytestmark = [pytest.mark.postgres, pytest.mark.upstream]

A, T, N, C = "{AirSync:}", "{Tasks:}", "{Notes:}", "{Calendar:}"
TODO = ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:VTODO\r\nUID:{uid}\r\n"
        "DTSTAMP:20261101T000000Z\r\nSUMMARY:{summary}\r\nDUE;VALUE=DATE:20261215\r\nPRIORITY:1\r\n"
        "END:VTODO\r\nEND:VCALENDAR\r\n")


def default_collection(gw: RunningGateway, user: str, kind: str) -> str:
    async def find(client: DavUpstream, creds: Credentials) -> str:
        found = [c for c in await client.collections(creds) if c.kind == kind]
        return sorted(found, key=lambda c: (not c.path.rstrip("/").endswith("/Default"), c.path))[0].path
    return str(run(_dav(gw, user, find)))


def subjects(tree: etree._Element | None, ns: str) -> list[str]:
    if tree is None:
        return []
    return sorted(a.findtext(f"{A}ApplicationData/{ns}Subject") or "" for a in tree.iter(A + "Add"))


def test_each_class_has_its_default_folder_and_sees_its_own_component(pim: RunningGateway) -> None:
    user = new_user(pim)
    phone = Phone(pim, user)
    assert {"7", "8", "9", "10"} <= set(phone.types), phone.types
    tasks_path = default_collection(pim, user, TASKS)
    calendar_path = default_collection(pim, user, "calendar")
    put(pim, user, tasks_path + "taxes.ics", TODO.format(uid=f"taxes-{user}", summary="Taxes"))
    soon = datetime.now(UTC) + timedelta(days=2)
    f = "%Y%m%dT%H%M%SZ"
    put(pim, user, calendar_path + "lunch.ics", SINGLE.format(
        uid=f"lunch-{user}", summary="Lunch", extra="",
        times=f"DTSTART:{soon:{f}}\r\nDTEND:{soon + timedelta(hours=1):{f}}\r\n"))
    task_key, task_adds = phone.sync_all(phone.types["7"])
    assert [a.findtext(f"{A}ApplicationData/{T}Subject") for a in task_adds] == ["Taxes"]
    assert [a.findtext(f"{A}ApplicationData/{T}Importance") for a in task_adds] == ["2"]
    calendar_key, calendar_adds = phone.sync_all(phone.types["8"])
    assert [a.findtext(f"{A}ApplicationData/{C}Subject") for a in calendar_adds] == ["Lunch"]
    # Later changes, in a collection that may hold both (Cyrus' Default): each folder its own.
    put(pim, user, tasks_path + "more.ics", TODO.format(uid=f"more-{user}", summary="More"))
    put(pim, user, calendar_path + "dinner.ics", SINGLE.format(
        uid=f"dinner-{user}", summary="Dinner", extra="",
        times=f"DTSTART:{soon:{f}}\r\nDTEND:{soon + timedelta(hours=2):{f}}\r\n"))
    assert subjects(phone.sync(collection(phone.types["7"], task_key)), T) == ["More"]
    assert subjects(phone.sync(collection(phone.types["8"], calendar_key)), C) == ["Dinner"]


def test_the_phone_adds_completes_and_deletes_a_task(pim: RunningGateway) -> None:
    user = new_user(pim)
    phone = Phone(pim, user)
    folder, path = phone.types["7"], default_collection(pim, user, TASKS)
    key, _ = phone.sync_all(folder)
    add = etree.Element(A + "Add")
    etree.SubElement(add, A + "ClientId").text = "task-1"
    app = etree.SubElement(add, A + "ApplicationData")
    for name, value in (("Subject", "Buy milk"), ("Importance", "1"), ("Complete", "0"),
                        ("UtcDueDate", "2026-12-05T23:00:00.000Z"), ("DueDate", "2026-12-06T00:00:00.000Z")):
        etree.SubElement(app, T + name).text = value
    tree = phone.sync(collection(folder, key, commands=_commands(add)))
    assert tree.findtext(f".//{A}Responses/{A}Add/{A}Status") == "1", etree.tostring(tree)
    server_id = tree.findtext(f".//{A}Responses/{A}Add/{A}ServerId")
    key = tree.findtext(f".//{A}SyncKey")
    stored = objects(pim, user, path)
    assert len(stored) == 1
    change = etree.Element(A + "Change")
    etree.SubElement(change, A + "ServerId").text = server_id
    app = etree.SubElement(change, A + "ApplicationData")
    etree.SubElement(app, T + "Complete").text = "1"
    etree.SubElement(app, T + "DateCompleted").text = "2026-12-04T08:00:00.000Z"
    tree = phone.sync(collection(folder, key, commands=_commands(change)))
    key = tree.findtext(f".//{A}SyncKey")
    todo = Calendar.from_ical(next(iter(objects(pim, user, path).values()))).walk("VTODO")[0]
    assert str(todo["STATUS"]) == "COMPLETED" and str(todo["SUMMARY"]) == "Buy milk"
    assert todo["DUE"].dt.isoformat() == "2026-12-06"  # a due day, as the phone meant (users' zone: UTC)
    delete = etree.Element(A + "Delete")
    etree.SubElement(delete, A + "ServerId").text = server_id
    phone.sync(collection(folder, key, commands=_commands(delete)))
    assert objects(pim, user, path) == {}


def test_notes_from_the_phone_and_supported_is_status_4(pim: RunningGateway) -> None:
    user = new_user(pim)
    phone = Phone(pim, user)
    folder, path = phone.types["10"], default_collection(pim, user, NOTES)
    key, _ = phone.sync_all(folder)
    supported = collection(folder, key)
    etree.SubElement(supported, A + "Supported").append(etree.Element(N + "Subject"))
    tree = phone.sync(supported)
    assert tree.findtext(f".//{A}Collection/{A}Status") == "4"
    add = etree.Element(A + "Add")
    etree.SubElement(add, A + "ClientId").text = "note-1"
    app = etree.SubElement(add, A + "ApplicationData")
    etree.SubElement(app, N + "Subject").text = "Ideas"
    body = etree.SubElement(app, "{AirSyncBase:}Body")
    etree.SubElement(body, "{AirSyncBase:}Type").text = "1"
    etree.SubElement(body, "{AirSyncBase:}Data").text = "one\r\ntwo"
    etree.SubElement(app, N + "MessageClass").text = "IPM.StickyNote"
    tree = phone.sync(collection(folder, key, commands=_commands(add)))
    assert tree.findtext(f".//{A}Responses/{A}Add/{A}Status") == "1", etree.tostring(tree)
    journal = Calendar.from_ical(next(iter(objects(pim, user, path).values()))).walk("VJOURNAL")[0]
    assert str(journal["SUMMARY"]) == "Ideas" and str(journal["DESCRIPTION"]) == "one\ntwo"
    # A second phone gets the note.
    other = Phone(pim, user)
    _, adds = other.sync_all(other.types["10"])
    assert [a.findtext(f"{A}ApplicationData/{N}Subject") for a in adds] == ["Ideas"]


def test_a_calendar_of_several_classes_is_several_folders_none_deletable_alone(pim: RunningGateway) -> None:
    import httpx

    from tests.gateway.helpers import folder_sync, password
    from wbxml import decode

    user = new_user(pim)
    phone = Phone(pim, user)
    home = default_collection(pim, user, TASKS).rstrip("/").rpartition("/")[0] + "/"
    body = ('<?xml version="1.0"?><c:mkcalendar xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav">'
            '<d:set><d:prop><d:displayname>Family</d:displayname></d:prop></d:set></c:mkcalendar>')
    made = httpx.request("MKCALENDAR", pim.dav_url + home + "family/", content=body, auth=(user, password(user)),
                         headers={"Content-Type": "application/xml"})
    assert made.status_code == 201, made.text  # no component set: events, tasks and notes
    F = "{FolderHierarchy:}"
    tree = decode(phone.post("FolderSync", folder_sync("1")).content)
    family = {a.findtext(F + "Type"): a.findtext(F + "ServerId") for a in tree.iter(F + "Add")
              if a.findtext(F + "DisplayName") == "Family"}
    assert set(family) == {"13", "15", "17"}
    delete = etree.Element(F + "FolderDelete")
    etree.SubElement(delete, F + "SyncKey").text = tree.findtext(F + "SyncKey")
    etree.SubElement(delete, F + "ServerId").text = family["15"]
    answer = decode(phone.post("FolderDelete", delete).content)
    assert answer.findtext(F + "Status") == "3"
    assert httpx.request("PROPFIND", pim.dav_url + home + "family/", headers={"Depth": "0"}, content=b"",
                         auth=(user, password(user))).status_code == 207


@pytest.mark.parametrize(("folder_type", "kind", "component"), [("13", "calendar", "VEVENT"), ("15", TASKS, "VTODO"),
                                                                ("17", NOTES, "VJOURNAL")])
def test_the_phone_makes_renames_and_deletes_calendars_task_lists_and_notes(
        pim: RunningGateway, folder_type: str, kind: str, component: str) -> None:
    from tests.gateway.helpers import folder_sync
    from tests.gateway.test_contacts import _folder_command
    from wbxml import decode

    user = new_user(pim)
    phone = Phone(pim, user)
    F = "{FolderHierarchy:}"
    created = decode(phone.post("FolderCreate", _folder_command(
        "FolderCreate", SyncKey="1", ParentId="0", DisplayName="Project X", Type=folder_type)).content)
    assert created.findtext(F + "Status") == "1", etree.tostring(created)
    server_id, key = created.findtext(F + "ServerId"), created.findtext(F + "SyncKey")

    async def mine(client: DavUpstream, creds: Credentials) -> dict[str, tuple[str, frozenset[str]]]:
        return {c.name: (c.path, c.components) for c in await client.collections(creds) if c.kind == kind}
    made = run(_dav(pim, user, mine))
    assert "Project X" in made and component in made["Project X"][1]  # MKCALENDAR with its component
    renamed = decode(phone.post("FolderUpdate", _folder_command(
        "FolderUpdate", SyncKey=key, ServerId=server_id, ParentId="0", DisplayName="Project Y")).content)
    assert renamed.findtext(F + "Status") == "1"
    key = renamed.findtext(F + "SyncKey")
    assert "Project Y" in run(_dav(pim, user, mine))
    tree = decode(phone.post("FolderSync", folder_sync(key)).content)
    assert not list(tree.iter(F + "Add")) and not list(tree.iter(F + "Update"))
    deleted = decode(phone.post("FolderDelete", _folder_command(
        "FolderDelete", SyncKey=tree.findtext(F + "SyncKey"), ServerId=server_id)).content)
    assert deleted.findtext(F + "Status") == "1"
    assert "Project Y" not in run(_dav(pim, user, mine))


def test_filter_type_8_shows_the_incomplete_tasks_and_a_task_done_leaves(pim: RunningGateway) -> None:
    user = new_user(pim)
    phone = Phone(pim, user)
    folder, path = phone.types["7"], default_collection(pim, user, TASKS)
    done = TODO.format(uid=f"done-{user}", summary="Done already").replace(
        "PRIORITY:1\r\n", "STATUS:COMPLETED\r\nCOMPLETED:20261101T100000Z\r\n")
    put(pim, user, path + "done.ics", done)
    etag = put(pim, user, path + "open.ics", TODO.format(uid=f"open-{user}", summary="Still open"))
    options = etree.Element(A + "Options")
    etree.SubElement(options, A + "FilterType").text = "8"
    key, adds = phone.sync_all(folder, options=options)
    assert [a.findtext(f"{A}ApplicationData/{T}Subject") for a in adds] == ["Still open"]

    async def complete(client: DavUpstream, creds: Credentials) -> str:
        text = TODO.format(uid=f"open-{user}", summary="Still open").replace(
            "PRIORITY:1\r\n", "STATUS:COMPLETED\r\nCOMPLETED:20261130T100000Z\r\n")
        return await client.replace(creds, path + "open.ics", text, "text/calendar", etag)
    run(_dav(pim, user, complete))
    tree = phone.sync(collection(folder, key))
    assert [d.findtext(A + "ServerId") for d in tree.iter(A + "Delete")] == [adds[0].findtext(A + "ServerId")]


def test_a_phone_below_14_0_is_not_shown_notes_folders(pim: RunningGateway) -> None:
    """MS-ASNOTE: the Notes class is 14.0 on. A 12.1 phone gets calendars and tasks and no
    Notes folder (Ping's hierarchy check uses the same classes.shown)."""
    user = new_user(pim)
    old = Phone(pim, user, version="12.1")
    assert {"7", "8", "9"} <= set(old.types) and "10" not in old.types, old.types
    assert "10" in Phone(pim, user, version="14.1").types
