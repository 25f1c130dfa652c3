"""/metrics of a node that runs several workers (``eas-gateway serve --workers N``).

The kernel gives a scrape to one worker, as it gives any connection (SO_REUSEPORT,
eas_gateway.workers): alone, each scrape would show that worker's counters, a different
one each time. So each worker also answers on a Unix socket of its own in the node's
metrics directory (made by the supervisor, removed when it stops), with its own metrics,
and the worker that is scraped gathers every worker's: each series once per worker,
labelled ``worker="N"`` (sum them for the node). A worker that does not answer within
``TIMEOUT`` (it is being started again) is left out of that scrape, and logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterator
from pathlib import Path

from prometheus_client import CollectorRegistry, Metric, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

TIMEOUT = 5.0  # seconds another worker has to give its metrics
LABEL = "worker"


class WorkerMetrics:
    def __init__(self, directory: Path, index: int, render: Callable[[], bytes]) -> None:
        self.directory, self.index, self.render = directory, index, render
        self.path = directory / f"{index}.sock"
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()  # left by this worker's predecessor, which died
        self._server = await asyncio.start_unix_server(self._answer, path=str(self.path))

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            writer.write(self.render())
            await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    async def render_node(self) -> bytes:
        """Every worker's metrics, labelled by worker."""
        others = sorted((p for p in self.directory.glob("*.sock") if p != self.path), key=lambda p: p.stem)
        texts = {str(self.index): self.render()}
        for path, text in zip(others, await asyncio.gather(*(_read(p) for p in others)), strict=True):
            if text is not None:
                texts[path.stem] = text
        return merge(texts)


async def _read(path: Path) -> bytes | None:
    try:
        async with asyncio.timeout(TIMEOUT):
            reader, writer = await asyncio.open_unix_connection(str(path))
            try:
                return await reader.read()
            finally:
                writer.close()
    except (OSError, TimeoutError) as exc:
        log.warning("metrics of worker %s left out of this scrape: %r", path.stem, exc)
        return None


def merge(texts: dict[str, bytes]) -> bytes:
    """Prometheus text of several workers as one, each sample labelled with its worker."""
    families: dict[str, Metric] = {}
    for worker, text in texts.items():
        for family in text_string_to_metric_families(text.decode()):
            merged = families.get(family.name)
            if merged is None:
                merged = families[family.name] = Metric(family.name, family.documentation, family.type, family.unit)
            for sample in family.samples:
                merged.add_sample(sample.name, {LABEL: worker, **sample.labels}, sample.value, sample.timestamp)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Fixed(list(families.values())))
    return generate_latest(registry)


class _Fixed(Collector):
    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> Iterator[Metric]:
        return iter(self.families)
