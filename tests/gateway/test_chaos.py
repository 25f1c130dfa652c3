"""The chaos convergence run, short and seeded (tests/chaos/run.py; the long one is its command):
three phones and direct upstream writers, a fault proxy before the upstream, lost answers,
the gateway killed and PostgreSQL restarted — and every phone ends equal to the upstream."""

from __future__ import annotations

import pytest

from tests.chaos.run import converge
from tests.conftest import CYRUS_DIRS

pytestmark = [pytest.mark.upstream]


def test_the_phones_converge_with_the_upstream_through_faults_kills_and_restarts(cyrus: str) -> None:
    report = converge(cyrus, CYRUS_DIRS[cyrus], seed=7, operations=120, kills=2, restarts=2)
    print(report.summary())
    assert report.converged, report.summary()
    assert report.gateway_kills == 2 and report.database_restarts == 2
    assert sum(report.faults.values()) >= 10, report.summary()  # the faults happened
    assert any("answer lost" in k for k in report.phone_stats), report.summary()
    assert not [k for k in report.phone_stats if "HTTP 500" in k], report.summary()  # a fault is a 503, never a bug
