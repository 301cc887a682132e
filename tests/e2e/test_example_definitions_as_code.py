"""The ``retell_definitions_as_code`` example against the emulator's default seed, through ``dag.test()``.

Its files (``example_dags/retell_tests/``: billing.yaml, support/orders.yaml) hold five cases for
agent_support: four new ones, and "Answers opening hours" exactly as the seed has it (tcd_support_01).
"""

from __future__ import annotations

from typing import Any

import pytest

from scripts.dagrun import run_dag, task_states, xcom
from tests.e2e.conftest import EXAMPLE_DAGS
from tests.e2e.dag_support import POLL

pytestmark = pytest.mark.e2e

DAG_ID = "retell_definitions_as_code"
NEW = [
    "refund for a late delivery",
    "caller asks for a human",
    "no tool mocks any more",
    "order status with a tracking number",
]
SEEDED = "Answers opening hours"
FLOW = {"type": "conversation-flow", "conversation_flow_id": "cf_support"}


def support_definitions(emulator: Any) -> dict[str, str]:
    """name -> id of every definition of agent_support's engine."""
    with emulator.client() as client:
        items = client.get("/v2/list-test-case-definitions", params={**FLOW, "limit": 1000}).json()["items"]
    return {d["name"]: d["test_case_definition_id"] for d in items}


def batch_cases(emulator: Any, batch_test_id: str) -> list[str]:
    with emulator.client() as client:
        runs = client.get(f"/v2/list-test-runs/{batch_test_id}", params={"limit": 1000}).json()["items"]
    return [r["test_case_definition_id"] for r in runs]


def definition_writes(emulator: Any) -> list[tuple[str, str]]:
    return [
        (r["method"], r["path"])
        for r in emulator.requests()
        if "test-case-definition" in r["path"] and r["method"] != "GET"
    ]


def test_the_files_sit_next_to_the_dag_with_their_schema():
    from airflow_provider_retell.definitions import SCHEMA_PATH, load_definitions

    folder = EXAMPLE_DAGS / "retell_tests"
    assert (folder / SCHEMA_PATH.name).read_text() == SCHEMA_PATH.read_text(), (
        "stale copy: python -m airflow_provider_retell.definitions --schema "
        "> example_dags/retell_tests/test_case_definitions.schema.json"
    )
    for file in folder.rglob("*.yaml"):
        depth = len(file.relative_to(folder).parts) - 1
        schema = "./" if not depth else "../" * depth
        assert (
            file.read_text().splitlines()[0] == f"# yaml-language-server: $schema={schema}{SCHEMA_PATH.name}"
        )
    assert [s.name for s in load_definitions("retell_tests", base_dir=EXAMPLE_DAGS)] == [
        *NEW[:3],
        SEEDED,
        NEW[3],
    ]


def test_sync_then_run_exactly_the_synced_cases_then_gate(example_dags, retell_conn):
    dag = example_dags[DAG_ID]
    run = run_dag(dag, poll_interval=POLL)

    assert run.state == "success"
    assert task_states(run) == {"sync_test_cases": "success", "run_test_cases": "success", "gate": "success"}
    synced = xcom(run, "sync_test_cases")
    assert (synced["created"], synced["unchanged"], synced["updated"], synced["deleted"]) == (
        NEW,
        [SEEDED],
        [],
        [],
    )
    stored = support_definitions(retell_conn)
    ids = [stored[name] for name in [*NEW[:3], SEEDED, NEW[3]]]  # file order
    assert ids[3] == "tcd_support_01"
    assert synced["test_case_definition_ids"] == ids
    assert len(stored) == 8 + 4  # the seed's eight are kept: prune is off
    assert definition_writes(retell_conn) == [("POST", "/create-test-case-definition")] * 4
    first = retell_conn.requests("POST", "/create-test-case-definition")[0]["body"]
    assert first["response_engine"] == FLOW
    assert first["llm_model"] == "gpt-4.1"
    assert first["dynamic_variables"] == {"order_id": "10432", "customer_tier": "gold"}

    result = xcom(run, "run_test_cases")
    assert batch_cases(retell_conn, result["batch_test_id"]) == ids  # exactly the synced set
    assert (result["pass_count"], result["total_count"], result["gate_passed"]) == (5, 5, True)
    assert xcom(run, "gate") == {"pass_count": 5, "total_count": 5, "gate_passed": True}

    # Run again: nothing to write, the same five cases run.
    retell_conn.clear_requests()
    run = run_dag(dag, poll_interval=POLL)
    assert run.state == "success"
    assert xcom(run, "sync_test_cases")["unchanged"] == [*NEW[:3], SEEDED, NEW[3]]
    assert definition_writes(retell_conn) == []
    assert batch_cases(retell_conn, xcom(run, "run_test_cases")["batch_test_id"]) == ids

    # The prune param: the seed's seven other cases go, the files' five stay.
    retell_conn.clear_requests()
    run = run_dag(dag, conf={"prune": True}, poll_interval=POLL)
    assert run.state == "success"
    assert len(xcom(run, "sync_test_cases")["deleted"]) == 7
    assert sorted(definition_writes(retell_conn)) == [  # in the plan's order: by name
        ("DELETE", f"/delete-test-case-definition/tcd_support_0{i}") for i in range(2, 9)
    ]
    assert sorted(support_definitions(retell_conn).values()) == sorted(ids)
