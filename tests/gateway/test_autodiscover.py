"""Autodiscover (MS-ASCMD 2.2.1.1 POX and the JSON v2 form) on the real gateway."""

from __future__ import annotations

import httpx
import pytest
from lxml import etree

from eas_gateway.autodiscover import MOBILESYNC_NS, REQUEST_NS, RESPONSE_NS
from tests.conftest import RunningGateway, running_gateway

M = "{%s}" % MOBILESYNC_NS


def pox_request(address: str, schema: str = MOBILESYNC_NS) -> bytes:
    return (f'<?xml version="1.0" encoding="utf-8"?><Autodiscover xmlns="{REQUEST_NS}"><Request>'
            f"<EMailAddress>{address}</EMailAddress><AcceptableResponseSchema>{schema}"
            "</AcceptableResponseSchema></Request></Autodiscover>").encode()


def pox(gw: RunningGateway, body: bytes, *, path: str = "/autodiscover/autodiscover.xml",
        auth: tuple[str, str] | None = ("alice@example.com", "alice")) -> httpx.Response:
    return httpx.post(gw.url + path, content=body, auth=auth, headers={"Content-Type": "text/xml"}, timeout=30)


@pytest.mark.parametrize("path", ["/autodiscover/autodiscover.xml", "/Autodiscover/Autodiscover.xml"])
def test_pox_names_the_activesync_url_and_the_user(gateway: RunningGateway, path: str) -> None:
    answer = pox(gateway, pox_request("alice@example.com"), path=path)
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/xml")
    root = etree.fromstring(answer.content)
    assert root.tag == "{%s}Autodiscover" % RESPONSE_NS
    server = root.find(f"{M}Response/{M}Action/{M}Settings/{M}Server")
    assert server.findtext(M + "Type") == "MobileSync"
    assert server.findtext(M + "Url") == gateway.endpoint == server.findtext(M + "Name")
    assert root.findtext(f"{M}Response/{M}User/{M}EMailAddress") == "alice@example.com"
    assert root.findtext(f"{M}Response/{M}User/{M}DisplayName")
    # The URL it names works: OPTIONS with the same credentials.
    assert httpx.options(server.findtext(M + "Url"), auth=("alice@example.com", "alice")).status_code == 200


def test_pox_needs_credentials(gateway: RunningGateway) -> None:
    answer = pox(gateway, pox_request("alice@example.com"), auth=None)
    assert answer.status_code == 401 and answer.headers["www-authenticate"].startswith("Basic")
    assert pox(gateway, pox_request("alice@example.com"), auth=("alice@example.com", "wrong")).status_code == 401


@pytest.mark.parametrize("body, code", [
    (pox_request("bob@example.com"), "500"),  # not the authenticated user's address
    (pox_request("alice@example.com", schema="http://example.com/other"), "601"),
    (b"<Autodiscover", "600"),
    (pox_request("not an address"), "600"),
    (pox_request("alice@example.com") + b" " * 70_000, "600"),  # over 64 KB
])
def test_pox_errors_are_answered_in_the_document(gateway: RunningGateway, body: bytes, code: str) -> None:
    answer = pox(gateway, body)
    assert answer.status_code == 200
    error = etree.fromstring(answer.content).find(f"{M}Response/{M}Error")
    assert error.findtext(M + "ErrorCode") == code and error.findtext(M + "Message")


def test_json_v2_without_credentials_and_the_configured_public_url(gateway: RunningGateway) -> None:
    with running_gateway(gateway.upstream, gateway.database_url, public_url="https://mail.example.com/",
                         domains="example.com, Example.org") as gw:
        for answer in (httpx.get(gw.url + "/autodiscover/autodiscover.json",
                                 params={"Email": "alice@example.com", "Protocol": "ActiveSync"}),
                       httpx.get(gw.url + "/autodiscover/autodiscover.json/v1.0/someone@EXAMPLE.ORG",
                                 params={"Protocol": "activesync"})):
            assert answer.status_code == 200
            assert answer.json() == {"Protocol": "ActiveSync",
                                     "Url": "https://mail.example.com/Microsoft-Server-ActiveSync"}
        other = httpx.get(gw.url + "/autodiscover/autodiscover.json",
                          params={"Email": "alice@elsewhere.net", "Protocol": "ActiveSync"})
        assert other.status_code == 404 and other.json()["ErrorCode"] == "InvalidUser"
        assert "elsewhere.net" in other.json()["ErrorMessage"]
        refused = pox(gw, pox_request("alice@elsewhere.net"))
        assert etree.fromstring(refused.content).findtext(f"{M}Response/{M}Error/{M}ErrorCode") == "500"


@pytest.mark.parametrize("params, status, code", [
    ({"Email": "alice@example.com", "Protocol": "Ews"}, 400, "InvalidProtocol"),
    ({"Email": "alice@example.com"}, 400, "InvalidProtocol"),
    ({"Email": "nobody", "Protocol": "ActiveSync"}, 400, "InvalidRequest"),
])
def test_json_v2_errors(gateway: RunningGateway, params: dict[str, str], status: int, code: str) -> None:
    answer = httpx.get(gateway.url + "/autodiscover/autodiscover.json", params=params)
    assert (answer.status_code, answer.json()["ErrorCode"]) == (status, code)
