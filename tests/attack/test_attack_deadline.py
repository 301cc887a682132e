"""Attacks on "bounded waits": an absolute deadline that replies, pagination and retries cannot outlive
by more than a few seconds (the operator's ``timeout`` covers the run, "creates included").

Each test measures the wall time from the start of the task (or trigger) to the moment it gave up,
and compares it with the deadline it was given. Each currently FAILS: the task overshoots its
deadline by far more than the promised 5 s.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowRescheduleException

from airflow_provider_retell.exceptions import RetellError
from airflow_provider_retell.operators.batch_test import RetellBatchTestOperator
from airflow_provider_retell.sensors.batch_test import RetellBatchTestSensor
from airflow_provider_retell.triggers.batch_test import RetellBatchTestTrigger
from airflow_provider_retell.waiting import STATE_KEY
from tests.attack.fake_retell import FakeRetell
from tests.chaos import retell_error
from tests.fakes import FakeStore, fake_context

ENGINE = {"type": "retell-llm", "llm_id": "llm_atk", "version": 2}
IDS = ["tcd_a", "tcd_b", "tcd_c"]
#: "a reply that trickles cannot outlive [the deadline] by more than 5 s"
GRACE = 5.0


def _operator(conn_id: str, timeout: float, ids: list[str] = IDS, **kwargs: Any) -> RetellBatchTestOperator:
    return RetellBatchTestOperator(
        task_id="bounded",
        response_engine=ENGINE,
        test_case_definition_ids=ids,
        wait_for_completion=True,
        poll_interval=0.2,
        timeout=timeout,
        retell_conn_id=conn_id,
        **kwargs,
    )


def _time_to_failure(op: RetellBatchTestOperator) -> tuple[float, BaseException]:
    start = time.monotonic()
    with pytest.raises(RetellError) as info:
        op.execute(fake_context())
    return time.monotonic() - start, info.value


def test_retry_after_on_the_create_is_waited_out_past_the_deadline(
    retell: FakeRetell, attack_conn: Any
) -> None:
    """Breaks the absolute deadline ("how long the run may take, creates included").

    The POST is retried blind on 429 (``_surely_not_applied``) by the hook's bounded retry policy,
    which honours ``Retry-After`` up to ``max_retry_wait`` and knows nothing of the run's deadline
    (``Call.end`` is never set on the create, nor on its listings). timeout=2 s; Retry-After: 4.
    Promised: the task gives up by ~2 s (+5). Observed: ~12 s.
    """
    conn = attack_conn(max_retries=3, max_retry_wait=10)
    retell.known_definitions = IDS
    retell.creates = [lambda fake, req: retell_error(429, "slow down", **{"Retry-After": "4"})] * 4

    elapsed, error = _time_to_failure(_operator(conn, timeout=2))

    assert elapsed <= 2 + GRACE, f"deadline 2 s, gave up after {elapsed:.1f} s: {error}"


def test_reconciliation_listings_outlive_the_deadline(retell: FakeRetell, attack_conn: Any) -> None:
    """Breaks the absolute deadline during the create protocol's reconciliation.

    ``create_batch(end=record.deadline)`` says ``end`` bounds the whole protocol, but ``_reconcile``
    only checks ``end`` *between* listings: each listing is a ``Call`` without ``end`` and with the
    bounded retry policy, so a hanging ``list-batch-tests`` costs ``(max_retries + 1) x timeout``
    (here 4 x 3 s; with the defaults 4 x 60 s plus backoff) before the deadline is even looked at.
    timeout=1 s. Promised: gives up by ~1 s (+5). Observed: ~12 s.
    """
    conn = attack_conn(max_retries=3, timeout=3)
    retell.known_definitions = IDS

    def ambiguous_then_hang(fake: FakeRetell, req: Any) -> Any:
        fake.delays["list"] = 30.0  # from now on the listings hang
        return retell_error(500, "internal error")  # not applied, but ambiguous for us

    retell.creates = [ambiguous_then_hang]

    elapsed, error = _time_to_failure(_operator(conn, timeout=1))

    assert elapsed <= 1 + GRACE, f"deadline 1 s, gave up after {elapsed:.1f} s: {error}"


def test_listing_runs_page_by_page_outlives_the_deadline(retell: FakeRetell, attack_conn: Any) -> None:
    """Breaks "pagination capped" / the absolute deadline while listing runs.

    Every page of ``list-test-runs`` is a ``Call(end=deadline)`` whose budget is
    ``max(end - now, 0) + LAST_POLL_GRACE_SECONDS``: past the deadline each page still gets 3 s, and
    ``paginate`` never checks the deadline between pages (up to ``MAX_PAGES`` = 100 pages, ~300 s).
    A Retell that serves each page in 1.5 s with a fresh ``pagination_key`` keeps the task busy.
    timeout=2 s, 12 pages. Promised: gives up by ~2 s (+5). Observed: ~18 s.
    """
    conn = attack_conn()
    retell.known_definitions = IDS
    retell.outcomes = {"tcd_c": "fail"}  # so the runs are listed

    def slow_endless_pages(kind: str, payload: Any, req: Any) -> Any:
        if kind != "runs":
            return payload
        n = int((req.query.get("pagination_key") or "p0")[1:])
        if n >= 12:
            return {"items": payload["items"] if n == 12 else [], "has_more": False}
        return {"items": [], "has_more": True, "pagination_key": f"p{n + 1}"}

    retell.transform = slow_endless_pages
    retell.delays["runs"] = 1.5

    elapsed, error = _time_to_failure(_operator(conn, timeout=2))

    assert elapsed <= 2 + GRACE, f"deadline 2 s, gave up after {elapsed:.1f} s: {type(error).__name__}"


def test_polling_a_multi_batch_run_outlives_the_deadline(retell: FakeRetell, attack_conn: Any) -> None:
    """Breaks the absolute deadline for multi-batch runs (more than 200 ids).

    ``poll_once`` reads every pending batch in turn, each ``Call`` cut at ``end + 3 s`` *separately*,
    and the deadline is only checked after the whole sweep. With 4 batches (601 ids) and a Retell
    answering each read in 2.8 s, one sweep lasts ~11 s whatever the deadline (100 batches: ~5 min).
    timeout=1 s. Promised: gives up by ~1 s (+5). Observed: ~11 s.
    """
    conn = attack_conn()
    ids = [f"tcd_{i:04d}" for i in range(601)]
    retell.known_definitions = ids
    retell.complete_after = 3600  # never finishes within the test
    retell.delays["get"] = 2.8

    elapsed, error = _time_to_failure(_operator(conn, timeout=1, ids=ids))

    assert len(retell.batches) == 4
    assert elapsed <= 1 + GRACE, f"deadline 1 s, gave up after {elapsed:.1f} s: {type(error).__name__}"


def test_batches_are_still_started_after_the_deadline(
    retell: FakeRetell, attack_conn: Any, chaos: Any
) -> None:
    """Breaks the absolute deadline (and the cost it is meant to bound) for multi-batch runs.

    ``BatchTestWaiter._start`` never looks at ``record.deadline``: a run whose deadline passes while
    its batches are being created goes on creating (and billing) every remaining batch, then times
    out at the first poll without waiting for any of them. timeout=1 s, 3 batches, each create
    answered in 1.5 s. Promised: nothing new is started once the deadline has passed.
    Observed: 2 batches created after the deadline, then RetellTimeoutError.
    """
    conn = attack_conn()
    ids = [f"tcd_{i:04d}" for i in range(401)]
    retell.known_definitions = ids
    retell.complete_after = 3600
    retell.delays["post"] = 1.5
    start = time.monotonic()

    _time_to_failure(_operator(conn, timeout=1, ids=ids))

    late = [r for r in chaos.requests if r.method == "POST" and r.arrived > start + 1.5]
    assert not late, (
        f"{len(late)} creates were sent after the deadline ({len(retell.batches)} batches billed)"
    )


def test_reschedule_after_retry_after_lands_past_the_deadline(retell: FakeRetell, attack_conn: Any) -> None:
    """Breaks "bounded waits" in reschedule mode (Retry-After of 1e9).

    ``RetellBatchTestSensor._pause`` computes how long it may wait (cut at the deadline) but, in
    reschedule mode, reschedules at ``now + delay`` with the *uncut* delay: a 429 with
    ``Retry-After: 1000000000`` (capped to 3600 s) puts the next poke an hour out, although the
    deadline is 10 s away. Promised: the next poke no later than the deadline (+5 s).
    Observed: ~3600 s later.
    """
    conn = attack_conn()
    batch = retell.apply_create({"response_engine": ENGINE, "test_case_definition_ids": IDS})
    retell.complete_after = 3600
    retell.server.route(
        "GET", f"/get-batch-test/{batch.id}", retell_error(429, "slow", **{"Retry-After": "1e9"})
    )
    sensor = RetellBatchTestSensor(
        task_id="wait",
        batch_test_id=batch.id,
        mode="reschedule",
        poke_interval=1,
        timeout=10,
        retell_conn_id=conn,
    )
    store = FakeStore()

    with pytest.raises(AirflowRescheduleException) as info:
        sensor.poke(fake_context(store))

    deadline = store.data[STATE_KEY]["deadline"]
    late = info.value.reschedule_date.timestamp() - deadline
    assert late <= GRACE, f"rescheduled {late:.0f} s past the deadline ({info.value.reschedule_date})"


async def test_triggers_queued_for_a_pool_slot_outlive_their_deadline(
    retell: FakeRetell, attack_conn: Any
) -> None:
    """Breaks "a reply that trickles cannot outlive [the deadline] by more than 5 s" in the triggerer.

    ``RetellHook._asend`` waits for ``shared.slots`` (one semaphore of ``POOL_SIZE`` = 20 per loop)
    *outside* ``asyncio.wait_for(..., budget)``: time spent queueing for a slot is not bounded by the
    trigger's deadline. With 45 waiting triggers and a Retell that takes 3.5 s per read, the third
    wave of triggers gets a slot ~7 s in and reports its timeout ~10 s after its ``end_time``.
    Promised: every trigger reports by end_time + 5 s. Observed: up to ~8.5 s late.
    """
    conn = attack_conn()
    retell.complete_after = 3600
    batches = [
        retell.apply_create({"response_engine": ENGINE, "test_case_definition_ids": IDS}) for _ in range(45)
    ]
    retell.delays["get"] = 3.5
    end_time = time.time() + 1.0
    triggers = [
        RetellBatchTestTrigger(
            batch_test_ids=[b.id], retell_conn_id=conn, poll_interval=0.5, end_time=end_time
        )
        for b in batches
    ]

    async def first_event(trigger: RetellBatchTestTrigger) -> tuple[float, str]:
        async for event in trigger.run():
            return time.time() - end_time, event.payload["status"]
        raise AssertionError("no event")

    results = await asyncio.wait_for(asyncio.gather(*(first_event(t) for t in triggers)), 25)

    worst = max(late for late, _ in results)
    assert {status for _, status in results} == {"timeout"}
    assert worst <= GRACE, f"the last trigger reported {worst:.1f} s after its end_time"


def test_a_rerun_after_a_create_timeout_bills_a_batch_it_never_waits_for(
    retell: FakeRetell, attack_conn: Any
) -> None:
    """Breaks the absolute deadline's contract ("fixed when the run starts"; a re-run starts anew).

    A create whose outcome stayed unknown until the deadline fails the task with
    ``RetellTimeoutError`` and deliberately *keeps* the run's record (intent included) so the next
    try looks before sending. ``RetellTimeoutError`` is an ``AirflowFailException``: the next try is a
    person clearing the task. That try inherits the old, expired ``record.deadline``: the
    reconciliation sees the settle window passed, sends a new create (billed), and the very first
    poll then fails with "Timed out" without waiting a second for the batch it just started.
    Promised: a re-run either waits for what it starts (a fresh deadline) or starts nothing.
    Observed: 1 batch billed and abandoned at once.
    """
    conn = attack_conn(create_settle_seconds=1.5)
    retell.known_definitions = IDS
    retell.complete_after = 60
    retell.creates = ["fail"]  # try 1: a 500, not applied: ambiguous until the settle window passes
    store = FakeStore()

    with pytest.raises(RetellError, match="deadline passed"):
        _operator(conn, timeout=1).execute(fake_context(store))
    assert retell.batches == []
    time.sleep(1.0)  # the person looks, clears the task

    started = time.monotonic()
    with pytest.raises(RetellError) as info:
        _operator(conn, timeout=1).execute(fake_context(store))
    waited = time.monotonic() - started

    assert not retell.batches, (
        f"the re-run billed {len(retell.batches)} batch(es) and gave up after {waited:.1f} s: {info.value}"
    )
