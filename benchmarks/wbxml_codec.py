"""WBXML codec throughput: eas-gateway's wbxml vs pyactivesync's codec, same run.

    .venv/bin/python benchmarks/wbxml_codec.py            (scripts/test.sh installs pyactivesync)

Documents: a Sync response with 100 messages and bodies, a 300-folder
FolderSync response, a Sync request with 500 Changes. For each: decode
(bytes -> tree) and encode (tree -> bytes), MB/s of WBXML and elements/s,
median of repeated runs, and the ratio ours / pyactivesync (> 1: we are
faster). pyactivesync builds bare tuples when decoding and runs prebuilt
closures when encoding; we build and read real lxml trees. Its code page
tables are incomplete, so they are extended with ours before the run (a dict
update, no effect on its speed), and its output is checked to be the same
bytes as ours before anything is timed.

Encoding and decoding run on the C fast paths (wbxml/csrc/) when they
are built; the "Python path only" rows show the fallbacks for reference (not
in the worst ratio).
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lxml import etree

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import wbxml
from wbxml import decoder, encoder
from wbxml.codepages import NAMESPACES, TOKENS

try:
    from pyactivesync import _codepages as pas_pages
    from pyactivesync import _wbxml as pas
except ImportError:  # pragma: no cover
    sys.exit("pyactivesync is not installed: .venv/bin/pip install -e '.[bench]'")


def _teach_pyactivesync_our_tables() -> None:
    for page, name in NAMESPACES.items():
        pas_pages.PAGE_INDEX[name] = page
        pas_pages.PAGE_ORDER[page] = name
        pas_pages.CODEPAGES.setdefault(name, {}).update({n: t for t, n in TOKENS[page].items()})
        pas_pages.REVERSE.setdefault(page, {}).update(TOKENS[page])


def E(parent: etree._Element | None, tag: str, text: str | None = None) -> etree._Element:
    el = etree.Element(tag) if parent is None else etree.SubElement(parent, tag)
    el.text = text
    return el


BODY = (
    "Hello team,\n\nthe quarterly numbers are attached; please review them before Thursday's meeting. "
    "Grüße aus Köln — Ünïcödé & <markup> stays intact.\n\n"
) * 12


def _sync_collection() -> tuple[etree._Element, etree._Element]:
    """A Sync document with one email collection: (root, Collection)."""
    root = E(None, "{AirSync:}Sync")
    col = E(E(root, "{AirSync:}Collections"), "{AirSync:}Collection")
    E(col, "{AirSync:}SyncKey", "42")
    E(col, "{AirSync:}CollectionId", "5")
    return root, col


def sync_response(messages: int = 100) -> etree._Element:
    root, col = _sync_collection()
    E(col, "{AirSync:}Status", "1")
    cmds = E(col, "{AirSync:}Commands")
    for i in range(messages):
        add = E(cmds, "{AirSync:}Add")
        E(add, "{AirSync:}ServerId", f"5:{1000 + i}")
        app = E(add, "{AirSync:}ApplicationData")
        E(app, "{Email:}To", '"Alice Example" <alice@example.com>, "Bob" <bob@example.com>')
        E(app, "{Email:}From", f'"Sender {i}" <sender{i}@example.org>')
        E(app, "{Email:}Subject", f"Quarterly report #{i} — résumé")
        E(app, "{Email:}DateReceived", "2026-11-22T10:15:00.000Z")
        E(app, "{Email:}DisplayTo", "Alice Example; Bob")
        E(app, "{Email:}ThreadTopic", f"Quarterly report #{i}")
        E(app, "{Email:}Importance", "1")
        E(app, "{Email:}Read", str(i % 2))
        body = E(app, "{AirSyncBase:}Body")
        E(body, "{AirSyncBase:}Type", "1")
        E(body, "{AirSyncBase:}EstimatedDataSize", str(len(BODY.encode())))
        E(body, "{AirSyncBase:}Truncated", "0")
        E(body, "{AirSyncBase:}Data", BODY)
        E(app, "{Email:}MessageClass", "IPM.Note")
        E(app, "{Email:}InternetCPID", "65001")
        flag = E(app, "{Email:}Flag")
        if i % 5 == 0:
            E(flag, "{Email:}Status", "2")
            E(flag, "{Email:}FlagType", "Flag for follow up")
        E(app, "{Email:}ContentClass", "urn:content-classes:message")
        E(app, "{AirSyncBase:}NativeBodyType", "1")
        wbxml.set_opaque(E(app, "{Email2:}ConversationId"), bytes(range(i % 200, i % 200 + 16)))
        wbxml.set_opaque(E(app, "{Email2:}ConversationIndex"), b"\x01\xd8\x5a\x3b\x10")
        cats = E(app, "{Email:}Categories")
        E(cats, "{Email:}Category", "Work")
    return root


def foldersync_response(folders: int = 300) -> etree._Element:
    root = E(None, "{FolderHierarchy:}FolderSync")
    E(root, "{FolderHierarchy:}Status", "1")
    E(root, "{FolderHierarchy:}SyncKey", "1")
    changes = E(root, "{FolderHierarchy:}Changes")
    E(changes, "{FolderHierarchy:}Count", str(folders))
    for i in range(folders):
        add = E(changes, "{FolderHierarchy:}Add")
        E(add, "{FolderHierarchy:}ServerId", str(i + 1))
        E(add, "{FolderHierarchy:}ParentId", "0" if i < 10 else str(i // 10))
        E(add, "{FolderHierarchy:}DisplayName", f"Projekt Ä{i:03d} – Archiv")
        E(add, "{FolderHierarchy:}Type", "12" if i >= 6 else str(i + 1))
    return root


def sync_request_changes(changes: int = 500) -> etree._Element:
    root, col = _sync_collection()
    E(col, "{AirSync:}DeletesAsMoves", "1")
    E(col, "{AirSync:}GetChanges")
    E(col, "{AirSync:}WindowSize", "100")
    opts = E(col, "{AirSync:}Options")
    E(opts, "{AirSync:}FilterType", "3")
    pref = E(opts, "{AirSyncBase:}BodyPreference")
    E(pref, "{AirSyncBase:}Type", "2")
    E(pref, "{AirSyncBase:}TruncationSize", "32768")
    cmds = E(col, "{AirSync:}Commands")
    for i in range(changes):
        change = E(cmds, "{AirSync:}Change")
        E(change, "{AirSync:}ServerId", f"5:{1000 + i}")
        app = E(change, "{AirSync:}ApplicationData")
        E(app, "{Email:}Read", "1")
        flag = E(app, "{Email:}Flag")
        if i % 3 == 0:
            E(flag, "{Email:}Status", "2")
            E(flag, "{Email:}FlagType", "Flag for follow up")
            E(flag, "{Tasks:}StartDate", "2026-11-22T00:00:00.000Z")
            E(flag, "{Tasks:}UtcStartDate", "2026-11-22T00:00:00.000Z")
            E(flag, "{Tasks:}DueDate", "2026-11-29T00:00:00.000Z")
            E(flag, "{Tasks:}UtcDueDate", "2026-11-29T00:00:00.000Z")
    return root


def to_pyactivesync_builder(el: etree._Element) -> Any:
    """Our tree as pyactivesync's encoder input: nested wtag() closures."""
    q = etree.QName(el)
    page = q.namespace[:-1]
    children = [to_pyactivesync_builder(c) for c in el] or None
    if el.get(wbxml.RAW_ATTR) is not None:
        return pas.wtag(page, q.localname, children, opaque=wbxml.element_bytes(el))
    return pas.wtag(page, q.localname, children, text=el.text if el.text else None)


def pyactivesync_encode(builder: Any) -> bytes:
    writer = pas.WBXMLWriter()
    builder(writer)
    return writer.render()


def timed(fn: Callable[[], object], min_seconds: float = 0.6) -> float:
    """Median seconds per call over repeated batches."""
    fn()
    per_call: list[float] = []
    deadline = time.perf_counter() + min_seconds
    while time.perf_counter() < deadline or len(per_call) < 7:
        start = time.perf_counter()
        fn()
        per_call.append(time.perf_counter() - start)
    return statistics.median(per_call)


def main() -> None:
    _teach_pyactivesync_our_tables()
    docs = {
        "Sync response, 100 messages with bodies": sync_response(),
        "FolderSync response, 300 folders": foldersync_response(),
        "Sync request, 500 Changes": sync_request_changes(),
    }
    print(f"{'document':42} {'op':26} {'size':>9} {'elements':>8} | {'ours MB/s':>9} {'ours el/s':>10} | "
          f"{'pas MB/s':>8} {'pas el/s':>10} | ratio")
    worst = {"decode": float("inf"), "encode": float("inf")}
    for name, tree in docs.items():
        data = wbxml.encode(tree)
        builder = to_pyactivesync_builder(tree)
        assert pyactivesync_encode(builder) == data, f"{name}: the codecs disagree on the bytes"
        assert pas.WBXMLReader(data).parse(), name
        elements = sum(1 for _ in tree.iter())
        rows = [
            ("decode", timed(lambda: wbxml.decode(data)), timed(lambda: pas.WBXMLReader(data).parse())),
            ("encode", timed(lambda: wbxml.encode(tree)), timed(lambda: pyactivesync_encode(builder))),
        ]
        if encoder.ACCELERATED:  # for reference: the fallbacks used where the C paths were not built
            limits = decoder.Limits()
            rows.append(("decode (Python path only)", timed(lambda: decoder.decode_python(data, limits)), rows[0][2]))
            rows.append(("encode (Python path only)", timed(lambda: encoder.encode_python(tree)), rows[1][2]))
        for op, ours, theirs in rows:
            mb = len(data) / 1e6
            ratio = theirs / ours
            if op in worst:
                worst[op] = min(worst[op], ratio)
            print(f"{name:42} {op:26} {len(data):>9} {elements:>8} | {mb / ours:>9.1f} {elements / ours:>10.0f} | "
                  f"{mb / theirs:>8.1f} {elements / theirs:>10.0f} | {ratio:.2f}x")
    xml = etree.tostring(docs["Sync response, 100 messages with bodies"])
    lxml_only = timed(lambda: etree.fromstring(xml))
    print(f"\nceiling: lxml.etree.fromstring of the same Sync response as XML text ({len(xml)} bytes): "
          f"{lxml_only * 1e3:.2f} ms")
    print(f"codec: {'C fast paths (wbxml/csrc/)' if encoder.ACCELERATED else 'Python only (extension not built)'}")
    print(f"worst ratio ours/pyactivesync: decode {worst['decode']:.2f}x (target >= 1), "
          f"encode {worst['encode']:.2f}x (target >= 1, aim 2)")


if __name__ == "__main__":
    main()
