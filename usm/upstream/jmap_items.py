"""A user's JMAP mail as the sync engine's ItemSource (usm.sync): the state is the account's
Email state, the version of an email its keywords; a folder is listed whole (a filter change)
or a page at a time by anchor (a first sync)."""

from __future__ import annotations

import json
import logging
from datetime import datetime
from typing import TYPE_CHECKING, Any

from usm.upstream import Changes, Credentials, ListingPage, keywords_version
from usm.upstream.jmap_data import GET_CHUNK, chunks, parse_date, utc_text

if TYPE_CHECKING:
    from usm.upstream.jmap import JMAPUpstream

log = logging.getLogger(__name__)

QUERY_PAGE = 5000  # ids per Email/query of a whole listing: Cyrus 3.6 answers 5,000 as fast as 100
VERSION_PROPERTIES = ["mailboxIds", "keywords", "receivedAt"]  # what an email's version is made of, and its place
LISTING_ANCHORS = 20  # ids a listing cursor keeps: where the next page starts if the last ones are gone
_ANCHOR_GONE = frozenset({"anchorNotFound"})  # a query whose anchor has left the folder


class JMAPMail:
    """A user's JMAP mail as a usm.upstream.ItemSource.

    The state is the account's Email state (RFC 8621 4.3); the version of an
    email is its keywords, the only thing of a message that changes in place.
    """

    def __init__(self, upstream: JMAPUpstream, credentials: Credentials) -> None:
        self.upstream = upstream
        self.credentials = credentials

    async def state(self) -> str:
        [(_, result, _)] = await self.upstream.call(self.credentials, [["Email/get", {"ids": []}, "0"]])
        return str(result["state"])

    async def listing(self, folder_id: str, since: datetime | None) -> tuple[str, list[str]]:
        condition: dict[str, Any] = {"inMailbox": folder_id}
        if since is not None:
            condition["after"] = utc_text(since)
        ids: list[str] = []
        state = None
        while True:
            calls: list[list[Any]] = []
            if state is None:
                # The state first: what changes after it shows up in Email/changes.
                calls.append(["Email/get", {"ids": []}, "s"])
            calls.append(["Email/query", {"filter": condition, "position": len(ids), "limit": QUERY_PAGE,
                                          "sort": [{"property": "receivedAt", "isAscending": False}],
                                          "collapseThreads": False}, "q"])
            answers = await self.upstream.call(self.credentials, calls)
            if state is None:
                state = answers[0][1]["state"]
            page = answers[-1][1]["ids"]
            ids.extend(page)
            # A server may cap the limit (RFC 8620 5.5: it says which it used): fewer than that is the end.
            if len(page) < int(answers[-1][1].get("limit") or QUERY_PAGE):
                return state, ids

    async def listing_page(self, folder_id: str, since: datetime | None, cursor: str | None,
                           limit: int) -> ListingPage:
        """A page of the folder, newest first (Email/query: on Cyrus 3.6 it costs the same for 100
        ids as for 5,000, ~1.5 µs per message in the folder, so ask for many; the versions are
        read apart, only for the ids the window looks at). The cursor is the last ids listed
        (LISTING_ANCHORS of them): the next page starts after the last one still in the
        folder (RFC 8620 5.5 anchor), so a message deleted or added above it moves nothing;
        if none of them is left, the listing starts again from the top (what the device has
        already is no command twice: the sync engine skips it)."""
        condition: dict[str, Any] = {"inMailbox": folder_id}
        if since is not None:
            condition["after"] = utc_text(since)
        # One more than the page: whether the listing goes on is known now, not by an empty page later.
        query = {"filter": condition, "sort": [{"property": "receivedAt", "isAscending": False}],
                 "collapseThreads": False, "limit": limit + 1}
        state: str | None = None
        if cursor is None:
            # The state first: what changes after it shows up in Email/changes.
            answers = await self.upstream.call(self.credentials, [
                ["Email/get", {"ids": []}, "s"], ["Email/query", {**query, "position": 0}, "q"]])
            state = str(answers[0][1]["state"])
        anchors = _anchors(cursor) if cursor is not None else []
        while cursor is not None:
            at = {"anchor": anchors[-1], "anchorOffset": 1} if anchors else {"position": 0}
            answers = await self.upstream.call(self.credentials, [["Email/query", {**query, **at}, "q"]],
                                               tolerate=_ANCHOR_GONE)
            if answers[0][0] != "error":
                break
            anchors.pop()  # gone since: the one listed before it
            if not anchors:
                log.info("JMAP listing of %s for %s: the ids listed last are all gone, listing again from the top",
                         folder_id, self.credentials.user)
        result = answers[-1][1]
        got = [str(i) for i in result["ids"]]
        ids = got[:limit]
        # A server may cap the limit (RFC 8620 5.5: it says which it used): fewer than that is the end.
        done = len(got) <= limit and len(got) < int(result.get("limit") or limit + 1)
        return ListingPage(state, ids, None if done else json.dumps((anchors + ids)[-LISTING_ANCHORS:]))

    async def changes(self, state: str) -> Changes:
        async def read() -> Changes:
            [(_, result, _)] = await self.upstream.call(
                self.credentials, [["Email/changes", {"sinceState": state, "maxChanges": 5000}, "0"]])
            ids = list(dict.fromkeys(result["created"] + result["updated"] + result["destroyed"]))
            return Changes(result["newState"], ids, bool(result.get("hasMoreChanges")))
        found: Changes = await self.upstream.shared(self.credentials, ("Email/changes", state), read)
        return found

    async def versions(self, folder_id: str, ids: list[str], since: datetime | None) -> dict[str, str]:
        out: dict[str, str] = {}
        for chunk in chunks(ids, GET_CHUNK):
            async def read(chunk: list[str] = chunk) -> list[dict[str, Any]]:
                [(_, result, _)] = await self.upstream.call(self.credentials, [
                    ["Email/get", {"ids": chunk, "properties": VERSION_PROPERTIES}, "0"]])
                return list(result["list"])
            listed = await self.upstream.shared(self.credentials, ("Email/get versions", *chunk), read)
            for email in listed:
                if email.get("mailboxIds", {}).get(folder_id) and not _older(email, since):
                    out[email["id"]] = keywords_version(email.get("keywords") or {})
        return out


def _older(email: dict[str, Any], since: datetime | None) -> bool:
    return since is not None and parse_date(email["receivedAt"]) < since


def _anchors(cursor: str) -> list[str]:
    try:
        anchors = json.loads(cursor)
    except json.JSONDecodeError:
        anchors = None
    if not isinstance(anchors, list) or not all(isinstance(a, str) for a in anchors):
        log.warning("JMAP listing: a cursor that is no list of ids (%.80r): listing again from the top", cursor)
        return []
    return anchors
