"""Attacks on the one outage policy: "while waiting, transient errors never fail a task before its
deadline, in every mode".

Each test injects a short, transient fault while the run is already billed and waiting, with a
deadline far away (20 s), and checks that the task still reaches its verdict. Each currently FAILS:
the task fails within a second, long before its deadline.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from airflow_provider_retell.exceptions import RetellError
from airflow_provider_retell.operators.batch_test import RetellBatchTestOperator
from airflow_provider_retell.triggers.batch_test import RetellBatchTestTrigger
from tests.attack.fake_retell import FakeRetell
from tests.chaos import Reply, retell_error
from tests.fakes import fake_context

ENGINE = {"type": "retell-llm", "llm_id": "llm_atk", "version": 2}
IDS = ["tcd_a", "tcd_b", "tcd_c"]
DEADLINE = 20.0


def _operator(conn_id: str, ids: list[str], **kwargs: Any) -> RetellBatchTestOperator:
    return RetellBatchTestOperator(
        task_id="patient",
        response_engine=ENGINE,
        test_case_definition_ids=ids,
        wait_for_completion=True,
        poll_interval=0.1,
        timeout=DEADLINE,
        retell_conn_id=conn_id,
        **kwargs,
    )


def _storm_after_first_create(storm: int) -> Any:
    """The first create goes through; then ``list-batch-tests`` answers 503 ``storm`` times (~1 s)."""

    def action(fake: FakeRetell, req: Any) -> Reply:
        batch = fake.apply_create(req.json())
        fake.server.route("GET", "/v2/list-batch-tests", retell_error(503, "unavailable"), times=storm)
        return Reply(201, json=batch.view(time.time()))

    return action


@pytest.mark.parametrize("shape", ["rerun round", "second batch of a split"])
def test_a_short_503_storm_while_the_run_is_billed_fails_the_task(
    shape: str, retell: FakeRetell, attack_conn: Any
) -> None:
    """Breaks "transient errors never fail a task before its deadline" for multi-batch runs and reruns.

    Once the first batch exists the run is *waiting* (billed, deadline fixed), but every later
    create (a rerun round, the next batch of a split over 200 ids) goes through ``create_batch``,
    whose pre-POST ``recent_batches`` listing uses the bounded retry policy of "before anything is
    billed" and is outside ``_reconcile``'s patience: a 503 storm that outlasts ``max_retries`` (here
    9 x 503, under a second) propagates as ``RetellAPIError(503)`` and fails the try at once, 19 s
    before the deadline (with the default ``retries=0`` the run is lost, its batch billed).
    Promised: the run waits the storm out and reaches its verdict.
    """
    conn = attack_conn(max_retries=2, max_retry_wait=0.05)
    if shape == "rerun round":
        ids, kwargs = IDS, {"rerun_failed": 1}
        retell.outcomes = {"tcd_c": ["fail", "pass"]}  # flaky: passes on the rerun
    else:
        ids, kwargs = [f"tcd_{i:04d}" for i in range(201)], {}
    retell.known_definitions = ids
    retell.creates = [_storm_after_first_create(storm=9)]
    start = time.monotonic()

    try:
        result = _operator(conn, ids, **kwargs).execute(fake_context())
    except Exception as exc:
        pytest.fail(
            f"{shape}: the task failed {time.monotonic() - start:.1f} s into a {DEADLINE:.0f} s deadline "
            f"on a transient error, with {len(retell.batches)} batch(es) billed: {exc}"
        )
    assert result["gate_passed"]


def _corrupt_gzip() -> Reply:
    """A 200 whose body claims gzip but is not (a proxy or a load balancer mangling it in transit)."""
    return Reply(
        200,
        body=b"this is not gzip",
        headers={"content-encoding": "gzip", "content-type": "application/json"},
    )


def test_a_mangled_reply_while_waiting_escapes_as_a_raw_httpx_error(
    retell: FakeRetell, attack_conn: Any
) -> None:
    """Breaks "one exception family" / the outage policy on a corrupt Content-Encoding.

    httpx raises ``httpx.DecodingError`` for a body that does not decode; it is a ``RequestError``
    but not a ``TransportError``, so ``RetellHook._send`` does not translate it and the runners only
    catch ``RetellAPIError``: the raw httpx exception propagates out of the wait, past the outage
    policy, and fails the task on one mangled poll, 20 s before its deadline. Promised: a
    ``RetellAPIError`` (a mangled reply in transit is as transient as a dropped connection; at the
    very least it must be one of the provider's typed errors). Observed: ``httpx.DecodingError``.
    """
    conn = attack_conn()
    retell.known_definitions = IDS
    retell.complete_after = 0.5
    retell.server.route("GET", "/get-batch-test/*", _corrupt_gzip(), times=1)

    try:
        _operator(conn, IDS).execute(fake_context())
    except RetellError:
        pass  # typed: acceptable
    except Exception as exc:
        pytest.fail(f"one mangled poll escaped as {type(exc).__module__}.{type(exc).__name__}: {exc}")


async def test_a_mangled_reply_crashes_the_trigger(retell: FakeRetell, attack_conn: Any) -> None:
    """Breaks "the trigger survives transient errors" and "one TriggerEvent at the end".

    Same mangled reply, read by the trigger: ``httpx.DecodingError`` is not a ``RetellError``, so it
    escapes ``RetellBatchTestTrigger.run`` with no event at all (Airflow then fails the deferred
    task with a bare trigger failure, no ``status_code``, no message of ours). Promised: keep
    polling (or, at worst, one ``error`` event).
    """
    conn = attack_conn()
    batch = retell.apply_create({"response_engine": ENGINE, "test_case_definition_ids": IDS})
    retell.server.route("GET", "/get-batch-test/*", _corrupt_gzip(), times=1)
    trigger = RetellBatchTestTrigger(
        batch_test_ids=[batch.id], retell_conn_id=conn, poll_interval=0.1, end_time=time.time() + DEADLINE
    )

    try:
        events = [event.payload async for event in trigger.run()]
    except Exception as exc:
        pytest.fail(f"the trigger crashed with {type(exc).__module__}.{type(exc).__name__}: {exc}")
    assert len(events) == 1
