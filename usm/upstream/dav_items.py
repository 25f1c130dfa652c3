"""One DAV collection as the sync engine's ItemSource (usm.sync): ids are object paths,
versions ETags, the state the collection's sync-token (or ctag). A calendar collection
is seen through one component: its events, its tasks or its notes."""

from __future__ import annotations

from datetime import datetime

from usm.upstream import Changes, Credentials, ListingPage, calendar_filter
from usm.upstream.dav_store import CALENDAR, COMPONENTS, DavStore


class DavItems:
    """One DAV collection as a usm.upstream.ItemSource: ids are object paths,
    versions ETags, the state the collection's sync-token (or ctag). A calendar
    collection is seen through one component (``kind``): its events, its tasks or its
    notes; ``since`` (FilterType) keeps the events with an occurrence after it."""

    def __init__(self, dav: DavStore, credentials: Credentials, collection: str, kind: str) -> None:
        self.dav, self.credentials, self.collection, self.kind = dav, credentials, collection, kind
        self.component = COMPONENTS.get(kind)
        # ETags the server told with a listing or with changes, for this object's life (one
        # request): versions() asks only for the rest. None: the object is gone.
        self._told: dict[str, str | None] = {}
        # Data read to tell a changed object's component (calendars): reused for the window.
        self._data: dict[str, str] = {}
        # Tasks, FilterType 8: only the tasks not completed (a completed one leaves the view).
        self.incomplete_only = False

    async def state(self) -> str:
        return await self.dav.state(self.credentials, self.collection)

    async def listing(self, folder_id: str, since: datetime | None) -> tuple[str, list[str]]:
        state, etags = await self.dav.listing(self.credentials, self.collection, self.component,
                                              since if self.kind == CALENDAR else None,
                                              incomplete=self.incomplete_only)
        self._told = dict(etags)
        return state, sorted(etags)

    async def listing_page(self, folder_id: str, since: datetime | None, cursor: str | None,
                           limit: int) -> ListingPage:
        """The whole listing at once (a DAV collection cannot be listed in pages)."""
        state, ids = await self.listing(folder_id, since)
        return ListingPage(state, ids, None)

    async def changes(self, state: str) -> Changes:
        found = await self.dav.changes(self.credentials, self.collection, state)
        if self.component is not None:
            # sync-collection reports every component of the collection: keep this class's
            # (and every removal: a removed object of another class is no item here, and
            # the sync engine drops what it does not know).
            present = [p for p, v in found.versions.items() if v is not None]
            objects = await self.dav.multiget(self.credentials, self.collection, self.kind, present)
            self._data.update({p: o.data for p, o in objects.items()})
            keep = {p for p, o in objects.items() if calendar_filter.holds(o.data, self.component)}
            versions = {p: (objects[p].etag if p in keep else None) for p in found.versions
                        if p in keep or found.versions[p] is None}
            found = Changes(found.state, [i for i in found.ids if i in versions], more=found.more,
                            versions=versions)
        self._told.update(found.versions)
        return found

    async def versions(self, folder_id: str, ids: list[str], since: datetime | None) -> dict[str, str]:
        mine = [i for i in ids if i.startswith(self.collection)]
        out = {i: v for i in mine if (v := self._told.get(i)) is not None}
        ask = [i for i in mine if i not in self._told]
        if ask:
            out.update(await self.dav.etags(self.credentials, self.collection, self.kind, ask))
        if since is not None and self.kind == CALENDAR:
            # An event read for its changes may have left the window (listed ones are in it).
            out = {i: v for i, v in out.items()
                   if i not in self._data or calendar_filter.occurs_since(self._data[i], "VEVENT", since)}
        if self.incomplete_only:
            out = {i: v for i, v in out.items() if i not in self._data or not calendar_filter.completed(self._data[i])}
        return out
