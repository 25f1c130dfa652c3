"""A 503 tells the phone when to come back, and not every phone the same moment: after an
upstream outage, or a herd of 5,000 woken phones' Syncs that waited too long for one of the
upstream client's connections, a single Retry-After would bring them all back together."""

from __future__ import annotations

from eas_gateway.app import _error_response
from eas_gateway.errors import RETRY_AFTER_SECONDS, TooManyRequests, UpstreamFailed
from eas_gateway.signin_gate import SignInsBusy


def test_an_upstream_failure_is_503_with_a_retry_after_spread_over_the_range() -> None:
    low, high = RETRY_AFTER_SECONDS
    answers = [_error_response(UpstreamFailed("upstream: PoolTimeout()"), None) for _ in range(40)]
    assert {a.status_code for a in answers} == {503}
    seconds = [int(a.headers["Retry-After"]) for a in answers]
    assert all(low <= s <= high for s in seconds), seconds
    assert len(set(seconds)) > 5, seconds  # 40 draws from 51 values: not one moment for all


def test_a_given_retry_after_is_kept() -> None:
    assert _error_response(UpstreamFailed("down", retry_after=7.2), None).headers["Retry-After"] == "8"
    assert _error_response(SignInsBusy("busy", 12), None).headers["Retry-After"] == "12"
    assert _error_response(TooManyRequests("slow down", 0.2), None).headers["Retry-After"] == "1"
