"""Other clients' request documents for the finding commands (Search, MeetingResponse;
../shared/fixtures/eas-corpus) replayed against the gateway: each is answered with a
well-formed document, never a 5xx (the items they name are not this user's, so the
answers are statuses, which is the point: nothing a client sends breaks the command)."""

from __future__ import annotations

import pytest
from lxml import etree

import wbxml
from tests.conftest import RunningGateway
from tests.gateway.helpers import Phone, new_user
from tests.wbxml.dialects import CORPUS
from tests.wbxml.test_corpus import _from_syncroton

pytestmark = [pytest.mark.postgres, pytest.mark.upstream]

SYNCE = "http://synce.org/formats/airsync_wm5/"
SYNCE_PAGES = {"airsync": "AirSync", "airsyncbase": "AirSyncBase", "search": "Search"}
DOCUMENTS = [CORPUS / "syncroton" / "requests" / "Search-testSearch-066.xml",
             CORPUS / "syncroton" / "requests" / "MeetingResponse-testMeetingResponse-041.xml",
             CORPUS / "libwbxml" / "airsync" / "airsync-002-search_query_for_exchange.xml"]


def _load(path) -> etree._Element:  # type: ignore[no-untyped-def]
    if "syncroton" in str(path):
        return _from_syncroton(path)
    root = etree.parse(str(path)).getroot()
    for el in root.iter():
        q = etree.QName(el)
        if q.namespace and q.namespace.startswith(SYNCE):
            el.tag = "{%s:}%s" % (SYNCE_PAGES[q.namespace[len(SYNCE):]], q.localname)
        if el.text is not None and not el.text.strip():
            el.text = None
    etree.cleanup_namespaces(root)
    return root


@pytest.mark.parametrize("path", DOCUMENTS, ids=lambda p: p.name)
def test_corpus_requests_get_well_formed_answers(gateway: RunningGateway, path) -> None:  # type: ignore[no-untyped-def]
    phone = Phone(gateway, new_user(gateway))
    request = _load(path)
    answer = phone.post(etree.QName(request).localname, request)  # asserts HTTP 200
    tree = wbxml.decode(answer.content)
    assert etree.QName(tree).localname == etree.QName(request).localname
    statuses = [s.text for s in tree.iter() if etree.QName(s).localname == "Status"]
    assert statuses and all(s and s.isdigit() for s in statuses)
