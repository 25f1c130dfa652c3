"""JMAP upstream (RFC 8620 core, RFC 8621 mail) over httpx.

Discovery: ``GET <base>/.well-known/jmap`` (Cyrus answers with a redirect to
/jmap/); the Session resource's URLs may be relative (Cyrus), so they are
resolved against the URL the session came from.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import quote

import httpx

from usm.upstream import (
    Account,
    AuthenticationFailed,
    BodyRequest,
    Credentials,
    Folder,
    FolderRefused,
    Identity,
    MailQuery,
    Message,
    NotFound,
    StateTooOld,
    SubmissionRefused,
    UpstreamError,
    UpstreamUnavailable,
    Vacation,
    conversation_id,
    note_write,
    shared_as_of,
)
from usm.upstream.jmap_data import GET_CHUNK, chunks, parse_date, to_message, utc_text
from usm.upstream.jmap_items import JMAPMail

CORE = "urn:ietf:params:jmap:core"
MAIL = "urn:ietf:params:jmap:mail"
SUBMISSION = "urn:ietf:params:jmap:submission"
VACATION = "urn:ietf:params:jmap:vacationresponse"
# Capabilities a method needs beyond core and mail (RFC 8621 6, 7, 8).
METHOD_CAPABILITIES = {"Identity": SUBMISSION, "EmailSubmission": SUBMISSION, "VacationResponse": VACATION}
COUNT_PROPERTIES = {"totalEmails", "unreadEmails", "totalThreads", "unreadThreads"}
NO_PUSH_SECONDS = 600.0  # how long a server whose EventSource has no push (204) is not asked again


class JMAPSession:
    """The parts of a JMAP Session resource (RFC 8620 2) the gateway uses."""

    def __init__(self, url: httpx.URL, data: dict[str, Any]) -> None:
        try:
            self.api_url = url.join(data["apiUrl"])
            # A URI template (RFC 8620 2): filled in first, then resolved.
            self.download_template = data.get("downloadUrl")
            self.upload_template = data.get("uploadUrl")
            self.event_source_template = data.get("eventSourceUrl")
            self.url = url
            self.account_id = data["primaryAccounts"][MAIL]
            self.username = data["username"]
            # Every API answer names it (sessionState): when it differs, the session changed.
            self.state = data.get("state")
        except (KeyError, TypeError) as exc:
            raise UpstreamError(f"JMAP session at {url} lacks {exc} (no mail account?)") from exc

    def download_url(self, blob_id: str, type: str, name: str) -> httpx.URL:
        if not isinstance(self.download_template, str):
            raise UpstreamError(f"JMAP session at {self.url} offers no downloadUrl")
        values = {"accountId": self.account_id, "blobId": blob_id, "type": type, "name": name}
        filled = self.download_template
        for key, value in values.items():
            filled = filled.replace("{%s}" % key, quote(value, safe=""))
        return self.url.join(filled)

    def event_source_url(self) -> httpx.URL | None:
        """The push stream (RFC 8620 7.3) for Email and Mailbox changes, kept open with
        a ping every 30 s; None if the server offers none."""
        if not isinstance(self.event_source_template, str):
            return None
        filled = self.event_source_template
        for key, value in (("types", "Email,Mailbox"), ("closeafter", "no"), ("ping", "30")):
            filled = filled.replace("{%s}" % key, value)
        return self.url.join(filled)

    def upload_url(self) -> httpx.URL:
        if not isinstance(self.upload_template, str):
            raise UpstreamError(f"JMAP session at {self.url} offers no uploadUrl")
        return self.url.join(self.upload_template.replace("{accountId}", quote(self.account_id, safe="")))


class JMAPUpstream:
    def __init__(self, base_url: str, *, transport: httpx.AsyncBaseTransport | None = None,
                 timeout: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.AsyncClient(transport=transport, timeout=timeout, follow_redirects=True)
        # user -> (session, expiry). Every API call still carries the user's own
        # credentials, so a cached session grants nothing by itself.
        self._sessions: dict[str, tuple[JMAPSession, float]] = {}
        # Read again when an API answer's sessionState says it changed (RFC 8620 3.4), else after
        # an hour: the session resource is dear (Debian's Cyrus 3.6 answers it in time growing with
        # its accounts, one at a time: ~160 ms each at 5,000 accounts, against 2 ms for a Core/echo).
        self.session_ttl = 3600.0
        # Reads in flight that requests knowing the same upstream state may share (shared()).
        self._in_flight: dict[tuple[Any, ...], asyncio.Future[Any]] = {}
        self.shared_reads = 0
        # An EventSource that answered 204 No Content (no push) is not asked again until then.
        self._no_push_until = 0.0
        # Told of every HTTP call: (operation, seconds, failed). The gateway counts them (/metrics).
        self.observe: Callable[[str, float, bool], None] | None = None

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _request(self, method: str, url: str | httpx.URL, credentials: Credentials, *, op: str,
                       **kwargs: Any) -> httpx.Response:
        started = time.monotonic()
        try:
            response = await self._http.request(
                method, url, auth=credentials.http_auth(), **kwargs)
        except httpx.HTTPError as exc:
            self._observe(op, started, failed=True)
            raise UpstreamUnavailable(f"JMAP upstream {self.base_url} unreachable: {exc!r}") from exc
        # A refused login is the user's mistake, not the upstream's failure.
        self._observe(op, started, failed=response.status_code >= 400 and response.status_code not in (401, 403))
        if response.status_code in (401, 403):
            raise AuthenticationFailed(f"JMAP upstream refused the credentials of {credentials.user}")
        if response.status_code >= 500:
            raise UpstreamUnavailable(f"JMAP upstream answered {response.status_code} for {method} {url}")
        if response.status_code >= 400:
            raise UpstreamError(f"JMAP upstream answered {response.status_code} for {method} {url}")
        return response

    async def reachable(self) -> None:
        started = time.monotonic()
        try:
            response = await self._http.get(f"{self.base_url}/.well-known/jmap", timeout=5.0)
        except httpx.HTTPError as exc:
            self._observe("health", started, failed=True)
            raise UpstreamUnavailable(f"JMAP upstream {self.base_url} unreachable: {exc!r}") from exc
        self._observe("health", started, failed=response.status_code >= 500)
        # Without credentials a JMAP server answers 401: it is there.
        if response.status_code >= 500:
            raise UpstreamUnavailable(f"JMAP upstream answered {response.status_code} to a health check")

    def _observe(self, op: str, started: float, *, failed: bool) -> None:
        if self.observe is not None:
            self.observe(op, time.monotonic() - started, failed)

    def _known_session(self, user: str) -> JMAPSession | None:
        cached = self._sessions.get(user)
        return cached[0] if cached is not None and cached[1] > time.monotonic() else None

    async def session(self, credentials: Credentials, *, fresh: bool = False) -> JMAPSession:
        if not fresh and (known := self._known_session(credentials.user)) is not None:
            return known
        response = await self._request("GET", f"{self.base_url}/.well-known/jmap", credentials, op="session")
        session = JMAPSession(response.url, _json(response))
        if len(self._sessions) > 100_000:
            self._sessions.clear()
        self._sessions[credentials.user] = (session, time.monotonic() + self.session_ttl)
        return session

    async def authenticate(self, credentials: Credentials) -> Account:
        """The upstream's check of the credentials: where the user's session is known, a Core/echo
        with them on its API (RFC 8620 4: answered 401 if they are refused), else the session."""
        session = self._known_session(credentials.user)
        if session is None:
            session = await self.session(credentials, fresh=True)
        else:
            echo = [["Core/echo", {}, "0"]]
            answers = await self._api(session, credentials, {"using": [CORE], "methodCalls": echo}, op="sign-in")
            if answers != echo:
                raise UpstreamError(f"JMAP upstream answered Core/echo with {answers!r:.200}")
            session = await self.session(credentials)  # read again if the answer said it changed
        return Account(user=session.username, account_id=session.account_id)

    async def call(self, credentials: Credentials, calls: list[list[Any]], *,
                   tolerate: frozenset[str] = frozenset()) -> list[list[Any]]:
        """One JMAP API request; returns methodResponses, raising on method errors
        (except those whose type is in ``tolerate``: they come back as answers)."""
        session = await self.session(credentials)
        using = [CORE, MAIL]
        for call in calls:
            call[1].setdefault("accountId", session.account_id)
            extra = METHOD_CAPABILITIES.get(call[0].partition("/")[0])
            if extra and extra not in using:
                using.append(extra)
        # RFC 8620 5.3-5.5: /set, /copy and /import are the methods that change data.
        writes = [c[0] for c in calls if c[0].rpartition("/")[2] in ("set", "copy", "import")]
        if writes:
            note_write(folders=any(w.startswith("Mailbox/") for w in writes))
        answers = await self._api(session, credentials, {"using": using, "methodCalls": calls}, op=calls[0][0])
        for name, args, _ in answers:
            if name == "error" and args.get("type") not in tolerate:
                if args.get("type") == "cannotCalculateChanges" or (
                        args.get("type") == "invalidArguments" and "sinceState" in (args.get("arguments") or ())):
                    # Cyrus answers a state it never gave (the server was replaced) with invalidArguments.
                    raise StateTooOld(f"JMAP upstream cannot calculate changes: {args}")
                raise UpstreamError(f"JMAP method error: {args}")
        return answers

    async def _api(self, session: JMAPSession, credentials: Credentials, body: dict[str, Any], *,
                   op: str) -> list[list[Any]]:
        """One POST to the API: its methodResponses. An answer whose sessionState says the session
        changed (RFC 8620 3.4) drops it: the next use reads it again."""
        answer = _json(await self._request("POST", session.api_url, credentials, json=body, op=op))
        answers = answer.get("methodResponses")
        if not isinstance(answers, list):
            raise UpstreamError("JMAP response without methodResponses")
        if _session_moved(session, answer):
            self._sessions.pop(credentials.user, None)
        return answers

    async def folders(self, credentials: Credentials) -> list[Folder]:
        [(_, result, _)] = await self.call(credentials, [["Mailbox/get", {"ids": None}, "0"]])
        return [
            Folder(id=m["id"], name=m["name"], parent_id=m.get("parentId"), role=m.get("role"))
            for m in result["list"]
        ]


    async def folder_state(self, credentials: Credentials) -> str:
        [(_, result, _)] = await self.call(credentials, [["Mailbox/get", {"ids": []}, "0"]])
        return str(result["state"])

    async def watch_states(self, credentials: Credentials) -> tuple[str, str]:
        [(_, mail, _), (_, boxes, _)] = await self.call(
            credentials, [["Email/get", {"ids": []}, "e"], ["Mailbox/get", {"ids": []}, "m"]])
        return str(mail["state"]), str(boxes["state"])

    async def folders_restructured(self, credentials: Credentials, since: str) -> bool:
        """Whether folders were made, removed or changed (beyond their counts) since the folder
        state ``since`` (RFC 8621 2.2: Mailbox/changes lists updatedProperties when only the
        counts moved, as every delivery moves them); True when the server cannot tell."""
        try:
            [(_, result, _)] = await self.call(credentials, [["Mailbox/changes", {"sinceState": since}, "0"]])
        except StateTooOld:
            return True
        if result.get("created") or result.get("destroyed") or result.get("hasMoreChanges"):
            return True
        counts_only = result.get("updatedProperties")
        return bool(result.get("updated")) and (counts_only is None or not set(counts_only) <= COUNT_PROPERTIES)

    async def subscribe(self, credentials: Credentials) -> AsyncIterator[None] | None:
        """The server's push stream (JMAP EventSource), yielding once per StateChange
        of the user's mail or folders; None when the server offers none. The stream
        ends with UpstreamUnavailable when the connection breaks."""
        if time.monotonic() < self._no_push_until:
            return None
        url = (await self.session(credentials)).event_source_url()
        if url is None:
            return None
        return self._events(url, credentials)

    async def _events(self, url: httpx.URL, credentials: Credentials) -> AsyncIterator[None]:
        # No read timeout shorter than three of the server's 30 s pings.
        timeout = httpx.Timeout(30.0, read=100.0)
        try:
            async with self._http.stream("GET", url, auth=credentials.http_auth(),
                                         headers={"Accept": "text/event-stream"}, timeout=timeout) as response:
                if response.status_code != 200:
                    if response.status_code == 204:  # the server has no push (Cyrus built without it)
                        self._no_push_until = time.monotonic() + NO_PUSH_SECONDS
                    raise UpstreamUnavailable(f"JMAP EventSource answered {response.status_code}")
                event = ""
                async for line in response.aiter_lines():
                    if line.startswith("event:"):
                        event = line[6:].strip()
                    elif line == "":
                        if event == "state":
                            yield None
                        event = ""
        except httpx.HTTPError as exc:
            raise UpstreamUnavailable(f"JMAP EventSource of {self.base_url} broke: {exc!r}") from exc
        raise UpstreamUnavailable(f"JMAP EventSource of {self.base_url} closed")

    def mail(self, credentials: Credentials) -> JMAPMail:
        return JMAPMail(self, credentials)

    async def shared(self, credentials: Credentials, what: tuple[Any, ...],
                     read: Callable[[], Awaitable[Any]]) -> Any:
        """``read()``, or the same read another request has in flight (usm.upstream.sharing)."""
        as_of = shared_as_of()
        if as_of is None:
            return await read()
        key = (credentials.user, as_of, *what)
        running = self._in_flight.get(key)
        if running is not None:
            self.shared_reads += 1
            return await asyncio.shield(running)
        future: asyncio.Future[Any] = asyncio.ensure_future(read())
        self._in_flight[key] = future

        def done(finished: asyncio.Future[Any]) -> None:
            self._in_flight.pop(key, None)
            if not finished.cancelled():
                finished.exception()  # retrieved here too: every waiter may have gone (a Ping's heartbeat ended)
        future.add_done_callback(done)
        return await asyncio.shield(future)

    async def messages(self, credentials: Credentials, ids: list[str], body: BodyRequest) -> dict[str, Message]:
        properties = MESSAGE_PROPERTIES + (["textBody", "htmlBody", "bodyValues"] if body.text or body.html else [])
        args: dict[str, Any] = {"properties": properties, "fetchTextBodyValues": body.text,
                                "fetchHTMLBodyValues": body.html}
        if body.max_bytes is not None:
            args["maxBodyValueBytes"] = max(body.max_bytes, 1)
        found: dict[str, Message] = {}
        for chunk in chunks(ids, GET_CHUNK):
            [(_, result, _)] = await self.call(credentials, [["Email/get", {"ids": chunk, **args}, "0"]])
            for email in result["list"]:
                found[email["id"]] = to_message(email, body)
        return found

    async def download(self, credentials: Credentials, blob_id: str, *, type: str = "application/octet-stream",
                       name: str = "blob") -> bytes:
        session = await self.session(credentials)
        try:
            response = await self._request("GET", session.download_url(blob_id, type, name), credentials,
                                           op="download")
        except UpstreamError as exc:
            if "answered 404" in str(exc):
                raise NotFound(f"blob {blob_id} not found upstream") from exc
            raise
        return response.content

    # -- writing (RFC 8621 2.5, 4.6, 4.8, 6, 7, 8) ---------------------------------------

    async def update_messages(self, credentials: Credentials, patches: dict[str, dict[str, Any]]) -> dict[str, str]:
        """Email/set update with JMAP patches (``keywords/$seen``: True/None,
        ``mailboxIds/<id>``: True/None); returns the ids that failed with the
        SetError type (``notFound`` among them)."""
        failed: dict[str, str] = {}
        for chunk in chunks(list(patches), GET_CHUNK):
            [(_, result, _)] = await self.call(
                credentials, [["Email/set", {"update": {i: patches[i] for i in chunk}}, "0"]])
            failed.update(_set_errors(result.get("notUpdated")))
        return failed

    async def destroy_messages(self, credentials: Credentials, ids: list[str]) -> dict[str, str]:
        """Email/set destroy; an id that is already gone is not a failure."""
        failed: dict[str, str] = {}
        for chunk in chunks(ids, GET_CHUNK):
            [(_, result, _)] = await self.call(credentials, [["Email/set", {"destroy": chunk}, "0"]])
            failed.update({i: e for i, e in _set_errors(result.get("notDestroyed")).items() if e != "notFound"})
        return failed

    async def upload(self, credentials: Credentials, data: bytes, type: str) -> str:
        session = await self.session(credentials)
        response = await self._request("POST", session.upload_url(), credentials, op="upload", content=data,
                                       headers={"content-type": type})
        blob_id = _json(response).get("blobId")
        if not isinstance(blob_id, str):
            raise UpstreamError("JMAP upload answered without a blobId")
        return blob_id

    async def import_message(self, credentials: Credentials, raw: bytes, folder_id: str,
                             keywords: set[str]) -> str:
        """Store an RFC 5322 message in a folder (upload + Email/import); its id."""
        blob_id = await self.upload(credentials, raw, "message/rfc822")
        [(_, result, _)] = await self.call(credentials, [["Email/import", {"emails": {"m": {
            "blobId": blob_id, "mailboxIds": {folder_id: True}, "keywords": {k: True for k in keywords}}}}, "0"]])
        created = (result.get("created") or {}).get("m")
        if created:
            return str(created["id"])
        refused = (result.get("notCreated") or {}).get("m") or {}
        if refused.get("type") == "alreadyExists" and refused.get("existingId"):
            # The same bytes are stored already (RFC 8621 4.8): that email gets the folder and keywords.
            existing = refused["existingId"]
            patch = {f"mailboxIds/{folder_id}": True, **{f"keywords/{k}": True for k in keywords}}
            failed = await self.update_messages(credentials, {existing: patch})
            if not failed:
                return str(existing)
        raise UpstreamError(f"JMAP Email/import refused the message: {refused}")

    async def find_by_keyword(self, credentials: Credentials, keyword: str) -> list[str]:
        """Ids of the emails that carry ``keyword`` (the gateway's creation markers)."""
        [(_, result, _)] = await self.call(credentials, [["Email/query", {
            "filter": {"hasKeyword": keyword}, "collapseThreads": False, "limit": 50}, "0"]])
        return list(result["ids"])

    async def search(self, credentials: Credentials, query: MailQuery) -> tuple[list[str], int]:
        """(ids of one page, newest first; the total) of the emails matching ``query``
        (Email/query, RFC 8621 4.4: text needs the server's search engine)."""
        if query.conversation is not None:
            return await self._search_conversation(credentials, query)
        conditions: list[dict[str, Any]] = []
        if query.text:
            conditions.append({"text": query.text})
        if query.after is not None:
            conditions.append({"after": utc_text(query.after)})
        if query.before is not None:
            conditions.append({"before": utc_text(query.before)})
        if query.folder_ids is not None:
            conditions.append({"operator": "OR", "conditions": [{"inMailbox": f} for f in query.folder_ids]})
        condition: dict[str, Any] = {"operator": "AND", "conditions": conditions} if conditions else {}
        [(_, result, _)] = await self.call(credentials, [["Email/query", {
            "filter": condition, "sort": [{"property": "receivedAt", "isAscending": False}],
            "collapseThreads": False, "position": query.position, "limit": query.limit, "calculateTotal": True},
            "0"]])
        return list(result["ids"]), int(result.get("total", len(result["ids"])))

    async def _search_conversation(self, credentials: Credentials, query: MailQuery) -> tuple[list[str], int]:
        """One conversation's emails (JMAP has no thread filter, RFC 8621 4.4.1): the thread
        whose conversation_id is asked is found among the threads of the folders searched
        (one email per thread, CONVERSATION_SCAN at a time), then read whole (Thread/get)
        and the dates and folders applied to its emails."""
        assert query.conversation is not None
        scope = {"operator": "OR", "conditions": [{"inMailbox": f} for f in query.folder_ids]} \
            if query.folder_ids is not None else {}
        thread = None
        for position in itertools.count(0, CONVERSATION_SCAN):
            _, (_, got, _) = await self.call(credentials, [
                ["Email/query", {"filter": scope, "sort": [{"property": "receivedAt", "isAscending": False}],
                                 "collapseThreads": True, "position": position, "limit": CONVERSATION_SCAN}, "q"],
                ["Email/get", {"#ids": {"resultOf": "q", "name": "Email/query", "path": "/ids"},
                               "properties": ["threadId"]}, "g"]])
            thread = next((e["threadId"] for e in got["list"]
                           if e.get("threadId") and conversation_id(e["threadId"]) == query.conversation), None)
            if thread is not None or len(got["list"]) < CONVERSATION_SCAN:
                break
        if thread is None:
            return [], 0
        _, (_, emails, _) = await self.call(credentials, [
            ["Thread/get", {"ids": [thread]}, "t"],
            ["Email/get", {"#ids": {"resultOf": "t", "name": "Thread/get", "path": "/list/*/emailIds"},
                           "properties": ["receivedAt", "mailboxIds"]}, "e"]])
        wanted = set(query.folder_ids) if query.folder_ids is not None else None
        found = [e for e in emails["list"]
                 if (wanted is None or wanted & set(e.get("mailboxIds") or {}))
                 and (query.after is None or e["receivedAt"] > utc_text(query.after))
                 and (query.before is None or e["receivedAt"] < utc_text(query.before))]
        found.sort(key=lambda e: e["receivedAt"], reverse=True)
        return [e["id"] for e in found[query.position:query.position + query.limit]], len(found)

    async def identities(self, credentials: Credentials) -> list[Identity]:
        [(_, result, _)] = await self.call(credentials, [["Identity/get", {"ids": None}, "0"]])
        return [Identity(i["id"], i.get("name") or None, i.get("email") or "") for i in result["list"]]

    async def submit(self, credentials: Credentials, email_id: str, identity_id: str, sender: str,
                     recipients: list[str], *, move: tuple[str, str] | None = None) -> str:
        """EmailSubmission/set create for a stored email, with an explicit envelope.

        On success the upstream itself drops the email's $draft keyword (and
        moves it ``move`` = (from folder, to folder)) in the same call: an email
        without $draft is one that was sent. That is how a retry after a crash
        tells (Cyrus keeps no record of final submissions to query).
        """
        envelope = {"mailFrom": {"email": sender}, "rcptTo": [{"email": r} for r in recipients]}
        update: dict[str, Any] = {"keywords/$draft": None}
        if move is not None:
            update[f"mailboxIds/{move[0]}"] = None
            update[f"mailboxIds/{move[1]}"] = True
        [(_, result, _), *_] = await self.call(credentials, [["EmailSubmission/set", {
            "create": {"s": {"identityId": identity_id, "emailId": email_id, "envelope": envelope}},
            "onSuccessUpdateEmail": {"#s": update}}, "0"]])
        created = (result.get("created") or {}).get("s")
        if not created:
            error = (result.get("notCreated") or {}).get("s") or {}
            raise SubmissionRefused(f"JMAP EmailSubmission refused: {error.get('type')}: {error.get('description')}")
        return str(created["id"])

    async def create_folder(self, credentials: Credentials, name: str, parent_id: str | None) -> str:
        [(_, result, _)] = await self.call(credentials, [["Mailbox/set", {"create": {"f": {
            "name": name, "parentId": parent_id}}}, "0"]])
        created = (result.get("created") or {}).get("f")
        if not created:
            raise _folder_error((result.get("notCreated") or {}).get("f"))
        return str(created["id"])

    async def update_folder(self, credentials: Credentials, folder_id: str, name: str, parent_id: str | None) -> None:
        [(_, result, _)] = await self.call(credentials, [["Mailbox/set", {"update": {folder_id: {
            "name": name, "parentId": parent_id}}}, "0"]])
        if folder_id not in (result.get("updated") or {}):
            raise _folder_error((result.get("notUpdated") or {}).get(folder_id))

    async def destroy_folder(self, credentials: Credentials, folder_id: str) -> None:
        """Mailbox/set destroy with its emails (RFC 8621 2.5 onDestroyRemoveEmails)."""
        [(_, result, _)] = await self.call(credentials, [["Mailbox/set", {
            "destroy": [folder_id], "onDestroyRemoveEmails": True}, "0"]])
        if folder_id not in (result.get("destroyed") or []):
            raise _folder_error((result.get("notDestroyed") or {}).get(folder_id))

    async def vacation(self, credentials: Credentials) -> Vacation:
        [(_, result, _)] = await self.call(credentials, [["VacationResponse/get", {"ids": ["singleton"]}, "0"]])
        found = result["list"][0] if result["list"] else {}
        return Vacation(
            enabled=bool(found.get("isEnabled")),
            start=parse_date(found["fromDate"]) if found.get("fromDate") else None,
            end=parse_date(found["toDate"]) if found.get("toDate") else None,
            subject=found.get("subject"), text=found.get("textBody"), html=found.get("htmlBody"))

    async def set_vacation(self, credentials: Credentials, vacation: Vacation) -> None:
        patch = {"isEnabled": vacation.enabled,
                 "fromDate": utc_text(vacation.start) if vacation.start else None,
                 "toDate": utc_text(vacation.end) if vacation.end else None,
                 "subject": vacation.subject, "textBody": vacation.text, "htmlBody": vacation.html}
        [(_, result, _)] = await self.call(credentials, [["VacationResponse/set", {
            "update": {"singleton": patch}}, "0"]])
        if "singleton" not in (result.get("updated") or {}):
            raise UpstreamError(f"JMAP VacationResponse/set refused: {(result.get('notUpdated') or {})}")


def _set_errors(errors: dict[str, Any] | None) -> dict[str, str]:
    return {i: str((e or {}).get("type") or "serverFail") for i, e in (errors or {}).items()}


def _folder_error(error: dict[str, Any] | None) -> UpstreamError:
    error = error or {}
    kind, description = error.get("type"), error.get("description") or ""
    if kind == "notFound":
        return NotFound(f"folder not found upstream: {description}")
    # A SetError refuses this one folder (RFC 8620 5.3); the method itself worked, so it is no
    # outage even when its type is serverFail (Cyrus says so for an invalid name such as "a/b").
    # An outage fails the whole method, which call() raises as such.
    return FolderRefused(str(kind or "serverFail"), description)


CONVERSATION_SCAN = GET_CHUNK  # threads looked at per call when searching a conversation
MESSAGE_PROPERTIES = [
    "id", "blobId", "threadId", "mailboxIds", "keywords", "receivedAt", "size", "subject", "from", "to", "cc",
    "replyTo", "messageId", "references", "attachments", "header:Importance:asText", "header:X-Priority:asText",
]


def _session_moved(session: JMAPSession, answer: dict[str, Any]) -> bool:
    """Whether an API answer's sessionState says the session is no longer the one read (only
    where both name a state: a server without them is not asked again and again)."""
    state = answer.get("sessionState")
    return isinstance(state, str) and isinstance(session.state, str) and state != session.state


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        data = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UpstreamError(f"{response.url} did not answer JSON") from exc
    if not isinstance(data, dict):
        raise UpstreamError(f"{response.url} answered JSON that is not an object")
    return data
