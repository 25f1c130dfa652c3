"""ResolveRecipients' Certificates and Availability, raw documents on Cyrus and Radicale:
the S/MIME certificates of a contact's vCard KEY that are usable now (and MaxCertificates),
the user's own free/busy from their calendars on both servers, another user's from Cyrus'
scheduling (RFC 6638), none for an outsider or without scheduling; and what each version
may carry."""

from __future__ import annotations

import asyncio
import base64
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from lxml import etree

import wbxml
from tests.conftest import RunningGateway
from tests.gateway.helpers import Phone, new_user, password
from usm.upstream import Credentials
from usm.upstream.dav import DavUpstream
from usm.upstream.dav_store import CALENDAR, CONTACTS

pytestmark = [pytest.mark.postgres, pytest.mark.upstream]

R = "{ResolveRecipients:}"
NOW = datetime.now(UTC)


def certificate(address: str, *, days: tuple[int, int] = (-1, 365)) -> str:
    """A self-signed S/MIME certificate naming ``address`` (subjectAltName), base64 DER."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, address)])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(NOW + timedelta(days=days[0])).not_valid_after(NOW + timedelta(days=days[1]))
            .add_extension(x509.SubjectAlternativeName([x509.RFC822Name(address)]), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
            .sign(key, hashes.SHA256()))
    return base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()


def put_all(gw: RunningGateway, user: str, kind: str, objects: dict[str, str]) -> None:
    async def go() -> None:
        client, creds = DavUpstream(gw.dav_url), Credentials(user, password(user))
        try:
            found = sorted((c for c in await client.collections(creds) if c.kind == kind),
                           key=lambda c: (not c.path.rstrip("/").endswith("/Default"), c.path))
            for name, data in objects.items():
                await client.create(creds, found[0].path + name, data,
                                    "text/vcard" if kind == CONTACTS else "text/calendar")
        finally:
            await client.aclose()
    asyncio.run(go())


def resolve(phone: Phone, to: list[str], **options: str | dict[str, str]) -> list[etree._Element]:
    root = etree.Element(R + "ResolveRecipients")
    for one in to:
        etree.SubElement(root, R + "To").text = one
    holder = etree.SubElement(root, R + "Options")
    for name, value in options.items():
        child = etree.SubElement(holder, R + name)
        if isinstance(value, dict):
            for inner, text in value.items():
                etree.SubElement(child, R + inner).text = text
        else:
            child.text = value
    answer = wbxml.decode(phone.post("ResolveRecipients", root).content)
    assert answer.findtext(R + "Status") == "1"
    return answer.findall(R + "Response")


def test_certificates_from_the_vcard_key_usable_now_and_max_certificates(pim: RunningGateway) -> None:
    user = new_user(pim)
    phone = Phone(pim, user)
    good, other = certificate("ada@example.org"), certificate("someone@else.org")
    expired = certificate("alan@example.org", days=(-400, -30))
    cards = {
        "ada.vcf": "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:ada\r\nFN:Ada Lovelace\r\nN:Lovelace;Ada;;;\r\n"
                   f"EMAIL:ada@example.org\r\nKEY;ENCODING=b;TYPE=X509:{good}\r\nKEY;ENCODING=b;TYPE=X509:{other}\r\nEND:VCARD\r\n",
        "alan.vcf": "BEGIN:VCARD\r\nVERSION:4.0\r\nUID:alan\r\nFN:Alan Turing\r\nN:Turing;Alan;;;\r\n"
                    f"EMAIL:alan@example.org\r\nKEY:data:application/pkix-cert;base64,{expired}\r\nEND:VCARD\r\n",
    }
    put_all(pim, user, CONTACTS, cards)
    ada, alan, outsider = resolve(phone, ["ada@example.org", "alan@example.org", "x@elsewhere.net"],
                                  CertificateRetrieval="2")
    certs = ada.find(f"{R}Recipient/{R}Certificates")
    assert (certs.findtext(R + "Status"), certs.findtext(R + "CertificateCount")) == ("1", "1")
    assert [c.text for c in certs.findall(R + "Certificate")] == [good]  # the other names someone else
    for nobody in (alan, outsider):  # expired; an address without a card
        certs = nobody.find(f"{R}Recipient/{R}Certificates")
        assert (certs.findtext(R + "Status"), certs.findtext(R + "CertificateCount")) == ("7", "0")
    (limited,) = resolve(phone, ["ada@example.org"], CertificateRetrieval="2", MaxCertificates="0")
    certs = limited.find(f"{R}Recipient/{R}Certificates")
    assert (certs.findtext(R + "Status"), certs.findtext(R + "CertificateCount")) == ("8", "1")
    assert certs.find(R + "Certificate") is None
    (plain,) = resolve(phone, ["ada@example.org"])  # not asked: not sent
    assert plain.find(f"{R}Recipient/{R}Certificates") is None


def event(uid: str, start: datetime, hours: float, extra: str = "", *, rule: str = "") -> str:
    f = "%Y%m%dT%H%M%SZ"
    return (f"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:VEVENT\r\nUID:{uid}\r\n"
            f"DTSTAMP:{NOW:{f}}\r\nDTSTART:{start:{f}}\r\nDTEND:{start + timedelta(hours=hours):{f}}\r\n"
            f"SUMMARY:{uid}\r\n{extra}{rule}END:VEVENT\r\nEND:VCALENDAR\r\n")


def availability(start: datetime, hours: int) -> dict[str, str]:
    f = "%Y-%m-%dT%H:%M:%S.000Z"
    return {"StartTime": f"{start:{f}}", "EndTime": f"{start + timedelta(hours=hours):{f}}"}


def test_availability_of_the_user_others_and_outsiders(pim: RunningGateway) -> None:
    user, colleague = new_user(pim), new_user(pim)
    day = (NOW + timedelta(days=3)).replace(hour=8, minute=0, second=0, microsecond=0)
    phone, _ = Phone(pim, user), Phone(pim, colleague)  # (a Radicale user's calendar is made at FolderSync)
    put_all(pim, user, CALENDAR, {
        "busy.ics": event("busy", day + timedelta(minutes=30), 1),  # slots 1-2
        "tentative.ics": event("tentative", day + timedelta(hours=2), 0.25, "STATUS:TENTATIVE\r\n"),  # slot 4
        "away.ics": event("away", day + timedelta(hours=3), 1, "X-MICROSOFT-CDO-BUSYSTATUS:OOF\r\n"),  # 6-7
        "free.ics": event("free", day + timedelta(hours=4), 1, "TRANSP:TRANSPARENT\r\n"),
        "gone.ics": event("gone", day + timedelta(hours=4), 1, "STATUS:CANCELLED\r\n"),
        "daily.ics": event("daily", day - timedelta(days=2, minutes=-300), 0.5, rule="RRULE:FREQ=DAILY\r\n"),  # 10
    })
    put_all(pim, colleague, CALENDAR, {"meeting.ics": event("meeting", day + timedelta(hours=1), 2)})  # slots 2-5
    mine, theirs, outsider = resolve(phone, [user, colleague, "x@elsewhere.net"],
                                     Availability=availability(day, 6))
    assert mine.findtext(f"{R}Recipient/{R}Availability/{R}Status") == "1"
    assert mine.findtext(f"{R}Recipient/{R}Availability/{R}MergedFreeBusy") == "022010330020"
    colleague_busy = theirs.find(f"{R}Recipient/{R}Availability")
    if pim.dav:  # Radicale: no scheduling, nobody's free/busy but the user's
        assert colleague_busy.findtext(R + "Status") == "163"
    else:
        assert (colleague_busy.findtext(R + "Status"), colleague_busy.findtext(R + "MergedFreeBusy")) == \
            ("1", "002222000000")
    assert outsider.findtext(f"{R}Recipient/{R}Availability/{R}Status") == "163"


def test_availability_is_refused_without_a_span_and_omitted_where_ambiguous(pim: RunningGateway) -> None:
    user = new_user(pim)
    phone = Phone(pim, user)
    put_all(pim, user, CONTACTS, {
        f"{n}.vcf": f"BEGIN:VCARD\r\nVERSION:3.0\r\nUID:{n}\r\nFN:Same {n}\r\nN:{n};Same;;;\r\n"
                    f"EMAIL:{n}@example.org\r\nEND:VCARD\r\n"
        for n in ("one", "two")})
    (ambiguous,) = resolve(phone, ["Same"], Availability=availability(NOW, 2))
    assert ambiguous.findtext(R + "Status") == "2"
    assert ambiguous.find(f".//{R}Availability") is None
    root = etree.Element(R + "ResolveRecipients")
    etree.SubElement(root, R + "To").text = user
    span = etree.SubElement(etree.SubElement(root, R + "Options"), R + "Availability")
    etree.SubElement(span, R + "StartTime").text = "2026-12-01T10:00:00.000Z"
    etree.SubElement(span, R + "EndTime").text = "2026-12-01T09:00:00.000Z"
    assert wbxml.decode(phone.post("ResolveRecipients", root).content).findtext(R + "Status") == "5"


def test_below_14_0_availability_is_not_answered(pim: RunningGateway) -> None:
    """Availability is a 14.0 element: a 12.1 phone's answer never carries it (and the version
    walk of every response, tests/conftest.py, would fail this test if it did)."""
    user = new_user(pim)
    old = Phone(pim, user, version="12.1")
    (mine,) = resolve(old, [user], Availability=availability(NOW, 2), CertificateRetrieval="2")
    assert mine.findtext(R + "Status") == "1"
    assert mine.find(f".//{R}Availability") is None
    assert mine.findtext(f"{R}Recipient/{R}Certificates/{R}Status") == "7"
