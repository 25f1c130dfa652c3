"""Search of the mailbox on Cyrus (Xapian set up by scripts/cyrus-upstream.sh): FreeText in a
folder with Range and the true Total, dates, DeepTraversal, results with a LongId that
ItemOperations fetches, a real client's date search, and queries the gateway refuses."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from lxml import etree

import wbxml
from tests.conftest import RunningGateway
from tests.gateway.helpers import Phone, deliver, message, new_device_id, new_user, pyactivesync_client

pytestmark = [pytest.mark.postgres, pytest.mark.upstream]

A, S, M, I, B = "{AirSync:}", "{Search:}", "{Email:}", "{ItemOperations:}", "{AirSyncBase:}"


def mailbox_search(phone: Phone, *conditions: etree._Element, range_: str = "0-9",
                   deep: bool = False) -> etree._Element:
    root = etree.Element(S + "Search")
    store = etree.SubElement(root, S + "Store")
    etree.SubElement(store, S + "Name").text = "Mailbox"
    query = etree.SubElement(etree.SubElement(store, S + "Query"), S + "And")
    for condition in conditions:
        query.append(condition)
    options = etree.SubElement(store, S + "Options")
    etree.SubElement(options, S + "Range").text = range_
    if deep:
        etree.SubElement(options, S + "DeepTraversal")
    preference = etree.SubElement(options, B + "BodyPreference")
    etree.SubElement(preference, B + "Type").text = "1"
    etree.SubElement(preference, B + "TruncationSize").text = "100"
    return wbxml.decode(phone.post("Search", root).content)


def element(tag: str, text: str | None = None, *children: etree._Element) -> etree._Element:
    el = etree.Element(tag)
    el.text = text
    for child in children:
        el.append(child)
    return el


def wait_indexed(phone: Phone, word: str, count: int) -> None:
    deadline = time.monotonic() + 20
    while True:
        answer = mailbox_search(phone, element(S + "FreeText", word))
        if answer.findtext(f".//{S}Total") == str(count):
            return
        assert time.monotonic() < deadline, etree.tostring(answer)
        time.sleep(0.2)


def test_free_text_with_range_total_and_a_long_id_that_fetches(gateway: RunningGateway) -> None:
    user = new_user(gateway)
    deliver(gateway, user, [message("Zebrafish report", text="numbers are up"),
                            message("Lunch", text="the zebrafish tank needs cleaning"),
                            message("Unrelated", text="nothing to see")])
    phone = Phone(gateway, user)
    wait_indexed(phone, "zebrafish", 2)
    page = mailbox_search(phone, element(A + "Class", "Email"), element(A + "CollectionId", phone.inbox),
                          element(S + "FreeText", "zebrafish"), range_="1-1")
    store = page.find(f"{S}Response/{S}Store")
    assert store.findtext(S + "Status") == "1"
    assert (store.findtext(S + "Range"), store.findtext(S + "Total")) == ("1-1", "2")
    [result] = store.findall(S + "Result")
    assert result.findtext(A + "CollectionId") == phone.inbox and result.findtext(A + "Class") == "Email"
    subject = result.findtext(f"{S}Properties/{M}Subject")
    assert subject in ("Zebrafish report", "Lunch")
    fetch = etree.Element(I + "ItemOperations")
    f = etree.SubElement(fetch, I + "Fetch")
    etree.SubElement(f, I + "Store").text = "Mailbox"
    etree.SubElement(f, S + "LongId").text = result.findtext(S + "LongId")
    fetched = wbxml.decode(phone.post("ItemOperations", fetch).content)
    assert fetched.findtext(f".//{I}Fetch/{I}Status") == "1"
    assert fetched.findtext(f".//{I}Properties/{M}Subject") == subject
    etree.SubElement(f, S + "LongId").text = "jmap:no-such-message"
    f.remove(f.find(S + "LongId"))
    assert wbxml.decode(phone.post("ItemOperations", fetch).content).findtext(f".//{I}Fetch/{I}Status") == "6"


def test_dates_deep_traversal_and_a_real_clients_date_search(gateway: RunningGateway) -> None:
    user = new_user(gateway)
    deliver(gateway, user, [message("First", text="alpha"), message("Second", text="beta")])
    phone = Phone(gateway, user)
    yesterday = (datetime.now(UTC) - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    def received(tag: str, when: str) -> etree._Element:
        return element(S + tag, None, element(M + "DateReceived"), element(S + "Value", when))
    after = mailbox_search(phone, element(A + "CollectionId", phone.inbox), received("GreaterThan", yesterday))
    assert after.findtext(f".//{S}Total") == "2"
    before = mailbox_search(phone, element(A + "CollectionId", phone.inbox), received("LessThan", yesterday))
    assert before.findtext(f".//{S}Total") == "0" and before.find(f".//{S}Result") is not None  # an empty Result
    everywhere = mailbox_search(phone, received("GreaterThan", yesterday), received("LessThan", tomorrow), deep=True)
    assert everywhere.findtext(f".//{S}Total") == "2"
    with pyactivesync_client(gateway, new_device_id(), user=user) as client:
        assert len(client.search_mailbox(phone.inbox, date_received_after=yesterday)) == 2


def test_a_conversation_by_its_conversation_id(gateway: RunningGateway) -> None:
    """Search by the ConversationId a Sync showed (all folders): the thread's messages and
    nothing of other threads; an unknown id finds nothing; the dates still apply."""
    user = new_user(gateway)
    first = message("Budget 2027", text="numbers")
    first.replace_header("Message-ID", f"<budget-{user}@example.org>")
    reply = message("Re: Budget 2027", text="agreed")
    reply.replace_header("Message-ID", f"<re-{user}@example.org>")
    reply["In-Reply-To"] = reply["References"] = first["Message-ID"]
    deliver(gateway, user, [first, message("Other things", text="unrelated"), reply])
    phone = Phone(gateway, user)
    _, adds = phone.sync_all(phone.inbox)
    ids = {a.findtext(f"{A}ApplicationData/{M}Subject"): a.find(f"{A}ApplicationData/{{Email2:}}ConversationId")
           for a in adds}
    assert wbxml.element_bytes(ids["Budget 2027"]) == wbxml.element_bytes(ids["Re: Budget 2027"])

    def conversation(*more: etree._Element, of: str = "Budget 2027") -> etree._Element:
        condition = etree.Element(S + "ConversationId")
        wbxml.set_opaque(condition, wbxml.element_bytes(ids[of]))
        return mailbox_search(phone, condition, *more, deep=True)

    found = conversation()
    assert found.findtext(f".//{S}Store/{S}Status") == "1" and found.findtext(f".//{S}Total") == "2"
    assert sorted(r.findtext(f"{S}Properties/{M}Subject") for r in found.iter(S + "Result")) == \
        ["Budget 2027", "Re: Budget 2027"]
    assert conversation(of="Other things").findtext(f".//{S}Total") == "1"
    yesterday = (datetime.now(UTC) - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    old = element(S + "LessThan", None, element(M + "DateReceived"), element(S + "Value", yesterday))
    assert conversation(old).findtext(f".//{S}Total") == "0"
    unknown = etree.Element(S + "ConversationId")
    wbxml.set_opaque(unknown, bytes(16))
    assert mailbox_search(phone, unknown).findtext(f".//{S}Total") == "0"


def test_queries_the_gateway_refuses_answer_status_2(gateway: RunningGateway) -> None:
    user = new_user(gateway)
    phone = Phone(gateway, user)
    cases = [
        (element(A + "Class", "Contacts"),),  # the mailbox holds Email
        (element(A + "CollectionId", "99999"), element(S + "FreeText", "x")),  # no such folder
        (element(S + "GreaterThan", None, element(M + "Subject"), element(S + "Value", "x")),),
        (element(S + "GreaterThan", None, element(M + "DateReceived"), element(S + "Value", "yesterday")),),
        (element(S + "FreeText", "x"), element(S + "ConversationId", "abc")),  # one or the other
    ]
    for conditions in cases:
        answer = mailbox_search(phone, *conditions)
        assert answer.findtext(f".//{S}Store/{S}Status") == "2", etree.tostring(answer)
    assert mailbox_search(phone, element(S + "FreeText", "x"), range_="5-1").findtext(f".//{S}Store/{S}Status") == "2"


def test_find_the_mailbox_and_the_directory_with_a_real_client(gateway: RunningGateway) -> None:
    from tests.gateway.test_directory import fill

    user = new_user(gateway)
    deliver(gateway, user, [message("Quokka sighting", text="a quokka near the office"),
                            message("Other", text="nothing")])
    phone = Phone(gateway, user, version="16.1")
    fill(gateway, user, ["ada", "grace"])
    wait_indexed(phone, "quokka", 1)
    with pyactivesync_client(gateway, new_device_id(), user=user) as client:
        found = client.find_mailbox("quokka", folder_id=phone.inbox)
        assert len(found.items) == 1 and found.status == "1"
        item = found.items[0]
        assert item.collection_id == phone.inbox
        assert any(v == "Quokka sighting" for v in item.fields.values()), item.fields
        people = client.find_gal("Hopper")
        assert [i.fields.get("GAL.DisplayName") for i in people.items] == ["Grace Hopper"]
    # The ServerId of a Find result is one ItemOperations fetches.
    fetch = etree.Element(I + "ItemOperations")
    f = etree.SubElement(fetch, I + "Fetch")
    etree.SubElement(f, I + "Store").text = "Mailbox"
    etree.SubElement(f, A + "CollectionId").text = item.collection_id
    etree.SubElement(f, A + "ServerId").text = item.server_id
    fetched = wbxml.decode(phone.post("ItemOperations", fetch).content)
    assert fetched.findtext(f".//{I}Properties/{M}Subject") == "Quokka sighting"
