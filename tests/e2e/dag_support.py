"""Constants and helpers shared by the dag.test() end-to-end tests."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from airflow_provider_retell.contracts import BatchTestResult, FailedTestCase

#: Seconds between polls in every e2e run: the emulator runs a hundred times faster than Retell.
POLL = 0.2

#: The result dict's keys, from its one definition.
RESULT_KEYS = set(BatchTestResult.__required_keys__)
FAILED_CASE_KEYS = set(FailedTestCase.__required_keys__)

#: The two agent_booking cases of the default seed that do not pass.
BOOKING_FAIL = (
    "tcd_booking_07",
    "Double-booking is prevented",
    "fail",
    "The agent confirmed Monday 10 am without checking availability, double-booking the slot.",
)
BOOKING_ERROR = (
    "tcd_booking_11",
    "Books through the calendar tool",
    "error",
    "The simulation ended with an error, the check_availability tool mock returned invalid JSON.",
)


@contextlib.contextmanager
def task_attrs(task: Any, **attrs: Any) -> Iterator[Any]:
    """Set attributes of a task of a shared (session) DAG for one test, restoring them after."""
    saved = {name: getattr(task, name) for name in attrs}
    for name, value in attrs.items():
        setattr(task, name, value)
    try:
        yield task
    finally:
        for name, value in saved.items():
            setattr(task, name, value)
