"""ValidateCert with certificate chains the test makes: a valid chain through an
intermediate, an expired leaf, an unknown root, a certificate for web servers only, a
revoked one whose CRL is served on loopback (CheckCRL), and a CRL that cannot be had."""

from __future__ import annotations

import base64
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from lxml import etree

import wbxml
from tests.conftest import RunningGateway, free_port, running_gateway
from tests.gateway.helpers import Phone, new_user

pytestmark = [pytest.mark.postgres, pytest.mark.upstream]

V = "{ValidateCert:}"
NOW = datetime.now(UTC)
CRLS: dict[str, bytes] = {}


class _Crls(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        data = CRLS.get(self.path)
        self.send_response(200 if data else 404)
        self.end_headers()
        if data:
            self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def crl_server() -> Iterator[str]:
    port = free_port()
    server = ThreadingHTTPServer(("127.0.0.1", port), _Crls)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{port}"
    server.shutdown()
    server.server_close()


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def make(common: str, issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None, *, ca: bool,
         days: tuple[int, int] = (-1, 365), crl: str | None = None,
         usage: x509.ObjectIdentifier = ExtendedKeyUsageOID.EMAIL_PROTECTION,
         ) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    signer_cert, signer_key = issuer if issuer else (None, key)
    builder = (x509.CertificateBuilder().subject_name(_name(common))
               .issuer_name(signer_cert.subject if signer_cert else _name(common))
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(NOW + timedelta(days=days[0])).not_valid_after(NOW + timedelta(days=days[1]))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if not ca:
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    if crl:
        builder = builder.add_extension(x509.CRLDistributionPoints([x509.DistributionPoint(
            [x509.UniformResourceIdentifier(crl)], None, None, None)]), critical=False)
    return builder.sign(signer_key, hashes.SHA256()), key


def b64(cert: x509.Certificate) -> str:
    return base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()


def revocation_list(issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey], revoked: list[x509.Certificate]
                    ) -> bytes:
    builder = (x509.CertificateRevocationListBuilder().issuer_name(issuer[0].subject)
               .last_update(NOW - timedelta(days=1)).next_update(NOW + timedelta(days=7)))
    for cert in revoked:
        builder = builder.add_revoked_certificate(x509.RevokedCertificateBuilder().serial_number(cert.serial_number)
                                                  .revocation_date(NOW - timedelta(hours=1)).build())
    return builder.sign(issuer[1], hashes.SHA256()).public_bytes(serialization.Encoding.DER)


def validate(phone: Phone, certs: list[str], chain: list[str], *, check_crl: bool = False) -> list[str]:
    root = etree.Element(V + "ValidateCert")
    if chain:
        holder = etree.SubElement(root, V + "CertificateChain")
        for one in chain:
            etree.SubElement(holder, V + "Certificate").text = one
    holder = etree.SubElement(root, V + "Certificates")
    for one in certs:
        etree.SubElement(holder, V + "Certificate").text = one
    if check_crl:
        etree.SubElement(root, V + "CheckCRL").text = "1"
    answer = wbxml.decode(phone.post("ValidateCert", root).content)
    assert answer.findtext(V + "Status") == "1", etree.tostring(answer)
    return [c.findtext(V + "Status") for c in answer.iterfind(V + "Certificate")]


def test_chains_expiry_trust_usage_and_revocation(cyrus: str, database_url: str, crl_server: str,
                                                  tmp_path: Path) -> None:
    root = make("Test Root", None, ca=True, days=(-10, 3650))
    intermediate = make("Test Intermediate", root, ca=True, days=(-10, 1000), crl=f"{crl_server}/root.crl")
    good = make("alice@example.org", intermediate, ca=False, crl=f"{crl_server}/intermediate.crl")
    expired = make("old@example.org", intermediate, ca=False, days=(-400, -30))
    revoked = make("lost@example.org", intermediate, ca=False, crl=f"{crl_server}/intermediate.crl")
    web_only = make("www.example.org", intermediate, ca=False, usage=ExtendedKeyUsageOID.SERVER_AUTH)
    unreachable = make("far@example.org", intermediate, ca=False, crl=f"{crl_server}/missing.crl")
    stranger_root = make("Stranger Root", None, ca=True)
    stranger = make("eve@example.org", stranger_root, ca=False)
    CRLS["/root.crl"] = revocation_list(root, [])
    CRLS["/intermediate.crl"] = revocation_list(intermediate, [revoked[0]])
    store = tmp_path / "roots.pem"
    store.write_bytes(root[0].public_bytes(serialization.Encoding.PEM))
    with running_gateway(cyrus, database_url, trust_store=str(store)) as gw:
        phone = Phone(gw, new_user(gw))
        chain = [b64(intermediate[0])]
        assert validate(phone, [b64(good[0])], chain) == ["1"]
        assert validate(phone, [b64(good[0]), b64(expired[0]), b64(web_only[0])], chain) == ["1", "7", "6"]
        assert validate(phone, [b64(stranger[0])], [b64(stranger_root[0])]) == ["4"]  # a root nobody trusts
        assert validate(phone, [b64(good[0])], []) == ["4"]  # no path without the intermediate
        assert validate(phone, [b64(revoked[0])], chain) == ["1"]  # no CheckCRL: the CRL is not asked
        assert validate(phone, [b64(good[0]), b64(revoked[0]), b64(unreachable[0])], chain, check_crl=True) == \
            ["1", "13", "14"]
        assert validate(phone, ["not a certificate"], chain) == ["2"]
        empty = wbxml.decode(phone.post("ValidateCert", etree.Element(V + "ValidateCert")).content)
        assert empty.findtext(V + "Status") == "2"


def test_the_systems_trust_store_is_the_default(gateway: RunningGateway) -> None:
    phone = Phone(gateway, new_user(gateway))
    root = make("Anyone's Root", None, ca=True)
    leaf = make("x@example.org", root, ca=False)
    assert validate(phone, [b64(leaf[0])], [b64(root[0])]) == ["4"]
