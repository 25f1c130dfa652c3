"""/metrics of a node with several workers (eas_gateway/observability/worker_metrics.py): the
worker scraped gathers every worker's metrics over their Unix sockets, each series labelled
with its worker; one that does not answer is left out and logged. (tests/deploy/test_workers.py
scrapes a real ``serve --workers 2``.)"""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from eas_gateway.observability.worker_metrics import WorkerMetrics, merge


def worker_registry(requests: int, held: float) -> CollectorRegistry:
    registry = CollectorRegistry()
    Counter("eas_requests", "requests", ["command"], registry=registry).labels("Sync").inc(requests)
    Histogram("eas_request_duration_seconds", "time", buckets=(0.1, 1), registry=registry).observe(0.5)
    Gauge("eas_held_requests", "held", registry=registry).set(held)
    return registry


def samples(text: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for f in text_string_to_metric_families(text.decode()) for s in f.samples}


def test_merge_labels_every_sample_with_its_worker_and_keeps_the_types() -> None:
    text = merge({"0": generate_latest(worker_registry(3, 10)), "1": generate_latest(worker_registry(5, 7))})
    found = samples(text)
    assert found[("eas_requests_total", (("command", "Sync"), ("worker", "0")))] == 3
    assert found[("eas_requests_total", (("command", "Sync"), ("worker", "1")))] == 5
    assert found[("eas_held_requests", (("worker", "0"),))] == 10
    assert found[("eas_held_requests", (("worker", "1"),))] == 7
    assert found[("eas_request_duration_seconds_bucket", (("le", "1.0"), ("worker", "1")))] == 1
    assert b"# TYPE eas_requests_total counter" in text and b"# TYPE eas_request_duration_seconds histogram" in text
    assert text.count(b"# TYPE eas_held_requests gauge") == 1  # one family, a series per worker


async def test_the_worker_scraped_shows_every_worker_and_leaves_out_one_that_is_gone(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    registries = [worker_registry(n + 1, 10 * n) for n in range(3)]
    workers = [WorkerMetrics(tmp_path, n, lambda r=r: generate_latest(r)) for n, r in enumerate(registries)]
    for w in workers:
        await w.start()
    try:
        found = samples(await workers[1].render_node())
        assert {found[("eas_held_requests", (("worker", str(n)),))] for n in range(3)} == {0, 10, 20}
        Gauge("eas_signins_waiting", "waiting", registry=registries[2]).set(4)  # read when scraped, not before
        assert samples(await workers[0].render_node())[("eas_signins_waiting", (("worker", "2"),))] == 4

        # A worker killed leaves its socket behind: nobody answers on it.
        server = workers[2]._server
        assert server is not None
        server.close()
        await server.wait_closed()
        assert workers[2].path.exists()
        found = samples(await workers[0].render_node())
        assert ("eas_held_requests", (("worker", "2"),)) not in found
        assert found[("eas_held_requests", (("worker", "1"),))] == 10
        assert "metrics of worker 2 left out of this scrape" in caplog.text
        # Started again under the same index, it answers again.
        await workers[2].start()
        assert ("eas_held_requests", (("worker", "2"),)) in samples(await workers[0].render_node())
    finally:
        for w in workers:
            await w.stop()
    assert not list(tmp_path.glob("*.sock"))
