"""retry.py: what counts as transient, and how long to wait."""

from __future__ import annotations

import math
from typing import Any

import httpx
import pytest
from tenacity import RetryCallState, Retrying

from airflow_provider_retell.exceptions import (
    RetellAPIError,
    RetellError,
    RetellInputError,
    RetellPermanentError,
)
from airflow_provider_retell.models import BatchTest, parse_response
from airflow_provider_retell.retry import RetryPolicy, is_transient


def transport_error(cls: type[Exception] = httpx.ReadTimeout) -> RetellAPIError:
    """What the hook makes of an httpx failure without a reply."""
    from airflow_provider_retell.connection import RetellConnectionSettings
    from airflow_provider_retell.hooks.retell import _transport_error
    from airflow_provider_retell.operations import Call

    settings = RetellConnectionSettings(base_url="http://127.0.0.1:9", api_key="key_unit_test")
    return _transport_error(cls("boom"), Call("GET", "/p"), settings)  # type: ignore[arg-type]


@pytest.mark.parametrize("status", [408, 409, 429, 500, 502, 503, 504])
def test_transient_statuses(status: int) -> None:
    assert is_transient(RetellAPIError("x", status_code=status))


@pytest.mark.parametrize("status", [200, 201, 301, 418, 501, 505])
def test_other_statuses_are_final(status: int) -> None:
    assert not is_transient(RetellAPIError("x", status_code=status))


@pytest.mark.parametrize("status", [400, 401, 402, 403, 404, 422])
def test_permanent_errors_are_final(status: int) -> None:
    assert not is_transient(RetellPermanentError("x", status_code=status))


@pytest.mark.parametrize(
    "cls", [httpx.ConnectError, httpx.ConnectTimeout, httpx.ReadTimeout, httpx.RemoteProtocolError]
)
def test_transport_failures_are_transient(cls: type[Exception]) -> None:
    assert is_transient(transport_error(cls))


def test_unparseable_reply_is_final() -> None:
    with pytest.raises(RetellAPIError) as info:
        parse_response(BatchTest, {"status": "complete"}, method="GET", path="/get-batch-test/x")
    assert info.value.status_code is None
    assert not is_transient(info.value)


@pytest.mark.parametrize(
    "exc", [RetellError("x"), RetellInputError("x"), ValueError("x"), httpx.ReadTimeout("x"), KeyError("x")]
)
def test_non_api_errors_are_final(exc: BaseException) -> None:
    assert not is_transient(exc)


def state_after(exc: BaseException, attempt: int = 1) -> RetryCallState:
    state = RetryCallState(Retrying(), fn=None, args=(), kwargs={})
    state.attempt_number = attempt
    state.set_exception((type(exc), exc, None))
    return state


@pytest.mark.parametrize(
    ("retry_after", "expected"), [(0, 0.0), (2, 2.0), (10, 10.0), (11, 10.0), (3600, 10.0), (-5, 0.0)]
)
def test_retry_after_is_honoured_up_to_max_wait(retry_after: float, expected: float) -> None:
    policy = RetryPolicy(max_retries=3, max_wait=10.0)
    exc = RetellAPIError("slow down", status_code=429, retry_after=retry_after)
    assert policy.wait_seconds(state_after(exc)) == expected


@pytest.mark.parametrize("attempt", [1, 2, 3, 5, 10, 30])
def test_backoff_is_bounded(attempt: int) -> None:
    policy = RetryPolicy(max_retries=30, max_wait=4.0, initial_wait=0.5)
    wait = policy.wait_seconds(state_after(RetellAPIError("x", status_code=503), attempt))
    assert 0 <= wait <= 4.0
    assert math.isfinite(wait)


def test_backoff_grows() -> None:
    policy = RetryPolicy(max_retries=30, max_wait=1000.0, initial_wait=0.5)
    waits = [policy.wait_seconds(state_after(RetellAPIError("x", status_code=503), n)) for n in (1, 6)]
    assert waits[1] > waits[0]
    assert waits[1] >= 0.5 * 2**5


def run_with(policy: RetryPolicy, log: Any, fn: Any) -> Any:
    for attempt in policy.retrying(log):
        with attempt:
            return fn()
    return None


def test_retrying_stops_after_max_retries() -> None:
    policy = RetryPolicy(max_retries=2, max_wait=0.0)
    calls: list[int] = []

    def flaky() -> Any:
        calls.append(1)
        raise RetellAPIError("down", status_code=503)

    with pytest.raises(RetellAPIError):
        run_with(policy, _NullLog(), flaky)
    assert len(calls) == 3


class _NullLog:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def warning(self, msg: str, *args: Any) -> None:
        self.lines.append(msg % args)


def test_before_sleep_logs_each_retry() -> None:
    policy = RetryPolicy(max_retries=2, max_wait=0.0)
    log = _NullLog()

    def down() -> Any:
        raise RetellAPIError("down", status_code=502, method="GET", path="/p")

    with pytest.raises(RetellAPIError):
        run_with(policy, log, down)
    assert len(log.lines) == 2
    assert "retry 1/2" in log.lines[0]
    assert "HTTP 502" in log.lines[0]


@pytest.mark.parametrize(
    ("cls", "transient", "maybe_applied"),
    [
        (httpx.ConnectError, True, False),
        (httpx.ConnectTimeout, True, False),
        (httpx.PoolTimeout, True, False),
        (httpx.ReadTimeout, True, True),
        (httpx.WriteTimeout, True, True),
        (httpx.RemoteProtocolError, True, True),
        (httpx.ReadError, True, True),
        (httpx.LocalProtocolError, False, False),
    ],
)
def test_what_a_failure_without_a_reply_means(
    cls: type[Exception], transient: bool, maybe_applied: bool
) -> None:
    error = transport_error(cls)
    assert (error.transient, error.maybe_applied) == (transient, maybe_applied)


@pytest.mark.parametrize(
    ("status", "maybe_applied"),
    [(429, False), (400, False), (404, False), (408, True), (500, True), (504, True)],
)
def test_which_statuses_may_have_been_applied(status: int, maybe_applied: bool) -> None:
    assert RetellAPIError("x", status_code=status).maybe_applied is maybe_applied


def test_outage_policy_backs_off_from_the_poll_interval_and_honours_retry_after() -> None:
    from airflow_provider_retell.retry import MAX_BACKOFF_SECONDS, OutagePolicy

    policy = OutagePolicy(poll_interval=2.0)
    assert policy.delay(0) == 2.0
    assert [policy.delay(n) for n in (1, 2, 3, 4)] == [2.0, 4.0, 8.0, 16.0]
    assert policy.delay(50) == MAX_BACKOFF_SECONDS
    assert policy.delay(1, RetellAPIError("slow down", status_code=429, retry_after=30)) == 30.0
    assert policy.delay(1, RetellAPIError("x", status_code=429, retry_after=float("nan"))) == 2.0
    assert policy.delay(1, RetellAPIError("x", status_code=429, retry_after=1e12)) == 3600.0
    assert OutagePolicy(poll_interval=86_400).delay(5) == 86_400  # never below the interval
