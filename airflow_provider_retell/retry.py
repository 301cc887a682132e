"""The one retry policy for every Retell call, sync and async.

Transient means a retry can reasonably succeed: no reply at all, 408/409/429, or a 5xx from
Retell's edge. Everything else (bad key, unknown id, a reply we cannot parse) is final.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

import httpx
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
    wait_random,
)

from airflow_provider_retell.exceptions import RetellAPIError, RetellPermanentError

TRANSIENT_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504})


def is_transient(exc: BaseException) -> bool:
    """True when sending the same read again may succeed."""
    if not isinstance(exc, RetellAPIError) or isinstance(exc, RetellPermanentError):
        return False
    if exc.status_code is None:
        # No HTTP status: a transport failure is transient, a reply we could not parse is not.
        return isinstance(exc.__cause__, httpx.TransportError)
    return exc.status_code in TRANSIENT_STATUSES


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded attempts, exponential backoff with jitter, ``Retry-After`` honoured up to ``max_wait``."""

    max_retries: int = 3
    max_wait: float = 60.0
    initial_wait: float = 0.5

    def wait_seconds(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        retry_after = getattr(exc, "retry_after", None)
        if retry_after is not None and not math.isnan(retry_after):  # a "nan" header would crash sleep()
            return float(min(max(retry_after, 0.0), self.max_wait))
        # jitter, so tasks failing together do not retry in lockstep
        backoff = wait_exponential(multiplier=self.initial_wait, max=self.max_wait) + wait_random(
            0, self.initial_wait
        )
        return float(min(backoff(state), self.max_wait))

    def _kwargs(self, log: logging.Logger | Any, retry_on: Any) -> dict[str, Any]:
        def before_sleep(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            log.warning(
                "%s; retry %d/%d in %.1fs",
                exc,
                state.attempt_number,
                self.max_retries,
                state.next_action.sleep if state.next_action else 0.0,
            )

        return {
            "retry": retry_if_exception(retry_on),
            "stop": stop_after_attempt(self.max_retries + 1),
            "wait": self.wait_seconds,
            "before_sleep": before_sleep,
            "reraise": True,
        }

    def retrying(self, log: logging.Logger | Any, retry_on: Any = is_transient) -> Retrying:
        return Retrying(**self._kwargs(log, retry_on))

    def async_retrying(self, log: logging.Logger | Any, retry_on: Any = is_transient) -> AsyncRetrying:
        return AsyncRetrying(**self._kwargs(log, retry_on))
