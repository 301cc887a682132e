"""Run Retell batch tests on demand from the Airflow UI: the Params below make the trigger form.

One task starts the batch, waits for it in the triggerer and applies the gate
(``wait_for_completion=True``); ``report`` reads the counts either way.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import DAG, Param, task
from airflow.sdk.exceptions import AirflowFailException

from airflow_provider_retell.operators.batch_test import RetellBatchTestOperator

with DAG(
    dag_id="retell_ui_trigger",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    render_template_as_native_obj=True,
    params={
        "agent_id": Param(
            "agent_support",
            type="string",
            minLength=1,
            title="Agent id",
            description="The Retell agent whose response engine is tested",
        ),
        "test_case_definition_ids": Param(
            None,
            type=["null", "array"],
            items={"type": "string"},
            title="Test case definition ids",
            description="Leave empty to run every test case of the agent",
        ),
        "min_pass_rate": Param(
            1.0,
            type=["null", "number"],
            minimum=0,
            maximum=1,
            title="Minimum pass rate",
            description="Share of cases that must pass, 0 to 1",
        ),
    },
    tags=["retell", "manual"],
) as dag:
    run_tests = RetellBatchTestOperator(
        task_id="run_batch_test",
        agent_id="{{ params.agent_id }}",
        # a cleared field in the form may arrive as [] rather than null: both mean "all of them"
        test_case_definition_ids="{{ params.test_case_definition_ids or None }}",
        wait_for_completion=True,
        deferrable=True,
        poll_interval=30,
        timeout=timedelta(hours=1),
        max_failures=None,
        max_errors=None,
        min_pass_rate="{{ params.min_pass_rate }}",
    )

    @task(trigger_rule="all_done")
    def report(result: dict[str, Any] | None) -> dict[str, Any] | None:
        if not result:
            print("No result: the batch test did not finish (see run_batch_test's log)")
            return None
        print(
            f"{result['pass_count']} passed, {result['fail_count']} failed, {result['error_count']} errored "
            f"of {result['total_count']}; gate {'passed' if result['gate_passed'] else 'failed'}"
        )
        return {
            k: result[k] for k in ("pass_count", "fail_count", "error_count", "total_count", "gate_passed")
        }

    @task(trigger_rule="one_failed", retries=0)
    def watcher(summary: dict[str, Any] | None) -> None:
        """Fail the DAG run when anything upstream failed: ``report`` (all_done) alone would leave it green."""
        if summary is None:
            raise AirflowFailException(
                "run_batch_test failed before it had a result (an unknown agent or test case, a bad "
                "argument, or a timeout): see its log"
            )
        raise AirflowFailException(
            f"The quality gate failed: {summary['pass_count']} passed, {summary['fail_count']} failed, "
            f"{summary['error_count']} errored of {summary['total_count']}"
        )

    summary = report(run_tests.output)
    [run_tests, summary] >> watcher(summary)
