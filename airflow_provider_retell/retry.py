"""The two retry policies: bounded retries before a batch exists, patience while waiting for one.

Before the create (resolving an agent, checking ids, listing) a request is retried a few times and
then fails the try: nothing is billed yet. Once a batch exists, every read is part of a wait, and
a transient error only means "not finished yet": the wait backs off and goes on until its
absolute deadline. One place decides both, for every path (sync, poke, reschedule, trigger).
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tenacity import AsyncRetrying, RetryCallState, Retrying, retry_if_exception, stop_after_attempt
from tenacity.stop import stop_base

from airflow_provider_retell.exceptions import RetellAPIError

#: Longest ``Retry-After`` honoured while waiting (a server asking for a day is not believed).
MAX_RETRY_AFTER_SECONDS = 3600.0
#: Longest pause between polls while Retell keeps failing transiently.
MAX_BACKOFF_SECONDS = 600.0


def is_transient(exc: BaseException) -> bool:
    """True when sending the same request again may succeed."""
    return isinstance(exc, RetellAPIError) and exc.transient


def retry_after(exc: BaseException | None) -> float | None:
    """The server's ``Retry-After`` (seconds), when it sent a usable one."""
    value = getattr(exc, "retry_after", None)
    if value is None or not math.isfinite(value):
        return None
    return min(max(float(value), 0.0), MAX_RETRY_AFTER_SECONDS)


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded attempts, exponential backoff with jitter, ``Retry-After`` honoured up to ``max_wait``."""

    max_retries: int = 3
    max_wait: float = 60.0
    initial_wait: float = 0.5

    def delay(self, attempt: int, error: BaseException | None = None) -> float:
        """The pause before retry number ``attempt`` (1-based) after ``error``."""
        asked = retry_after(error)
        if asked is not None:
            return min(asked, self.max_wait)
        # jitter, so tasks failing together do not retry in lockstep
        backoff = self.initial_wait * 2 ** min(attempt - 1, 30) + random.uniform(0, self.initial_wait)
        return float(min(backoff, self.max_wait))

    def wait_seconds(self, state: RetryCallState) -> float:
        return self.delay(state.attempt_number, state.outcome.exception() if state.outcome else None)

    def _kwargs(
        self, log: logging.Logger | Any, retry_on: Callable[[BaseException], bool], end: float | None
    ) -> dict[str, Any]:
        def before_sleep(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            log.warning(
                "%s; retry %d/%d in %.1fs",
                exc,
                state.attempt_number,
                self.max_retries,
                state.next_action.sleep if state.next_action else 0.0,
            )

        class past_end(stop_base):
            def __call__(self, state: RetryCallState) -> bool:
                return end is not None and time.time() + (state.upcoming_sleep or 0.0) >= end

        return {
            "retry": retry_if_exception(retry_on),
            "stop": stop_after_attempt(self.max_retries + 1) | past_end(),
            "wait": self.wait_seconds,
            "before_sleep": before_sleep,
            "reraise": True,
        }

    def retrying(
        self,
        log: logging.Logger | Any,
        retry_on: Callable[[BaseException], bool] = is_transient,
        end: float | None = None,
    ) -> Retrying:
        """Bounded attempts, never sleeping past ``end`` (epoch seconds)."""
        return Retrying(**self._kwargs(log, retry_on, end))

    def async_retrying(
        self,
        log: logging.Logger | Any,
        retry_on: Callable[[BaseException], bool] = is_transient,
        end: float | None = None,
    ) -> AsyncRetrying:
        return AsyncRetrying(**self._kwargs(log, retry_on, end))


@dataclass(frozen=True)
class OutagePolicy:
    """How long a wait pauses after ``failures`` transient errors in a row (0: a normal poll).

    The poll interval doubles per failure up to ``MAX_BACKOFF_SECONDS`` (never below the interval),
    and a ``Retry-After`` is honoured when it asks for longer. The caller cuts it at the deadline.
    """

    poll_interval: float

    def delay(self, failures: int, error: BaseException | None = None) -> float:
        if failures <= 0:
            return self.poll_interval
        backoff = min(self.poll_interval * 2 ** min(failures - 1, 20), MAX_BACKOFF_SECONDS)
        return max(self.poll_interval, backoff, retry_after(error) or 0.0)
