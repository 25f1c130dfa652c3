"""The JMAP driver against a fake upstream (httpx.MockTransport): discovery
through a redirect, relative apiUrl, error mapping. The same driver runs
against the real Cyrus in tests/gateway."""

from __future__ import annotations

import json

import httpx
import pytest

from usm.upstream import AuthenticationFailed, Credentials, UpstreamError, UpstreamUnavailable
from usm.upstream.jmap import JMAPUpstream

ALICE = Credentials("alice@example.com", "secret")
SESSION = {"username": "alice@example.com", "apiUrl": "/jmap/api/",
           "primaryAccounts": {"urn:ietf:params:jmap:mail": "acc1"}}


def _upstream(handler: object) -> JMAPUpstream:
    return JMAPUpstream("http://up.example", transport=httpx.MockTransport(handler))  # type: ignore[arg-type]


def _server(request: httpx.Request) -> httpx.Response:
    if request.headers.get("authorization") != httpx.BasicAuth(ALICE.user, ALICE.password)._auth_header:
        return httpx.Response(401)
    if request.url.path == "/.well-known/jmap":
        return httpx.Response(301, headers={"Location": "/jmap"})
    if request.url.path == "/jmap":
        return httpx.Response(200, json=SESSION)
    if request.url.path == "/jmap/api/":
        body = json.loads(request.content)
        [[name, args, tag]] = body["methodCalls"]
        assert (name, args["accountId"]) == ("Mailbox/get", "acc1")
        return httpx.Response(200, json={"methodResponses": [[name, {"list": [
            {"id": "m1", "name": "Inbox", "parentId": None, "role": "inbox"},
            {"id": "m2", "name": "Sub", "parentId": "m1", "role": None}]}, tag]]})
    return httpx.Response(404)


async def test_discovery_and_folders() -> None:
    upstream = _upstream(_server)
    account = await upstream.authenticate(ALICE)
    assert (account.user, account.account_id) == ("alice@example.com", "acc1")
    folders = await upstream.folders(ALICE)
    assert [(f.id, f.name, f.parent_id, f.role) for f in folders] == [
        ("m1", "Inbox", None, "inbox"), ("m2", "Sub", "m1", None)]
    await upstream.aclose()


async def test_wrong_password() -> None:
    with pytest.raises(AuthenticationFailed):
        await _upstream(_server).authenticate(Credentials(ALICE.user, "wrong"))


async def test_server_errors_and_garbage() -> None:
    with pytest.raises(UpstreamUnavailable):
        await _upstream(lambda r: httpx.Response(503)).authenticate(ALICE)
    with pytest.raises(UpstreamError, match="JSON"):
        await _upstream(lambda r: httpx.Response(200, content=b"<html>")).authenticate(ALICE)
    with pytest.raises(UpstreamError, match="lacks"):
        await _upstream(lambda r: httpx.Response(200, json={"apiUrl": "/x"})).authenticate(ALICE)


async def test_unreachable() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with pytest.raises(UpstreamUnavailable):
        await _upstream(refuse).authenticate(ALICE)


async def test_event_source_yields_once_per_state_change_and_reports_the_end() -> None:
    """RFC 8620 7.3: the URL template filled in, Accept: text/event-stream, one yield per
    "state" event (pings and other events ignored), UpstreamUnavailable when the stream ends."""
    seen: list[httpx.Request] = []
    stream = (b"event: ping\ndata: {\"interval\":30}\n\n"
              b"event: state\ndata: {\"@type\":\"StateChange\",\"changed\":{\"acc1\":{\"Email\":\"s2\"}}}\n\n"
              b": a comment line\n\n"
              b"event: state\ndata: {\"@type\":\"StateChange\",\"changed\":{\"acc1\":{\"Mailbox\":\"m9\"}}}\n\n")

    def server(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/events":
            seen.append(request)
            return httpx.Response(200, content=stream, headers={"content-type": "text/event-stream"})
        if request.url.path in ("/.well-known/jmap", "/jmap"):
            return httpx.Response(200, json={**SESSION, "eventSourceUrl":
                                             "/events?types={types}&closeafter={closeafter}&ping={ping}"})
        return httpx.Response(404)

    upstream = _upstream(server)
    events = await upstream.subscribe(ALICE)
    assert events is not None
    got = 0
    with pytest.raises(UpstreamUnavailable, match="closed"):
        async for _ in events:
            got += 1
    assert got == 2
    assert seen[0].url.params == httpx.QueryParams({"types": "Email,Mailbox", "closeafter": "no", "ping": "30"})
    assert seen[0].headers["accept"] == "text/event-stream"
    # A server without eventSourceUrl (Cyrus 3.6 from Debian): no stream, the caller polls.
    assert await _upstream(_server).subscribe(ALICE) is None
