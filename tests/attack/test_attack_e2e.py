"""The worst break, reproduced through Airflow itself: ``dag.test()``, the real task runner, the real
``task_state_store`` (metadata database) and a real task retry, against the emulator.

Currently FAILS: two batches are billed for one run.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from scripts.dagrun import sync_dag, task_instance
from tests.attack.fake_retell import records_a_started_batch

pytestmark = pytest.mark.e2e


def test_a_failed_write_of_the_batch_id_makes_the_retry_bill_a_second_batch(
    airflow_db: Any, retell_conn: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Breaks "a task retry never starts a second batch" (durable create protocol), end to end.

    ``create_batch`` clears the create intent in ``task_state_store`` as soon as the create returns;
    the batch id is written by a *second* ``task_state_store.set`` in ``BatchTestWaiter._start``.
    Here that second write fails once (``TaskStateStoreAccessor.set`` raising, as it does on an
    ``ErrorResponse`` from the API server; a SIGKILL of the worker at that instant has the same
    effect). The try fails, Airflow retries the task, the retry finds a record with no intent and
    no batch id, and starts another billed batch. Promised: 1 POST. Observed: 2.
    """
    from airflow.sdk import DAG
    from airflow.sdk.execution_time.context import TaskStateStoreAccessor

    from airflow_provider_retell.operators.batch_test import RetellBatchTestOperator

    real_set = TaskStateStoreAccessor.set
    failed: list[bool] = []

    def flaky_set(self: Any, key: str, value: Any, **kw: Any) -> None:
        if records_a_started_batch(value) and not failed:
            failed.append(True)
            raise RuntimeError("task state store write failed (API server restarting)")
        real_set(self, key, value, **kw)

    monkeypatch.setattr(TaskStateStoreAccessor, "set", flaky_set)
    with DAG(
        dag_id="attack_batch_id_write", schedule=None, start_date=datetime(2026, 1, 1), catchup=False
    ) as dag:
        RetellBatchTestOperator(
            task_id="run_batch_test",
            agent_id="agent_support",
            wait_for_completion=True,
            poll_interval=0.2,
            retries=1,
            retry_delay=timedelta(0),
        )
    sync_dag(dag)

    run = dag.test()

    ti = task_instance(run, "run_batch_test")
    assert failed, "the fault was never injected"
    assert ti.try_number == 2
    posts = retell_conn.count("POST", "/create-batch-test")
    assert posts == 1, f"one run, {posts} billed batches (try 1 created one, the retry another)"
