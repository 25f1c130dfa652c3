"""JMAP upstream (RFC 8620 core, RFC 8621 mail) over httpx.

Discovery: ``GET <base>/.well-known/jmap`` (Cyrus answers with a redirect to
/jmap/); the Session resource's URLs may be relative (Cyrus), so they are
resolved against the URL the session came from.
"""

from __future__ import annotations

import json
import time
from typing import Any

import httpx

from usm.upstream import (
    Account,
    AuthenticationFailed,
    Credentials,
    Folder,
    UpstreamError,
    UpstreamUnavailable,
)

CORE = "urn:ietf:params:jmap:core"
MAIL = "urn:ietf:params:jmap:mail"


class JMAPSession:
    """The parts of a JMAP Session resource (RFC 8620 2) the gateway uses."""

    def __init__(self, url: httpx.URL, data: dict[str, Any]) -> None:
        try:
            self.api_url = url.join(data["apiUrl"])
            self.account_id = data["primaryAccounts"][MAIL]
            self.username = data["username"]
        except (KeyError, TypeError) as exc:
            raise UpstreamError(f"JMAP session at {url} lacks {exc} (no mail account?)") from exc


class JMAPUpstream:
    def __init__(self, base_url: str, *, transport: httpx.AsyncBaseTransport | None = None,
                 timeout: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.AsyncClient(transport=transport, timeout=timeout, follow_redirects=True)
        # user -> (session, expiry). Every API call still carries the user's own
        # credentials, so a cached session grants nothing by itself.
        self._sessions: dict[str, tuple[JMAPSession, float]] = {}
        self.session_ttl = 300.0

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _request(self, method: str, url: str | httpx.URL, credentials: Credentials,
                       **kwargs: Any) -> httpx.Response:
        try:
            response = await self._http.request(
                method, url, auth=(credentials.user, credentials.password), **kwargs)
        except httpx.HTTPError as exc:
            raise UpstreamUnavailable(f"JMAP upstream {self.base_url} unreachable: {exc!r}") from exc
        if response.status_code in (401, 403):
            raise AuthenticationFailed(f"JMAP upstream refused the credentials of {credentials.user}")
        if response.status_code >= 500:
            raise UpstreamUnavailable(f"JMAP upstream answered {response.status_code} for {method} {url}")
        if response.status_code >= 400:
            raise UpstreamError(f"JMAP upstream answered {response.status_code} for {method} {url}")
        return response

    async def session(self, credentials: Credentials, *, fresh: bool = False) -> JMAPSession:
        cached = self._sessions.get(credentials.user)
        if cached and not fresh and cached[1] > time.monotonic():
            return cached[0]
        response = await self._request("GET", f"{self.base_url}/.well-known/jmap", credentials)
        session = JMAPSession(response.url, _json(response))
        if len(self._sessions) > 100_000:
            self._sessions.clear()
        self._sessions[credentials.user] = (session, time.monotonic() + self.session_ttl)
        return session

    async def authenticate(self, credentials: Credentials) -> Account:
        session = await self.session(credentials, fresh=True)
        return Account(user=session.username, account_id=session.account_id)

    async def call(self, credentials: Credentials, calls: list[list[Any]]) -> list[list[Any]]:
        """One JMAP API request; returns methodResponses, raising on method errors."""
        session = await self.session(credentials)
        for call in calls:
            call[1].setdefault("accountId", session.account_id)
        body = {"using": [CORE, MAIL], "methodCalls": calls}
        response = await self._request("POST", session.api_url, credentials, json=body)
        answers = _json(response).get("methodResponses")
        if not isinstance(answers, list):
            raise UpstreamError("JMAP response without methodResponses")
        for name, args, _ in answers:
            if name == "error":
                raise UpstreamError(f"JMAP method error: {args}")
        return answers

    async def folders(self, credentials: Credentials) -> list[Folder]:
        [(_, result, _)] = await self.call(credentials, [["Mailbox/get", {"ids": None}, "0"]])
        return [
            Folder(id=m["id"], name=m["name"], parent_id=m.get("parentId"), role=m.get("role"))
            for m in result["list"]
        ]


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        data = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UpstreamError(f"{response.url} did not answer JSON") from exc
    if not isinstance(data, dict):
        raise UpstreamError(f"{response.url} answered JSON that is not an object")
    return data
