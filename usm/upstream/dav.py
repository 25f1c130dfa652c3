"""CalDAV (RFC 4791) and CardDAV (RFC 6352) upstream over httpx.

Discovery (RFC 6764, RFC 5397): ``/.well-known/caldav`` and ``/.well-known/carddav``
(Cyrus redirects to /dav/, Radicale to /), then DAV:current-user-principal, then
the principal's calendar-home-set and addressbook-home-set. A PROPFIND Depth 1 on
each home lists the collections with what the gateway needs of them: display name,
resource type, supported components, sync-token (RFC 6578), getctag, privileges.

Objects: changes by sync-collection (an invalid token raises StateTooOld: the
caller lists again by getetag PROPFIND), bodies and versions by multiget, create
by PUT ``If-None-Match: *`` (so a retried create finds its own object, 412), replace
and delete with ``If-Match`` (412: PreconditionFailed, the caller's conflict rule
decides). Hrefs are kept as decoded paths (Radicale percent-encodes, Cyrus does
not) and encoded again on the way out.

Known server quirks, handled where the decision is made: Radicale ignores
DAV:limit and compares ``If-Match: *`` literally (never sent here: deletes and
replaces carry the ETag the gateway saw); Cyrus wants a UID unique across all of a
user's collections (the item classes derive fresh UIDs for new objects).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import httpx
from lxml import etree

from usm.upstream import (
    AuthenticationFailed,
    Changes,
    Credentials,
    FolderRefused,
    NotFound,
    PreconditionFailed,
    StateTooOld,
    UpstreamError,
    UpstreamUnavailable,
    WriteRefused,
    calendar_filter,
    note_write,
)
from usm.upstream.dav_store import (
    CALENDAR,
    COMPONENTS,
    CONTACTS,
    NOTES,
    TASKS,
    Collection,
    DavNotOffered,
    DavObject,
    Homes,
    Period,
    state_of,
)
from usm.upstream.freebusy import freebusy_periods, freebusy_request

D, CARD, CAL, CS = "DAV:", "urn:ietf:params:xml:ns:carddav", "urn:ietf:params:xml:ns:caldav", \
    "http://calendarserver.org/ns/"
NSMAP = {"d": D, "card": CARD, "cal": CAL, "cs": CS}
MULTIGET_CHUNK = 100
# What the server's answers may hold: no entities, no network, no huge trees.
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False, remove_blank_text=True)
# Path characters sent unencoded (RFC 3986 pchar, and "/").
_SAFE = "/:@!$&'()*+,;=-._~"

class DavUpstream:
    """The CalDAV/CardDAV store of one server, for any of its users."""

    def __init__(self, base_url: str, *, transport: httpx.AsyncBaseTransport | None = None,
                 timeout: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._origin = httpx.URL(self.base_url)
        self._http = httpx.AsyncClient(transport=transport, timeout=timeout, follow_redirects=False)
        self._homes: dict[str, tuple[Homes | DavNotOffered, float]] = {}
        self.homes_ttl = 3600.0
        self.not_offered_ttl = 600.0
        # Told of every HTTP call: (operation, seconds, failed). The gateway counts them (/metrics).
        self.observe: Callable[[str, float, bool], None] | None = None

    async def aclose(self) -> None:
        await self._http.aclose()

    # -- HTTP ---------------------------------------------------------------

    def url(self, path: str) -> httpx.URL:
        return self._origin.copy_with(raw_path=quote(path, safe=_SAFE).encode())

    async def _request(self, method: str, path: str | httpx.URL, credentials: Credentials, *,
                       body: etree._Element | str | None = None, headers: dict[str, str] | None = None,
                       ok: Iterable[int] = (200, 201, 204, 207)) -> httpx.Response:
        url = path if isinstance(path, httpx.URL) else self.url(path)
        all_headers = dict(headers or {})
        content: bytes | None = None
        if isinstance(body, etree._Element):
            content = etree.tostring(body, xml_declaration=True, encoding="utf-8")
            all_headers.setdefault("Content-Type", "application/xml; charset=utf-8")
        elif isinstance(body, str):
            content = body.encode()
        started = time.monotonic()
        if method in ("PUT", "DELETE", "MOVE", "MKCOL", "MKCALENDAR", "PROPPATCH"):
            note_write(folders=method in ("MKCOL", "MKCALENDAR", "PROPPATCH") or
                       (method == "DELETE" and str(url.path).endswith("/")))
        try:
            response = await self._http.request(method, url, content=content, headers=all_headers,
                                                auth=credentials.http_auth())
        except httpx.HTTPError as exc:
            self._observe(method, started, failed=True)
            raise UpstreamUnavailable(f"DAV upstream {self.base_url} unreachable: {exc!r}") from exc
        status = response.status_code
        self._observe(method, started, failed=status >= 500)
        if status in ok:
            return response
        where = f"{method} {unquote(str(url.path))}"
        if status == 401:
            raise AuthenticationFailed(f"DAV upstream refused the credentials of {credentials.user}")
        if status == 412:
            raise PreconditionFailed(f"DAV upstream: precondition failed for {where}")
        if status == 404:
            raise NotFound(f"DAV upstream: {where}: not found")
        if status == 403 and "valid-sync-token" in response.text:
            raise StateTooOld(f"DAV upstream refused the sync-token for {where}")
        if status in (403, 405, 409, 415, 501):  # 501: the server does not do this method
            raise WriteRefused(f"DAV upstream refused {where}: {status} {response.text[:200]}")
        if status >= 500:
            raise UpstreamUnavailable(f"DAV upstream answered {status} for {where}")
        raise UpstreamError(f"DAV upstream answered {status} for {where}")

    def _observe(self, op: str, started: float, *, failed: bool) -> None:
        if self.observe is not None:
            self.observe(f"DAV {op}", time.monotonic() - started, failed)

    async def reachable(self) -> None:
        started = time.monotonic()
        try:
            response = await self._http.request("OPTIONS", self.base_url + "/", timeout=5.0)
        except httpx.HTTPError as exc:
            self._observe("health", started, failed=True)
            raise UpstreamUnavailable(f"DAV upstream {self.base_url} unreachable: {exc!r}") from exc
        self._observe("health", started, failed=response.status_code >= 500)
        if response.status_code >= 500:
            raise UpstreamUnavailable(f"DAV upstream answered {response.status_code} to a health check")

    # -- discovery ----------------------------------------------------------

    async def homes(self, credentials: Credentials) -> Homes:
        cached = self._homes.get(credentials.user)
        if cached and cached[1] > time.monotonic():
            if isinstance(cached[0], DavNotOffered):
                raise cached[0]
            return cached[0]
        try:
            return await self._discover(credentials)
        except DavNotOffered as exc:
            # Asked again in a while, not at every poll of every user's watcher.
            self._homes[credentials.user] = (exc, time.monotonic() + self.not_offered_ttl)
            raise

    async def _discover(self, credentials: Credentials) -> Homes:
        principal = await self._principal(credentials)
        answer = await self._propfind(credentials, principal, 0, [(CAL, "calendar-home-set"),
                                                                  (CARD, "addressbook-home-set"),
                                                                  (CAL, "schedule-outbox-URL")])
        props = answer[0][1] if answer else {}
        homes = Homes(principal, _href_in(props.get((CAL, "calendar-home-set"))),
                      _href_in(props.get((CARD, "addressbook-home-set"))),
                      _href_in(props.get((CAL, "schedule-outbox-URL"))))
        if homes.calendars is None and homes.addressbooks is None:
            raise DavNotOffered(f"DAV upstream {self.base_url}: principal {principal} has no calendar or"
                                " address book home")
        if len(self._homes) > 100_000:
            self._homes.clear()
        self._homes[credentials.user] = (homes, time.monotonic() + self.homes_ttl)
        return homes

    async def _principal(self, credentials: Credentials) -> str:
        for start in ("/.well-known/carddav", "/.well-known/caldav", "/"):
            path = urlsplit(self.base_url + start).path or "/"
            for _ in range(5):  # follow redirects by hand: PROPFIND must stay PROPFIND
                try:
                    response = await self._request("PROPFIND", path, credentials, body=_propfind_body(
                        [(D, "current-user-principal")]), headers={"Depth": "0"},
                        ok=(207, 301, 302, 303, 307, 308))
                except (NotFound, WriteRefused):
                    break
                except UpstreamError as exc:
                    if isinstance(exc, (UpstreamUnavailable, AuthenticationFailed)):
                        raise
                    break  # 400 and the like: this is no DAV resource
                if response.status_code != 207:
                    location = response.headers.get("location", "")
                    path = urlsplit(str(httpx.URL(self.url(path)).join(location))).path
                    continue
                for _, props in _multistatus(response):
                    found = _href_in(props.get((D, "current-user-principal")))
                    if found:
                        return found
                break
        raise DavNotOffered(f"DAV upstream {self.base_url} names no current-user-principal")

    async def collections(self, credentials: Credentials,
                          kinds: frozenset[str] | None = None) -> list[Collection]:
        """The user's address books and calendars: one PROPFIND Depth 1 per home (only the
        homes that hold ``kinds``: a poll for contacts alone does not read the calendars)."""
        homes = await self.homes(credentials)
        wanted = [homes.addressbooks if kinds is None or CONTACTS in kinds else None,
                  homes.calendars if kinds is None or kinds & {CALENDAR, TASKS, NOTES} else None]
        out: list[Collection] = []
        for home in dict.fromkeys(h for h in wanted if h):
            answer = await self._propfind(credentials, home, 1, COLLECTION_PROPS)
            for path, props in answer:
                out.extend(_collections(path, props, home))
        return out

    # -- objects ------------------------------------------------------------

    async def state(self, credentials: Credentials, collection: str) -> str:
        answer = await self._propfind(credentials, collection, 0, [(D, "sync-token"), (CS, "getctag")])
        props = answer[0][1] if answer else {}
        return state_of(_text(props.get((D, "sync-token"))), _text(props.get((CS, "getctag"))))

    async def listing(self, credentials: Credentials, collection: str, component: str | None = None,
                      since: datetime | None = None, *, incomplete: bool = False) -> tuple[str, dict[str, str]]:
        """(state, {object path: ETag}) of every object of the collection (of ``component``
        only, and with an occurrence at or after ``since``: a calendar-query, RFC 4791
        9.9, the server expanding recurrences). The state is read first: a change after
        it shows up in the next changes()."""
        state = await self.state(credentials, collection)
        if component is None:
            answer = await self._propfind(credentials, collection, 1, [(D, "getetag"), (D, "resourcetype")])
        else:
            body, inner = _calendar_query(component, data=False)
            if incomplete:  # RFC 4791 7.8.9: tasks without a COMPLETED time
                etree.SubElement(etree.SubElement(inner, f"{{{CAL}}}prop-filter", name="COMPLETED"),
                                 f"{{{CAL}}}is-not-defined")
            if since is not None:
                etree.SubElement(inner, f"{{{CAL}}}time-range",
                                 start=since.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ"))
            response = await self._request("REPORT", collection, credentials, body=body, headers={"Depth": "1"},
                                           ok=(207,))
            answer = _multistatus(response)
        etags = {path: _text(props.get((D, "getetag"))) or "" for path, props in answer
                 if path != collection and not path.endswith("/")}
        return state, etags

    async def changes(self, credentials: Credentials, collection: str, token: str) -> Changes:
        """Objects changed or removed since ``token`` (RFC 6578); StateTooOld if the
        server no longer knows it (or never gave one: a ctag-only server)."""
        kind, _, token = token.partition(":")
        if kind != "sync" or not token:
            raise StateTooOld(f"{collection}: the server gave no sync-token, only a ctag: list again")
        body = etree.Element(f"{{{D}}}sync-collection", nsmap={"d": D})
        etree.SubElement(body, f"{{{D}}}sync-token").text = token
        etree.SubElement(body, f"{{{D}}}sync-level").text = "1"
        etree.SubElement(etree.SubElement(body, f"{{{D}}}prop"), f"{{{D}}}getetag")
        response = await self._request("REPORT", collection, credentials, body=body, headers={"Depth": "1"},
                                       ok=(207,))
        root = _parse(response)
        new = "sync:" + (root.findtext(f"{{{D}}}sync-token") or token)
        versions: dict[str, str | None] = {}
        for resp in root.iterfind(f"{{{D}}}response"):
            path = unquote(urlsplit((resp.findtext(f"{{{D}}}href") or "").strip()).path)
            if not path or path.endswith("/"):
                continue
            etag = None
            for propstat in resp.iterfind(f"{{{D}}}propstat"):
                if 200 <= _status_code(propstat.findtext(f"{{{D}}}status")) < 300:
                    etag = (propstat.findtext(f"{{{D}}}prop/{{{D}}}getetag") or "").strip() or None
            versions[path] = etag  # a response with a 404 status (or no ETag): removed
        return Changes(new, list(versions), versions=versions)

    async def query_cards(self, credentials: Credentials, collection: str, text: str) -> list[DavObject]:
        """The cards of an address book whose name, e-mail, nickname or organization holds
        ``text`` (an addressbook-query, RFC 6352 10.3; the text XML-escaped by lxml, never
        pasted into the query)."""
        body = etree.Element(f"{{{CARD}}}addressbook-query", nsmap={"d": D, "card": CARD})
        prop = etree.SubElement(body, f"{{{D}}}prop")
        etree.SubElement(prop, f"{{{D}}}getetag")
        etree.SubElement(prop, f"{{{CARD}}}address-data")
        condition = etree.SubElement(body, f"{{{CARD}}}filter", test="anyof")
        for name in ("FN", "N", "EMAIL", "NICKNAME", "ORG"):
            etree.SubElement(etree.SubElement(condition, f"{{{CARD}}}prop-filter", name=name),
                             f"{{{CARD}}}text-match", collation="i;unicode-casemap", **{"match-type": "contains"}
                             ).text = text
        response = await self._request("REPORT", collection, credentials, body=body, headers={"Depth": "1"},
                                       ok=(207,))
        return [DavObject(path, _text(props.get((D, "getetag"))) or "", _text(props.get((CARD, "address-data"))) or "")
                for path, props in _multistatus(response) if props.get((CARD, "address-data")) is not None]

    async def events_between(self, credentials: Credentials, collection: str, start: datetime,
                             end: datetime) -> list[DavObject]:
        """The events of ``collection`` with an occurrence overlapping [start, end), with their
        data: a calendar-query with a time-range (RFC 4791 9.9), the server expanding rules."""
        body, inner = _calendar_query("VEVENT", data=True)
        etree.SubElement(inner, f"{{{CAL}}}time-range", start=start.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ"),
                         end=end.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ"))
        response = await self._request("REPORT", collection, credentials, body=body, headers={"Depth": "1"},
                                       ok=(207,))
        return [DavObject(path, _text(props.get((D, "getetag"))) or "", _text(props.get((CAL, "calendar-data"))) or "")
                for path, props in _multistatus(response) if path != collection and (CAL, "calendar-data") in props]

    async def free_busy(self, credentials: Credentials, organizer: str, attendees: list[str], start: datetime,
                        end: datetime) -> dict[str, list[Period] | None]:
        """Busy periods of each of ``attendees`` (e-mail addresses) over [start, end), asked of
        the server's scheduling (RFC 6638 5: a VFREEBUSY REQUEST POSTed to the outbox);
        None for one the server gives none for (unknown, external, not permitted).
        DavNotOffered when the server has no schedule outbox (Radicale)."""
        homes = await self.homes(credentials)
        if homes.outbox is None:
            raise DavNotOffered(f"DAV upstream {self.base_url} offers no schedule outbox")
        response = await self._request("POST", homes.outbox, credentials,
                                       body=freebusy_request(organizer, attendees, start, end),
                                       headers={"Content-Type": "text/calendar; charset=utf-8"}, ok=(200,))
        found: dict[str, list[Period] | None] = {a: None for a in attendees}
        by_address = {a.lower(): a for a in attendees}
        for one in _parse(response).iter(f"{{{CAL}}}response"):
            href = (one.findtext(f"{{{CAL}}}recipient/{{{D}}}href") or "").strip()
            address = by_address.get(href.removeprefix("mailto:").removeprefix("MAILTO:").lower())
            status = (one.findtext(f"{{{CAL}}}request-status") or "").strip()
            if address is None or not status.startswith("2."):
                continue
            found[address] = freebusy_periods(one.findtext(f"{{{CAL}}}calendar-data") or "")
        return found

    async def etags(self, credentials: Credentials, collection: str, kind: str, paths: list[str]) -> dict[str, str]:
        """ETags of the objects among ``paths`` that exist (a multiget of getetag)."""
        found = await self._multiget(credentials, collection, kind, paths, data=False)
        return {o.path: o.etag for o in found}

    async def multiget(self, credentials: Credentials, collection: str, kind: str,
                       paths: list[str]) -> dict[str, DavObject]:
        """The objects among ``paths`` that exist, with their data."""
        return {o.path: o for o in await self._multiget(credentials, collection, kind, paths, data=True)}

    async def _multiget(self, credentials: Credentials, collection: str, kind: str, paths: list[str], *,
                        data: bool) -> list[DavObject]:
        ns, report, data_prop = (CARD, "addressbook-multiget", "address-data") if kind == CONTACTS else \
            (CAL, "calendar-multiget", "calendar-data")
        out: list[DavObject] = []
        for start in range(0, len(paths), MULTIGET_CHUNK):
            body = etree.Element(f"{{{ns}}}{report}", nsmap={"d": D, "x": ns})
            prop = etree.SubElement(body, f"{{{D}}}prop")
            etree.SubElement(prop, f"{{{D}}}getetag")
            if data:
                etree.SubElement(prop, f"{{{ns}}}{data_prop}")
            for path in paths[start:start + MULTIGET_CHUNK]:
                etree.SubElement(body, f"{{{D}}}href").text = quote(path, safe=_SAFE)
            response = await self._request("REPORT", collection, credentials, body=body, headers={"Depth": "1"},
                                           ok=(207,))
            for path, props in _multistatus(response):
                etag = _text(props.get((D, "getetag")))
                if etag is None:
                    continue  # 404 for this href: gone
                out.append(DavObject(path, etag, _text(props.get((ns, data_prop))) or ""))
        return out

    async def get(self, credentials: Credentials, path: str) -> DavObject:
        response = await self._request("GET", path, credentials, ok=(200,))
        return DavObject(path, response.headers.get("etag", ""), response.text)

    async def get_bytes(self, credentials: Credentials, path: str) -> bytes:
        """Any resource of the server (a managed attachment), as bytes."""
        return (await self._request("GET", path, credentials, ok=(200,))).content

    async def create(self, credentials: Credentials, path: str, data: str, content_type: str) -> tuple[str, bool]:
        """PUT a new object at ``path`` unless one is there (``If-None-Match: *``).
        (ETag, created): created is False when the object existed already, which
        for a path derived from the phone's ClientId means this create was done
        before (a retry after a crash): nothing is written twice."""
        try:
            response = await self._request("PUT", path, credentials, body=data, ok=(200, 201, 204),
                                           headers={"If-None-Match": "*", "Content-Type": content_type})
        except PreconditionFailed:
            return (await self.get(credentials, path)).etag, False
        return response.headers.get("etag") or (await self.get(credentials, path)).etag, True

    async def replace(self, credentials: Credentials, path: str, data: str, content_type: str, etag: str) -> str:
        """PUT over the object whose ETag is ``etag``; PreconditionFailed if it changed."""
        response = await self._request("PUT", path, credentials, body=data, ok=(200, 201, 204),
                                       headers={"If-Match": etag, "Content-Type": content_type})
        return response.headers.get("etag") or (await self.get(credentials, path)).etag

    async def find_uid(self, credentials: Credentials, collections: list[str], uid: str) -> DavObject | None:
        """The object whose UID is ``uid`` in the first of ``collections`` that holds it
        (a calendar-query on the UID, RFC 4791 9.7.5; the value XML-escaped by lxml)."""
        for collection in collections:
            body, inner = _calendar_query("VEVENT", data=True)
            etree.SubElement(etree.SubElement(inner, f"{{{CAL}}}prop-filter", name="UID"), f"{{{CAL}}}text-match",
                             collation="i;octet").text = uid
            response = await self._request("REPORT", collection, credentials, body=body, headers={"Depth": "1"},
                                           ok=(207,))
            for path, props in _multistatus(response):
                etag, data = _text(props.get((D, "getetag"))), _text(props.get((CAL, "calendar-data")))
                if etag and data and calendar_filter.uid_of(data) == uid:
                    return DavObject(path, etag, data)
        return None

    async def delete(self, credentials: Credentials, path: str, etag: str | None = None, *,
                     schedule_reply: bool = True) -> None:
        """DELETE (with If-Match when ``etag`` is given); an object already gone is no failure.
        ``schedule_reply`` False: the server sends no iMIP reply for it (RFC 6638 8.1
        ``Schedule-Reply: F``; the phone mails its own)."""
        headers = {"If-Match": etag} if etag else {}
        if not schedule_reply:
            headers["Schedule-Reply"] = "F"
        try:
            await self._request("DELETE", path, credentials, headers=headers, ok=(200, 204))
        except NotFound:
            pass

    async def move(self, credentials: Credentials, path: str, destination: str) -> str | None:
        """WebDAV MOVE (RFC 4918 9.9) of one object, never over an existing one: the server
        keeps the object whole, UID included (a CalDAV server wants a UID once per user, so
        a copy and a delete cannot do it). The ETag at ``destination``; None when there
        is nothing at ``path`` (moved by an earlier try, or gone)."""
        url = self.url(destination)
        try:
            response = await self._request("MOVE", path, credentials, ok=(201, 204),
                                           headers={"Destination": str(url), "Overwrite": "F"})
        except NotFound:
            return None
        return response.headers.get("etag") or (await self.get(credentials, destination)).etag

    # -- collections --------------------------------------------------------

    async def make_collection(self, credentials: Credentials, kind: str, name: str, segment: str) -> str:
        """Create a collection of ``kind`` named ``name`` at ``<home>/<segment>/``
        (extended MKCOL, RFC 5689, for address books; MKCALENDAR for calendars)."""
        homes = await self.homes(credentials)
        home = homes.addressbooks if kind == CONTACTS else homes.calendars
        if home is None:
            raise FolderRefused("notSupported", f"the DAV upstream has no home for {kind}")
        path = home.rstrip("/") + "/" + segment + "/"
        if kind == CONTACTS:
            body = etree.Element(f"{{{D}}}mkcol", nsmap={"d": D, "card": CARD})
            prop = etree.SubElement(etree.SubElement(body, f"{{{D}}}set"), f"{{{D}}}prop")
            rtype = etree.SubElement(prop, f"{{{D}}}resourcetype")
            etree.SubElement(rtype, f"{{{D}}}collection")
            etree.SubElement(rtype, f"{{{CARD}}}addressbook")
            etree.SubElement(prop, f"{{{D}}}displayname").text = name
            method = "MKCOL"
        else:
            body = etree.Element(f"{{{CAL}}}mkcalendar", nsmap={"d": D, "cal": CAL})
            prop = etree.SubElement(etree.SubElement(body, f"{{{D}}}set"), f"{{{D}}}prop")
            etree.SubElement(prop, f"{{{D}}}displayname").text = name
            comps = etree.SubElement(prop, f"{{{CAL}}}supported-calendar-component-set")
            comp = {CALENDAR: "VEVENT", TASKS: "VTODO", NOTES: "VJOURNAL"}[kind]
            etree.SubElement(comps, f"{{{CAL}}}comp", name=comp)
            method = "MKCALENDAR"
        try:
            await self._request(method, path, credentials, body=body, ok=(200, 201))
        except (WriteRefused, PreconditionFailed) as exc:
            raise FolderRefused("invalidArguments", str(exc)) from exc
        return path

    async def rename_collection(self, credentials: Credentials, path: str, name: str) -> None:
        body = etree.Element(f"{{{D}}}propertyupdate", nsmap={"d": D})
        etree.SubElement(etree.SubElement(etree.SubElement(body, f"{{{D}}}set"), f"{{{D}}}prop"),
                         f"{{{D}}}displayname").text = name
        try:
            response = await self._request("PROPPATCH", path, credentials, body=body, ok=(207, 200))
        except WriteRefused as exc:
            raise FolderRefused("forbidden", str(exc)) from exc
        for _, props in _multistatus(response, failed=True):
            if props:
                raise FolderRefused("forbidden", f"DAV upstream refused to rename {path}")

    async def delete_collection(self, credentials: Credentials, path: str) -> None:
        try:
            await self._request("DELETE", path, credentials, ok=(200, 204))
        except NotFound:
            pass
        except WriteRefused as exc:
            raise FolderRefused("forbidden", str(exc)) from exc

    async def _propfind(self, credentials: Credentials, path: str, depth: int,
                        props: list[tuple[str, str]]) -> list[tuple[str, dict[tuple[str, str], etree._Element]]]:
        response = await self._request("PROPFIND", path, credentials, body=_propfind_body(props),
                                       headers={"Depth": str(depth)}, ok=(207,))
        return _multistatus(response)


COLLECTION_PROPS = [(D, "resourcetype"), (D, "displayname"), (D, "sync-token"), (CS, "getctag"),
                    (CAL, "supported-calendar-component-set"), (D, "current-user-privilege-set")]


def _calendar_query(component: str, *, data: bool) -> tuple[etree._Element, etree._Element]:
    """A calendar-query REPORT body for the objects of one component (getetag, and the
    data), and its comp-filter of that component, where more filters go."""
    body = etree.Element(f"{{{CAL}}}calendar-query", nsmap={"d": D, "c": CAL})
    prop = etree.SubElement(body, f"{{{D}}}prop")
    etree.SubElement(prop, f"{{{D}}}getetag")
    if data:
        etree.SubElement(prop, f"{{{CAL}}}calendar-data")
    outer = etree.SubElement(etree.SubElement(body, f"{{{CAL}}}filter"), f"{{{CAL}}}comp-filter", name="VCALENDAR")
    return body, etree.SubElement(outer, f"{{{CAL}}}comp-filter", name=component)


def _propfind_body(props: list[tuple[str, str]]) -> etree._Element:
    body = etree.Element(f"{{{D}}}propfind", nsmap=NSMAP)
    prop = etree.SubElement(body, f"{{{D}}}prop")
    for ns, name in props:
        etree.SubElement(prop, f"{{{ns}}}{name}")
    return body


def _parse(response: httpx.Response) -> etree._Element:
    try:
        return etree.fromstring(response.content, _PARSER)
    except etree.XMLSyntaxError as exc:
        raise UpstreamError(f"DAV upstream sent a multistatus that is no XML: {exc}") from exc


def _multistatus(response: httpx.Response, *, failed: bool = False
                 ) -> list[tuple[str, dict[tuple[str, str], etree._Element]]]:
    """(decoded path, {(ns, name): element}) per response: the properties found
    (status 2xx), or with ``failed`` the ones refused."""
    out = []
    for resp in _parse(response).iterfind(f"{{{D}}}response"):
        href = resp.findtext(f"{{{D}}}href") or ""
        path = unquote(urlsplit(href.strip()).path)
        props: dict[tuple[str, str], etree._Element] = {}
        for propstat in resp.iterfind(f"{{{D}}}propstat"):
            code = _status_code(propstat.findtext(f"{{{D}}}status"))
            if (200 <= code < 300) != failed:
                for prop in propstat.iterfind(f"{{{D}}}prop/*"):
                    q = etree.QName(prop)
                    props[(q.namespace or "", q.localname)] = prop
        out.append((path, props))
    return out


def _status_code(line: str | None) -> int:
    parts = (line or "").split()
    return int(parts[1]) if len(parts) > 1 and parts[1].isascii() and parts[1].isdigit() else 0


def _text(element: etree._Element | None) -> str | None:
    if element is None:
        return None
    return (element.text or "").strip() or None


def _href_in(element: etree._Element | None) -> str | None:
    if element is None:
        return None
    href = element.findtext(f"{{{D}}}href")
    return unquote(urlsplit(href.strip()).path) if href and href.strip() else None


def _collections(path: str, props: dict[tuple[str, str], Any], home: str) -> list[Collection]:
    """The collection at ``path`` once per item class it holds (none if it is no address
    book or calendar); a calendar without supported-calendar-component-set takes every
    component (RFC 4791 5.2.3)."""
    rtype = props.get((D, "resourcetype"))
    if rtype is None or path.rstrip("/") == home.rstrip("/"):
        return []
    types = {(etree.QName(t).namespace, etree.QName(t).localname) for t in rtype}
    comps_el = props.get((CAL, "supported-calendar-component-set"))
    comps = frozenset((c.get("name") or "").upper() for c in comps_el) if comps_el is not None else frozenset()
    if (CARD, "addressbook") in types:
        kinds = [CONTACTS]
    elif (CAL, "calendar") in types:
        kinds = [k for k, c in COMPONENTS.items() if not comps or c in comps]
    else:
        return []
    privileges = props.get((D, "current-user-privilege-set"))
    if privileges is None:
        writable = True  # the server does not say: assume so, and take a refusal per item
    else:
        names = {etree.QName(p).localname for p in privileges.iterfind(f"{{{D}}}privilege/*")}
        writable = bool(names & {"write", "write-content", "all"})
    segment = path.rstrip("/").rpartition("/")[2]
    name = _text(props.get((D, "displayname"))) or segment
    return [Collection(path if path.endswith("/") else path + "/", kind, name, _text(props.get((D, "sync-token"))),
                       _text(props.get((CS, "getctag"))), comps, writable, home) for kind in kinds]
