"""Attacks on the ``max_test_cases`` cost guard ("the most test cases the run may start, reruns
included") and on the bound on what one listing may read.

Each test currently FAILS.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

import pytest

from airflow_provider_retell.exceptions import RetellError, RetellInputError
from airflow_provider_retell.hooks.retell import RetellHook
from airflow_provider_retell.operators.batch_test import RetellBatchTestOperator
from tests.attack.fake_retell import FakeRetell, KillWhenTheBatchIdIsSaved, WorkerKilled
from tests.chaos import Reply
from tests.fakes import fake_context

ENGINE = {"type": "retell-llm", "llm_id": "llm_atk", "version": 2}
IDS = ["tcd_a", "tcd_b", "tcd_c"]


def test_max_test_cases_is_exceeded_by_a_retry(retell: FakeRetell, attack_conn: Any) -> None:
    """Breaks "max_test_cases: the most test cases the run may start, reruns included".

    ``check_cost`` counts the cases of the batches *recorded* in the run's record. A try killed
    between the create's reply and the write of the batch id (see test_attack_duplicates) leaves a
    record with neither the intent nor the id, so the retry starts the same 3 cases again: 6 cases
    billed under ``max_test_cases=3``, and the guard never fires. Promised: at most 3.
    """
    conn = attack_conn()
    retell.known_definitions = IDS
    store = KillWhenTheBatchIdIsSaved()

    def op() -> RetellBatchTestOperator:
        return RetellBatchTestOperator(
            task_id="capped", response_engine=ENGINE, test_case_definition_ids=IDS, wait_for_completion=True,
            poll_interval=0.1, timeout=20, max_test_cases=3, retell_conn_id=conn,
        )  # fmt: skip

    with pytest.raises(WorkerKilled):
        op().execute(fake_context(store))
    with contextlib.suppress(RetellInputError):  # the guard stopping the retry is what is promised
        op().execute(fake_context(store))
    billed = sum(len(b.ids) for b in retell.batches)
    assert billed <= 3, f"max_test_cases=3 but {billed} test cases were billed"


def test_listing_the_runs_of_a_three_case_batch_reads_a_hundred_megabytes(
    retell: FakeRetell, attack_conn: Any, chaos: Any
) -> None:
    """Breaks "pagination and body sizes capped" in any useful sense (bytes read, memory held).

    A batch has at most 200 runs, and this one reports 3. ``list_runs`` still follows fresh
    ``pagination_key`` s for up to ``MAX_PAGES`` = 100 pages of up to ``MAX_REPLY_BYTES`` = 32 MiB each,
    keeping every parsed run (``result_explanation`` up to 100,000 chars) in memory until the page
    cap trips: up to 3.2 GB read and held for one listing. Here 100 pages of ~1 MiB: ~95 MiB read
    (1,000 "runs" held) before "more than 100 pages" is raised. Promised (a cap that means
    something): stop at the batch's ``total_count`` runs, or at one reply's worth of bytes.
    """
    conn = attack_conn()
    batch = retell.apply_create({"response_engine": ENGINE, "test_case_definition_ids": IDS})
    served: list[int] = []

    def inflated(req: Any) -> Reply:
        n = int((req.query.get("pagination_key") or "k0")[1:])
        items = [
            {
                "test_case_job_id": f"tcj_{n}_{i}",
                "test_case_definition_id": IDS[i % 3],
                "status": "fail",
                "result_explanation": "x" * 100_000,
            }
            for i in range(10)
        ]
        body = json.dumps({"items": items, "has_more": True, "pagination_key": f"k{n + 1}"}).encode()
        served.append(len(body))
        return Reply(200, body=body, headers={"content-type": "application/json"})

    chaos.route("GET", f"/v2/list-test-runs/{batch.id}", inflated)
    hook = RetellHook(retell_conn_id=conn)

    try:
        runs = hook.list_test_runs(batch.id)
        held = len(runs)
    except RetellError:
        held = 0
    hook.close()

    read_mib = sum(served) / 2**20
    assert read_mib <= 32, f"one runs listing of a 3-case batch read {read_mib:.0f} MiB ({held} runs kept)"
