"""The gateway behind a real Apache (deploy/apache/eas-gateway.conf as shipped):
a real client over HTTPS, a Ping held longer than Apache's Timeout, and
Autodiscover naming the public https URL."""

from __future__ import annotations

import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import requests
from pyactivesync import Client
from pyactivesync.models import BodyType, FolderType

from tests.conftest import RunningGateway, running_gateway
from tests.deploy.apache import GLOBAL_TIMEOUT, RunningApache, apache
from tests.gateway.helpers import deliver, emails, message, new_device_id, new_user, password


@pytest.fixture
def proxied(gateway: RunningGateway, tmp_path: Path) -> Iterator[tuple[RunningGateway, RunningApache]]:
    """A gateway that trusts the local proxy and allows short heartbeats, behind Apache."""
    with running_gateway(gateway.upstream, gateway.database_url, trusted_proxies="127.0.0.1", heartbeat_min=1,
                         poll_seconds=0.5) as gw, apache(tmp_path / "apache", [gw.url]) as front:
        yield gw, front


def https_client(front: RunningApache, user: str) -> Client:
    client = Client(front.host, user, password(user), device_id=new_device_id(), timeout=60)
    client._transport.session.verify = str(front.certificate)  # the test's own CA, not verify=False
    # requests lets REQUESTS_CA_BUNDLE/CURL_CA_BUNDLE override a session's verify; this machine sets them.
    client._transport.session.trust_env = False
    return client


def test_a_real_client_syncs_over_https_through_apache(proxied: tuple[RunningGateway, RunningApache]) -> None:
    gw, front = proxied
    user = new_user(gw)
    deliver(gw, user, [message(f"through apache {n}", text=f"body {n} – ünïcode",
                               attachments=[("a.bin", "application/octet-stream", bytes(range(256)) * 40)])
                       for n in range(5)])
    with https_client(front, user) as client:
        inbox = next(f for f in client.list_folders() if f.type == FolderType.INBOX)
        key = client.sync_folder(inbox.id, "0").sync_key
        result = client.sync_folder(inbox.id, key, window_size=50)
        subjects = {item.fields["Email.Subject"]: item.server_id for item in result.added}
        assert set(subjects) == {f"through apache {n}" for n in range(5)}
        fetched = client.fetch_item(inbox.id, subjects["through apache 3"], body_type=BodyType.PLAIN_TEXT)
        assert fetched.body.data.strip() == "body 3 – ünïcode"
        assert client.fetch_attachment(fetched.attachments[0].file_reference) == bytes(range(256)) * 40
        # A write goes through too.
        client.send_mail(message("sent through apache", text="hi", to="bob@example.com", sender=user),
                         save_in_sent_items=True, client_id="apache-1")
    assert any("sent through apache" == s for s in emails(gw, user))


def test_a_ping_held_longer_than_apaches_timeout_survives(proxied: tuple[RunningGateway, RunningApache]) -> None:
    gw, front = proxied
    heartbeat = GLOBAL_TIMEOUT + 4
    with https_client(front, new_user(gw)) as client:
        inbox = next(f for f in client.list_folders() if f.type == FolderType.INBOX)
        client.sync_folder(inbox.id, client.sync_folder(inbox.id, "0").sync_key)
        started = time.monotonic()
        result = client.ping([inbox.id], heartbeat=heartbeat, timeout=60)
        assert result.status == "1" and time.monotonic() - started >= heartbeat - 0.5


def test_without_the_vhost_timeouts_the_same_ping_fails(gateway: RunningGateway, tmp_path: Path) -> None:
    """What ProxyTimeout/Timeout in the vhost are for: without them Apache gives up at its global Timeout."""
    edits = [("    ProxyTimeout 3660\n", ""), ("    Timeout 3660\n", "")]
    with running_gateway(gateway.upstream, gateway.database_url, heartbeat_min=1) as gw, \
            apache(tmp_path / "apache", [gw.url], vhost_edits=edits) as front:
        user = new_user(gw)
        with https_client(front, user) as client:
            inbox = next(f for f in client.list_folders() if f.type == FolderType.INBOX)
            client.sync_folder(inbox.id, client.sync_folder(inbox.id, "0").sync_key)
            with pytest.raises(requests.HTTPError) as failed:
                client._transport.post("Ping", user, _ping_body(inbox.id, GLOBAL_TIMEOUT + 4), timeout=60)
    assert failed.value.response.status_code in (502, 504)


def _ping_body(folder_id: str, heartbeat: int) -> bytes:
    from lxml import etree

    import wbxml

    root = etree.Element("{Ping:}Ping")
    etree.SubElement(root, "{Ping:}HeartbeatInterval").text = str(heartbeat)
    folder = etree.SubElement(etree.SubElement(root, "{Ping:}Folders"), "{Ping:}Folder")
    etree.SubElement(folder, "{Ping:}Id").text = folder_id
    etree.SubElement(folder, "{Ping:}Class").text = "Email"
    return wbxml.encode(root)


def test_autodiscover_through_apache_names_the_https_url(proxied: tuple[RunningGateway, RunningApache]) -> None:
    _, front = proxied
    trust = ssl.create_default_context(cafile=str(front.certificate))
    answer = httpx.get(front.url + "/autodiscover/autodiscover.json",
                       params={"Email": "alice@example.com", "Protocol": "ActiveSync"}, verify=trust)
    # The scheme from X-Forwarded-Proto and the host kept by ProxyPreserveHost.
    assert answer.json()["Url"] == front.url + "/Microsoft-Server-ActiveSync"
    # What is not proxied stays private to the gateway's port.
    assert httpx.get(front.url + "/metrics", verify=trust).status_code == 404
