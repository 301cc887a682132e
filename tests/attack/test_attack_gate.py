"""Attacks on "a gate that fails closed (counts that do not add up, a reply for another batch)".

A lying Retell reports a finished batch whose numbers do not match what the task asked for. Each
test currently FAILS: the gate passes (``gate_passed`` True, no ``RetellQualityGateError``) on a run
in which test cases never ran, or on a batch that is not the one the task started.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from airflow_provider_retell.exceptions import RetellError
from airflow_provider_retell.operators.batch_test import RetellBatchTestOperator
from tests.attack.fake_retell import FakeRetell
from tests.chaos import Reply
from tests.fakes import fake_context

ENGINE = {"type": "retell-llm", "llm_id": "llm_atk", "version": 2}
IDS = ["tcd_a", "tcd_b", "tcd_c"]


def _run(conn_id: str, **kwargs: Any) -> Any:
    op = RetellBatchTestOperator(
        task_id="gate",
        response_engine=ENGINE,
        test_case_definition_ids=IDS,
        wait_for_completion=True,
        poll_interval=0.1,
        timeout=20,
        retell_conn_id=conn_id,
        **kwargs,
    )
    return op.execute(fake_context())


def test_a_batch_that_ran_fewer_cases_than_asked_passes_the_gate(
    retell: FakeRetell, attack_conn: Any
) -> None:
    """Breaks "the gate fails closed on counts that do not add up".

    The task starts a batch of 3 cases; Retell reports it complete with 2 passed of 2 (a case
    silently dropped: a definition deleted between planning and the create, a Retell bug). The
    counts are consistent with *themselves*, so ``count_problems`` is happy; runs are only listed
    when something failed, and ``judge`` fills the unlisted batch with ``dict.fromkeys(asked)``
    ("every case asked for passed") without comparing ``total_count`` to ``len(asked)``.
    Promised: the gate fails closed. Observed: gate_passed=True, pass_rate 1.0, total 2.
    """
    conn = attack_conn()
    retell.known_definitions = IDS

    def two_of_three(kind: str, payload: Any, req: Any) -> Any:
        if kind in ("get", "post"):
            payload.update(pass_count=2, total_count=2)
        return payload

    retell.transform = two_of_three

    try:
        result = _run(conn)
    except RetellError:
        return  # failed closed: what is promised
    pytest.fail(
        f"a run of 3 cases in which 1 never ran passed the gate: gate_passed={result['gate_passed']}, "
        f"{result['pass_count']}/{result['total_count']} passed"
    )


def test_an_empty_rerun_batch_turns_a_failed_case_into_a_pass(retell: FakeRetell, attack_conn: Any) -> None:
    """Breaks "the gate fails closed" for reruns of failed cases (``rerun_failed``).

    ``tcd_c`` fails; the rerun batch started for it comes back ``complete`` with 0 of 0 (it ran
    nothing). Its runs are not listed (no failures), so ``judge`` assumes "every case asked for
    passed", subtracts the failure and adds a pass: the run is green and ``tcd_c`` is reported as
    *flaky*. Promised: the gate fails closed (a rerun that ran nothing proves nothing).
    Observed: gate_passed=True, fail_count 0.
    """
    conn = attack_conn()
    retell.known_definitions = IDS
    retell.outcomes = {"tcd_c": "fail"}

    def empty_rerun(kind: str, payload: Any, req: Any) -> Any:
        if (
            kind in ("get", "post")
            and len(retell.batches) > 1
            and payload["test_case_batch_job_id"] == retell.batches[1].id
        ):
            payload.update(pass_count=0, fail_count=0, error_count=0, total_count=0)
        return payload

    retell.transform = empty_rerun

    try:
        result = _run(conn, rerun_failed=1)
    except RetellError:
        return
    pytest.fail(
        f"a failed case whose rerun ran nothing was counted as passed: gate_passed={result['gate_passed']}, "
        f"fail_count={result['fail_count']}, flaky={[c['test_case_definition_id'] for c in result['flaky_test_cases']]}"
    )


def test_a_create_reply_naming_an_older_batch_is_judged_instead_of_the_new_one(
    retell: FakeRetell, attack_conn: Any
) -> None:
    """Breaks "the gate fails closed on a reply for another batch".

    Retell (or a caching gateway in front of it) answers the create with a batch that already
    existed before the create: one the protocol itself listed in its ``before`` snapshot a moment
    earlier, all green. The new batch (billed, with a failing case) is never looked at; the task
    waits on the old one and passes the gate. Nothing checks the create's reply against the
    request (new id not in ``before``, same engine, ``total_count == len(ids)``, created after the
    submit). Promised: fail closed. Observed: gate_passed=True on someone else's batch.
    """
    conn = attack_conn()
    retell.known_definitions = IDS
    old = retell.apply_create({"response_engine": ENGINE, "test_case_definition_ids": IDS})  # green, earlier
    old.created_ms -= 5_000
    retell.outcomes = {"tcd_c": "fail"}

    def cached_reply(fake: FakeRetell, req: Any) -> Reply:
        fake.apply_create(req.json())  # Retell makes (and bills) the new batch...
        return Reply(201, json=old.view(time.time()))  # ...but the reply names the old one

    retell.creates = [cached_reply]

    try:
        result = _run(conn)
    except RetellError:
        return
    pytest.fail(
        f"the gate judged batch {result['batch_test_id']} (existed before the create) instead of the new "
        f"{retell.batches[-1].id}: gate_passed={result['gate_passed']}"
    )


def test_adopting_a_concurrent_runs_batch_passes_the_gate_for_a_case_that_never_ran(
    retell: FakeRetell, attack_conn: Any
) -> None:
    """Breaks "the gate fails closed" through the create protocol (concurrent dag runs, one engine).

    Two dag runs of the same DAG test the same engine (a manual trigger during the nightly run, a
    backfill, mapped tasks): ours runs ``[tcd_y]``, theirs ``[tcd_x]``, one case each (typical of a
    rerun round). Our POST fails with a 500 and was *not* applied; theirs lands a moment later. Our
    reconciliation finds one batch of this engine with 1 case created since the submit; its runs
    are not listed yet (``ran_our_cases`` then says "maybe ours"), so it is adopted. Runs of an
    all-pass batch are never listed afterwards and ``judge`` assumes "every case asked for passed":
    ``tcd_y`` is reported passed though it never ran anywhere. Promised: fail closed (or at least
    verify an adopted batch's runs). Observed: gate_passed=True.
    """
    conn = attack_conn(create_settle_seconds=1)
    retell.known_definitions = ["tcd_x", "tcd_y"]
    born: dict[str, float] = {}

    def ours_fails_theirs_lands(fake: FakeRetell, req: Any) -> Any:
        from tests.chaos import retell_error

        theirs = fake.apply_create({"response_engine": ENGINE, "test_case_definition_ids": ["tcd_x"]})
        born[theirs.id] = time.time()
        return retell_error(500, "internal error")  # ours: not applied

    def runs_not_listed_yet(kind: str, payload: Any, req: Any) -> Any:
        batch_id = req.path.rsplit("/", 1)[1]
        if kind == "runs" and time.time() - born.get(batch_id, 0) < 3:
            payload["items"] = []
        return payload

    retell.creates = [ours_fails_theirs_lands]
    retell.transform = runs_not_listed_yet
    op = RetellBatchTestOperator(
        task_id="gate",
        response_engine=ENGINE,
        test_case_definition_ids=["tcd_y"],
        wait_for_completion=True,
        poll_interval=0.1,
        timeout=20,
        retell_conn_id=conn,
    )

    try:
        result = op.execute(fake_context())
    except RetellError:
        return
    ran = {case for b in retell.batches for case in b.ids}
    pytest.fail(
        f"tcd_y was judged on batch {result['batch_test_id']} (ran {sorted(ran)}): "
        f"gate_passed={result['gate_passed']}, {result['pass_count']}/{result['total_count']} passed"
    )


def test_runs_that_contradict_all_pass_counts_are_never_looked_at(
    retell: FakeRetell, attack_conn: Any
) -> None:
    """Breaks "the gate fails closed" on "a batch that completes with runs that contradict its counts".

    ``verdict._disagreements`` compares a batch's runs with its counts, but ``next_step`` lists runs
    only for batches whose counts show a failure or an error: a batch whose *counts* say 3 of 3
    passed while its *runs* say ``tcd_c`` failed (counts computed before a late verdict, an
    aggregation bug) is never checked, and the gate passes. Promised: fail closed on runs that
    contradict the counts. Observed: gate_passed=True.
    """
    conn = attack_conn()
    retell.known_definitions = IDS
    retell.outcomes = {"tcd_c": "fail"}  # the runs: one failure

    def green_counts(kind: str, payload: Any, req: Any) -> Any:
        if kind in ("get", "post"):
            payload.update(pass_count=3, fail_count=0, error_count=0, total_count=3)
        return payload

    retell.transform = green_counts

    try:
        result = _run(conn)
    except RetellError:
        return
    pytest.fail(
        f"runs with a failure behind all-pass counts passed the gate: gate_passed={result['gate_passed']}"
    )
