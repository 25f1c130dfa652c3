"""/metrics in the Prometheus text format (prometheus_client), one registry per gateway.

Requests by command and outcome, their latency (a Ping is held up to 3540 s,
so the buckets reach an hour), held Pings and waiting Syncs, upstream calls
and failures by operation, the database pool's use, upstream sign-ins under way,
waiting, shared and turned away, and the statements sent to the
database while answering each command (``counting_statements``: divided by the
requests, what one costs).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

from eas_gateway.signin_gate import SignInGate

CONTENT_TYPE = CONTENT_TYPE_LATEST
_REQUEST_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 1800, 3600)
_UPSTREAM_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class _Answering:
    """The command a request answers, while it does (a task the request started and that outlives
    it inherits this object, closed by then: its statements are not the request's)."""

    __slots__ = ("command", "open")

    def __init__(self, command: str) -> None:
        self.command, self.open = command, True


_ANSWERING: ContextVar[_Answering | None] = ContextVar("eas_answering", default=None)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("eas_requests", "ActiveSync requests answered", ["command", "status"], registry=r)
        self.latency = Histogram("eas_request_duration_seconds", "Time to answer an ActiveSync request",
                                 ["command"], buckets=_REQUEST_BUCKETS, registry=r)
        self.held = Gauge("eas_held_requests", "Pings and waiting Syncs held open now", registry=r)
        self.upstream_calls = Counter("eas_upstream_calls", "HTTP calls to the upstream", ["operation"], registry=r)
        self.upstream_errors = Counter("eas_upstream_errors", "Upstream calls that failed (unreachable, 4xx, 5xx)",
                                       ["operation"], registry=r)
        self.upstream_latency = Histogram("eas_upstream_call_duration_seconds", "Upstream call time",
                                          ["operation"], buckets=_UPSTREAM_BUCKETS, registry=r)
        self.pool_size = Gauge("eas_db_pool_connections", "Connections the database pool holds", registry=r)
        self.pool_idle = Gauge("eas_db_pool_idle_connections", "Of those, the ones not in use", registry=r)
        self.statements = Counter("eas_db_statements", "Statements sent to the database while answering requests",
                                  ["command"], registry=r)

    def watch(self, *, held: Callable[[], float], pool_size: Callable[[], float],
              pool_idle: Callable[[], float]) -> None:
        """Gauges read when scraped."""
        self.held.set_function(held)
        self.pool_size.set_function(pool_size)
        self.pool_idle.set_function(pool_idle)

    def watch_signins(self, gate: SignInGate) -> None:
        """The node's upstream sign-ins (eas_gateway.signin_gate), read when scraped."""
        self.registry.register(_SignIns(gate))

    def request(self, command: str, status: str, seconds: float) -> None:
        self.requests.labels(command, status).inc()
        self.latency.labels(command).observe(seconds)

    def upstream(self, operation: str, seconds: float, failed: bool) -> None:
        self.upstream_calls.labels(operation).inc()
        self.upstream_latency.labels(operation).observe(seconds)
        if failed:
            self.upstream_errors.labels(operation).inc()

    @contextlib.contextmanager
    def counting_statements(self, command: str) -> Iterator[None]:
        """The statements sent from here on (in this task and those it starts) count for ``command``."""
        answering = _Answering(command)
        token = _ANSWERING.set(answering)
        try:
            yield
        finally:
            answering.open = False
            _ANSWERING.reset(token)

    def statement(self, _query: Any = None) -> None:
        """A statement was sent (usm.database calls this in the context of the task that sent it)."""
        answering = _ANSWERING.get()
        if answering is not None and answering.open:
            self.statements.labels(answering.command).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _SignIns(Collector):
    def __init__(self, gate: SignInGate) -> None:
        self.gate = gate

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        g = self.gate
        yield GaugeMetricFamily("eas_signins_running", "Upstream sign-ins under way now", value=g.running)
        yield GaugeMetricFamily("eas_signins_waiting", "Sign-ins waiting for a turn now", value=g.waiting)
        yield CounterMetricFamily("eas_signins_shared", "Sign-ins that took the upstream answer of one "
                                  "under way for the same user and secret", value=g.shared)
        yield CounterMetricFamily("eas_signins_turned_away", "Sign-ins answered 503 after waiting "
                                  "EAS_SIGNIN_WAIT_SECONDS for a turn", value=g.turned_away)
