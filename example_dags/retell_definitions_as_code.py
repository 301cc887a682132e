"""Test cases as code: keep Retell test case definitions in git, sync them, run exactly them, gate.

``sync_test_cases`` makes the agent's test case definitions match the YAML files in ``retell_tests/``
(next to this file, reviewed in pull requests; format: docs/definitions.md) and hands the synced ids
on. ``run_test_cases`` runs exactly those cases, waits in the triggerer and applies the gate;
``gate`` runs only when it passed: put the release step there. Definitions in Retell that no file
names are kept, unless the run is triggered with ``{"prune": true}``.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import DAG, Param, task

from airflow_provider_retell.operators.batch_test import RetellBatchTestOperator
from airflow_provider_retell.operators.test_case_definitions import RetellSyncTestCaseDefinitionsOperator

with DAG(
    dag_id="retell_definitions_as_code",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,  # two syncs of one engine at once could both create a new case
    render_template_as_native_obj=True,
    params={
        "prune": Param(False, type="boolean", description="Delete the agent's test cases that no file names"),
    },
    tags=["retell", "test-cases-as-code"],
) as dag:
    sync = RetellSyncTestCaseDefinitionsOperator(
        task_id="sync_test_cases",
        agent_id="agent_support",
        path="retell_tests",  # relative to this file's folder
        prune="{{ params.prune }}",
    )

    run = RetellBatchTestOperator(
        task_id="run_test_cases",
        agent_id="agent_support",
        test_case_definition_ids=sync.output["test_case_definition_ids"],  # exactly the synced set
        wait_for_completion=True,
        deferrable=True,
        poll_interval=30,
        timeout=timedelta(hours=1),
        max_failures=0,
        max_errors=0,
    )

    @task
    def gate(result: dict[str, Any]) -> dict[str, Any]:
        # Runs only when every synced case passed. Put the real release step here.
        print(f"Gate passed: {result['pass_count']}/{result['total_count']} test cases from git")
        return {k: result[k] for k in ("pass_count", "total_count", "gate_passed")}

    gate(run.output)
