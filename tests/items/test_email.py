"""The Email item class and Sync Options, without a server: body choice,
truncation at character boundaries, AllOrNone, conversions, odd text."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from lxml import etree

import wbxml
from eas_gateway.items import email
from eas_gateway.items.options import BodyPreference, Options, OptionsError, parse
from usm.upstream import Address, Attachment, BodyText, Message

B = "{AirSyncBase:}"
M = "{Email:}"


def _message(**overrides: object) -> Message:
    values: dict[str, object] = dict(
        id="M1", blob_id="G1", thread_id="T1", folder_ids=frozenset({"inbox"}),
        keywords=frozenset({"$seen", "$flagged", "work"}), received_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        size=100, subject="Grüße", sender=[Address('Bob "B" Smith', "bob@example.com")],
        to=[Address(None, "alice@example.com")], cc=[], reply_to=[], message_id="<x@y>", importance="high",
        text=BodyText("Grüße aus Köln", 16, False), html=None,
        attachments=[Attachment("Gatt", "r.pdf", "application/pdf", 10, "<c1>", True)])
    values.update(overrides)
    return Message(**values)  # type: ignore[arg-type]


def _render(message: Message, options: Options, version: float = 16.1, mime: bytes | None = None) -> etree._Element:
    root = etree.Element("{AirSync:}ApplicationData")
    email.application_data(root, message, options, version, mime)
    return wbxml.decode(wbxml.encode(root))  # what the phone would read


def test_fields_flags_categories_and_addresses() -> None:
    tree = _render(_message(), Options())
    assert tree.findtext(M + "From") == '"Bob \\"B\\" Smith" <bob@example.com>'
    assert tree.findtext(M + "DateReceived") == "2026-01-02T03:04:05.000Z"
    assert (tree.findtext(M + "Read"), tree.findtext(M + "Importance")) == ("1", "2")
    assert tree.findtext(f"{M}Flag/{M}Status") == "2"
    assert [c.text for c in tree.iter(M + "Category")] == ["work"]
    assert tree.findtext(f".//{B}ContentId") == "c1" and tree.findtext(f".//{B}IsInline") == "1"
    assert len(wbxml.element_bytes(tree.find("{Email2:}ConversationId"))) == 16
    older = _render(_message(), Options(), version=12.1)
    assert older.find("{Email2:}ConversationId") is None and older.find(M + "Categories") is None


def test_truncation_never_splits_a_character_and_all_or_none_sends_no_data() -> None:
    cut = _render(_message(), Options(body=[BodyPreference(1, truncation=4)]))
    assert cut.findtext(f"{B}Body/{B}Data") == "Grü"  # "Grü" is 4 bytes; the next byte would split "ß"
    assert cut.findtext(f"{B}Body/{B}Truncated") == "1"
    assert cut.findtext(f"{B}Body/{B}EstimatedDataSize") == str(len("Grüße aus Köln".encode()))
    none = _render(_message(), Options(body=[BodyPreference(1, truncation=4, all_or_none=True)]))
    assert none.find(f"{B}Body/{B}Data") is None and none.findtext(f"{B}Body/{B}Truncated") == "1"
    whole = _render(_message(), Options(body=[BodyPreference(1, truncation=400, all_or_none=True)]))
    assert whole.findtext(f"{B}Body/{B}Data") == "Grüße aus Köln" and whole.find(f"{B}Body/{B}Truncated") is None


def test_upstream_cut_body_is_marked_truncated() -> None:
    message = _message(text=BodyText("abcdef", 5000, True))
    tree = _render(message, Options(body=[BodyPreference(1, truncation=5)]))
    assert tree.findtext(f"{B}Body/{B}Data") == "abcde"
    assert tree.findtext(f"{B}Body/{B}EstimatedDataSize") == "5000"


def test_conversions_between_plain_and_html() -> None:
    html_only = _message(text=BodyText("<p>Hi <b>there</b></p>", 22, False), text_is_html=True)
    assert _render(html_only, Options(body=[BodyPreference(1)])).findtext(f"{B}Body/{B}Data") == "Hi there"
    plain_only = _message(html=BodyText("a < b", 5, False), html_is_text=True)
    data = _render(plain_only, Options(body=[BodyPreference(2)])).findtext(f"{B}Body/{B}Data")
    assert "a &lt; b" in data and data.startswith("<html>")


def test_mime_bytes_are_sent_exactly_even_when_not_utf8() -> None:
    raw = b"Subject: x\r\nContent-Type: text/plain; charset=latin-1\r\n\r\nK\xf6ln\r\n"
    tree = _render(_message(), Options(body=[BodyPreference(4)], mime_support=2), mime=raw)
    assert tree.findtext(f"{B}Body/{B}Type") == "4"
    assert wbxml.element_bytes(tree.find(f"{B}Body/{B}Data")) == raw


def test_control_characters_in_text_survive() -> None:
    tree = _render(_message(text=BodyText("page\x0cbreak", 10, False)), Options())
    assert wbxml.element_text(tree.find(f"{B}Body/{B}Data")) == "page\x0cbreak"


def test_options_parsing_and_choice() -> None:
    el = etree.fromstring(
        '<o:Options xmlns:o="AirSync:" xmlns:b="AirSyncBase:"><o:FilterType>3</o:FilterType>'
        '<b:BodyPreference><b:Type>2</b:Type><b:TruncationSize>200</b:TruncationSize></b:BodyPreference>'
        '<b:BodyPreference><b:Type>4</b:Type></b:BodyPreference><o:MIMESupport>2</o:MIMESupport></o:Options>')
    options = parse([el])
    assert options.filter_type == 3 and options.chosen_body().type == 4
    assert Options.from_json(options.to_json()) == options
    assert parse([], previous=options) == options
    assert Options(body=[BodyPreference(2), BodyPreference(1)]).chosen_body().type == 2
    assert Options(body=[BodyPreference(3)]).chosen_body().type == 1  # no RTF: plain text
    bad = etree.fromstring('<o:Options xmlns:o="AirSync:"><o:FilterType>9</o:FilterType></o:Options>')
    with pytest.raises(OptionsError):
        parse([bad])


def test_file_references_round_trip() -> None:
    reference = email.file_reference("G|1", "application/pdf", "Bericht März.pdf")
    assert email.parse_file_reference(reference) == ("G|1", "application/pdf", "Bericht März.pdf")
    assert email.parse_file_reference("nonsense") is None
