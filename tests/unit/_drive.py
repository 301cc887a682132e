"""Drive a sans-I/O operation step by step: scripted replies, a clock that moves only on Sleep.

The hook's runners add HTTP and the bounded retries (``Call.retry``); operations are tested here
without either, so every request and every pause they ask for is visible and exact.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import time_machine

from airflow_provider_retell.exceptions import RetellAPIError
from airflow_provider_retell.operations import Call, Operation, Sleep, T

NOW = 1_800_000_000.0  # a fixed epoch second for every test
log = logging.getLogger("tests.drive")


class Driver:
    """``respond(call)`` returns the reply body or raises ``RetellAPIError``; sleeps move the clock."""

    def __init__(self, respond: Callable[[Call], Any], traveller: time_machine.Coordinates) -> None:
        self.respond = respond
        self.traveller = traveller
        self.calls: list[Call] = []
        self.sleeps: list[float] = []

    def run(self, operation: Operation[T]) -> T:
        reply: Any = None
        error: RetellAPIError | None = None
        while True:
            try:
                step = operation.throw(error) if error is not None else operation.send(reply)
            except StopIteration as stop:
                return stop.value
            reply, error = None, None
            if isinstance(step, Sleep):
                assert step.seconds >= 0
                self.sleeps.append(step.seconds)
                self.traveller.shift(step.seconds)
                continue
            self.calls.append(step)
            try:
                reply = self.respond(step)
            except RetellAPIError as exc:
                error = exc

    def paths(self, method: str | None = None) -> list[str]:
        return [c.path for c in self.calls if method is None or c.method == method]


def status(code: int, message: str = "", retry_after: float | None = None) -> RetellAPIError:
    """The error the hook raises for an HTTP status."""
    from airflow_provider_retell.exceptions import PERMANENT_STATUSES, RetellPermanentError

    cls = RetellPermanentError if code in PERMANENT_STATUSES else RetellAPIError
    return cls(message or f"HTTP {code}", status_code=code, retry_after=retry_after, reason="status")


def no_reply(reason: str = "timeout") -> RetellAPIError:
    """The error the hook raises when no reply came (``connect``, ``timeout`` or ``dropped``)."""
    return RetellAPIError(f"{reason}: no reply", reason=reason)
