"""Attacks on "strict input" (finite durations in range, errors that name the argument, before any
HTTP call) and on the event contract with the previous release.

Each test currently FAILS.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from airflow_provider_retell.exceptions import RetellError, RetellInputError, RetellPermanentError
from airflow_provider_retell.operators.batch_test import RetellBatchTestOperator
from airflow_provider_retell.sensors.batch_test import RetellBatchTestSensor
from airflow_provider_retell.triggers.batch_test import RetellBatchTestTrigger
from airflow_provider_retell.waiting import STATE_KEY
from tests.fakes import FakeStore, fake_context

HUGE = 10**400  # an int Python holds exactly, but no float can: what a templated typo renders to

ENGINE = {"type": "retell-llm", "llm_id": "llm_atk", "version": 2}


@pytest.mark.parametrize(
    ("argument", "build"),
    [
        ("timeout", lambda: RetellBatchTestOperator(task_id="t", response_engine=ENGINE, timeout=HUGE)),
        (
            "poll_interval",
            lambda: RetellBatchTestOperator(task_id="t", response_engine=ENGINE, poll_interval=HUGE),
        ),
        (
            "min_pass_rate",
            lambda: RetellBatchTestSensor(task_id="s", batch_test_id="tcbj_1", min_pass_rate=HUGE),
        ),
        ("timeout", lambda: RetellBatchTestSensor(task_id="s", batch_test_id="tcbj_1", timeout=HUGE)),
        ("end_time", lambda: RetellBatchTestTrigger(batch_test_id="tcbj_1", end_time=HUGE)),
    ],
)
def test_a_huge_integer_duration_is_not_a_retell_input_error(argument: str, build: Any) -> None:
    """Breaks "strict input: a value out of range is a RetellInputError naming the argument".

    ``validation.seconds``, ``triggers._epoch`` and ``QualityGate.from_params`` call
    ``math.isfinite`` / ``math.isnan`` on any ``int``; for an int beyond float range these raise
    ``OverflowError`` (not a ``ValueError``, not an ``AirflowFailException``): the DAG fails to parse,
    or the task fails with a bare traceback that names no argument and spends its retries.
    """
    try:
        build()
    except RetellInputError as exc:
        named = argument in str(exc)
    except Exception as exc:
        pytest.fail(f"{argument}={HUGE:.3e} raised {type(exc).__name__}: {exc}")
    else:
        pytest.fail(f"{argument}={HUGE:.3e} was accepted")
    assert named, f"the error does not name {argument}"


def test_a_permanent_error_event_from_the_previous_release_is_no_longer_permanent(monkeypatch: Any) -> None:
    """Breaks "an event payload from the previous release is still read" (contracts.BatchTestEvent).

    The previous release's trigger put Retell's error text into ``message`` uncut
    (``str(body.get("message") or body)``), e.g. a 401 whose body was a long HTML or JSON page.
    ``BatchTestEvent.message`` now has ``max_length=2000``, so such an event, fired by an old
    triggerer during a rolling upgrade and resumed by a new worker, is "not understood": the task
    fails with a plain, retryable ``RetellError`` instead of ``RetellPermanentError`` (401: fail at
    once, do not spend retries, say what the status means).
    """
    monkeypatch.setenv(
        "AIRFLOW_CONN_RETELL_DEFAULT",
        '{"conn_type": "retell", "host": "http://127.0.0.1:9", "password": "key_x_123"}',
    )
    old_event = {
        "status": "error",
        "batch_test_id": "tcbj_1",
        "message": "Invalid API key. " + "x" * 2500,
        "status_code": 401,
    }
    sensor = RetellBatchTestSensor(task_id="s", batch_test_id="tcbj_1")
    context = fake_context(FakeStore({STATE_KEY: {"batch_test_id": "tcbj_1", "deadline": time.time() + 60}}))

    with pytest.raises(RetellError) as info:
        sensor.execute_complete(context, old_event)

    assert isinstance(info.value, RetellPermanentError), (
        f"an old 401 event became {type(info.value).__name__}: {str(info.value)[:200]}"
    )
