"""The JMAP driver against a fake upstream (httpx.MockTransport): discovery
through a redirect, relative apiUrl, error mapping. The same driver runs
against the real Cyrus in tests/gateway."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest

from usm.upstream import AuthenticationFailed, Credentials, UpstreamError, UpstreamUnavailable, sharing
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
    # A server without eventSourceUrl: no stream, the caller polls.
    assert await _upstream(_server).subscribe(ALICE) is None


async def test_an_event_source_without_push_is_not_asked_again_for_a_while() -> None:
    """Debian's Cyrus 3.6 names an EventSource that answers 204 No Content: the first
    watcher learns it, the next ones (every user's) poll without asking."""
    asked: list[str] = []

    def server(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/events":
            asked.append(str(request.url))
            return httpx.Response(204)
        return httpx.Response(200, json={**SESSION, "eventSourceUrl": "/events?types={types}"})

    upstream = _upstream(server)
    events = await upstream.subscribe(ALICE)
    assert events is not None
    with pytest.raises(UpstreamUnavailable, match="204"):
        async for _ in events:
            pass
    assert await upstream.subscribe(ALICE) is None
    assert len(asked) == 1
    upstream._no_push_until = 0.0  # NO_PUSH_SECONDS later: asked again
    assert await upstream.subscribe(ALICE) is not None


async def test_reads_in_flight_are_shared_only_by_requests_that_knew_the_same_state() -> None:
    asked: list[str] = []

    async def server(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/.well-known/jmap":
            return httpx.Response(200, json=SESSION)
        [[name, args, tag]] = json.loads(request.content)["methodCalls"]
        asked.append(name)
        await asyncio.sleep(0.05)  # in flight long enough for the others to come
        if name == "Email/changes":
            return httpx.Response(200, json={"methodResponses": [[name, {
                "newState": "s2", "created": ["e1"], "updated": [], "destroyed": []}, tag]]})
        return httpx.Response(200, json={"methodResponses": [[name, {"list": [
            {"id": i, "mailboxIds": {"m1": True}, "keywords": {}, "receivedAt": "2026-11-30T08:00:00Z"}
            for i in args["ids"]]}, tag]]})

    upstream = _upstream(server)
    mail = upstream.mail(ALICE)
    await upstream.session(ALICE)
    with sharing("s2"):  # five checks woken by the same change: one Email/changes, one Email/get
        found = await asyncio.gather(*(mail.changes("s1") for _ in range(5)),
                                     *(mail.versions("m1", ["e1"], None) for _ in range(3)))
    assert asked == ["Email/changes", "Email/get"]
    assert all(f.ids == ["e1"] for f in found[:5]) and all(v == {"e1": ""} for v in found[5:])

    asked.clear()

    async def knowing(state: str | None) -> object:
        with sharing(state):
            return await mail.changes("s1")
    # A read started before a newer change is not the answer of a request woken by it, and
    # outside a Ping's checks (None) nothing is shared.
    await asyncio.gather(knowing("s2"), knowing("s3"), knowing(None), knowing(None))
    assert asked == ["Email/changes"] * 4
    assert upstream.shared_reads == 6
    await upstream.aclose()


@pytest.mark.parametrize(("changes", "restructured"), [
    ({"updated": ["inbox"], "updatedProperties": ["totalEmails", "unreadEmails", "totalThreads", "unreadThreads"]},
     False),  # a delivery, as Cyrus 3.6 answers it
    ({"updated": [], "updatedProperties": None}, False),
    ({"updated": ["inbox"], "updatedProperties": None}, True),  # renamed or moved: the server does not narrow it
    ({"updated": ["inbox"], "updatedProperties": ["name"]}, True),
    ({"created": ["new"], "updated": [], "updatedProperties": None}, True),
    ({"destroyed": ["old"], "updated": [], "updatedProperties": None}, True),
    ({"updated": ["inbox"], "updatedProperties": ["totalEmails"], "hasMoreChanges": True}, True),
    ({"error": "cannotCalculateChanges"}, True),
])
async def test_whether_the_folders_changed_beyond_their_counts(changes: dict[str, Any], restructured: bool) -> None:
    asked: list[dict[str, Any]] = []

    def server(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/.well-known/jmap":
            return httpx.Response(200, json=SESSION)
        [[name, args, tag]] = json.loads(request.content)["methodCalls"]
        asked.append(args)
        if "error" in changes:
            return httpx.Response(200, json={"methodResponses": [["error", {"type": changes["error"]}, tag]]})
        answer = {"oldState": "1", "newState": "2", "hasMoreChanges": False, "created": [], "destroyed": [], **changes}
        return httpx.Response(200, json={"methodResponses": [[name, answer, tag]]})

    assert await _upstream(server).folders_restructured(ALICE, "1") is restructured
    assert asked[0]["sinceState"] == "1"


class _SessionServer:
    """A JMAP server whose session has a state, counting session reads and the calls made;
    ``password`` may change, and so may the session's state."""

    def __init__(self) -> None:
        self.password, self.state = ALICE.password, "s1"
        self.session_reads = 0
        self.calls: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.headers.get("authorization") != httpx.BasicAuth(ALICE.user, self.password)._auth_header:
            return httpx.Response(401)
        if request.url.path == "/.well-known/jmap":
            self.session_reads += 1
            return httpx.Response(200, json={**SESSION, "state": self.state})
        [[name, args, tag]] = json.loads(request.content)["methodCalls"]
        self.calls.append(name)
        answer = args if name == "Core/echo" else {"list": [], "state": "e1"}
        return httpx.Response(200, json={"methodResponses": [[name, answer, tag]], "sessionState": self.state})


async def test_a_known_session_signs_in_with_a_core_echo_and_a_changed_one_is_read_again() -> None:
    """RFC 8620 4 and 3.4: the session resource is read once (Cyrus answers it slowly: ~160 ms
    at 5,000 accounts); later sign-ins check the password with Core/echo; an answer whose
    sessionState moved makes the session be read again."""
    server = _SessionServer()
    upstream = _upstream(server)
    await upstream.authenticate(ALICE)
    assert (server.session_reads, server.calls) == (1, [])
    account = await upstream.authenticate(ALICE)
    assert account.account_id == "acc1" and (server.session_reads, server.calls) == (1, ["Core/echo"])
    # A changed password is refused by the echo; the session is not read for it.
    server.password = "changed"
    with pytest.raises(AuthenticationFailed):
        await upstream.authenticate(ALICE)
    assert server.session_reads == 1
    server.password = ALICE.password
    # The session changed: the echo's sessionState says so, and the session is read again.
    server.state = "s2"
    await upstream.authenticate(ALICE)
    assert server.session_reads == 2
    # So does any call's answer: the next call reads it first.
    server.state = "s3"
    await upstream.folders(ALICE)
    assert server.session_reads == 2
    await upstream.folders(ALICE)
    assert server.session_reads == 3
    await upstream.folders(ALICE)
    assert server.session_reads == 3  # unchanged since: kept
    await upstream.aclose()


async def test_a_session_without_a_state_is_kept() -> None:
    """A server whose answers name a sessionState its session lacks (or the other way round)
    is not asked for the session on every call."""
    server = _SessionServer()

    def no_state(request: httpx.Request) -> httpx.Response:
        response = server(request)
        if request.url.path == "/.well-known/jmap":
            return httpx.Response(200, json=SESSION)
        return response
    upstream = _upstream(no_state)
    await upstream.authenticate(ALICE)
    for _ in range(3):
        await upstream.folders(ALICE)
        await upstream.authenticate(ALICE)
    assert server.session_reads == 1
    await upstream.aclose()


async def test_a_core_echo_answered_wrongly_is_an_upstream_error() -> None:
    server = _SessionServer()

    def garbled(request: httpx.Request) -> httpx.Response:
        if request.url.path != "/.well-known/jmap":
            return httpx.Response(200, json={"methodResponses": [["error", {"type": "unknownMethod"}, "0"]]})
        return server(request)
    upstream = _upstream(garbled)
    await upstream.authenticate(ALICE)
    with pytest.raises(UpstreamError, match="Core/echo"):
        await upstream.authenticate(ALICE)
    await upstream.aclose()
