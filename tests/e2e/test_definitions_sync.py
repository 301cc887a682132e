"""Test cases as code end to end: YAML files -> RetellSyncTestCaseDefinitionsOperator -> the emulator.

Each DAG is built in the test (files in tmp_path), stored, and run with ``dag.test()``; every claim is
checked in the emulator: its definitions, and its request log (each write's method, path and body).
"""

from __future__ import annotations

import json
import textwrap
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from scripts.dagrun import sync_dag, task_instance, xcom

pytestmark = pytest.mark.e2e

ENGINE = {"type": "retell-llm", "llm_id": "llm_sync"}
SEED = {
    "agents": [{"agent_id": "agent_sync", "response_engine": {**ENGINE, "version": 3}}],
    "test_case_definitions": [],
}
CREATE = "/create-test-case-definition"
CASES = {
    "refund": ("You want a refund for a late delivery.", ["The agent offers a refund"]),
    "human": ("You ask for a human right away.", ["The agent offers a transfer"]),
    "hours": ("You ask when the store opens on Sunday.", ["The agent gives the Sunday hours"]),
}


@pytest.fixture
def emulator(airflow_db: Any, retell_conn: Any) -> Any:
    retell_conn.seed(SEED)
    return retell_conn


def write_cases(folder: Path, cases: dict[str, tuple[str, list[str]]]) -> Path:
    folder.mkdir(exist_ok=True)
    entries = [{"name": n, "user_prompt": p, "metrics": m} for n, (p, m) in cases.items()]
    (folder / "cases.yaml").write_text(json.dumps(entries, indent=2), encoding="utf-8")  # JSON is YAML
    return folder


def sync_task_dag(dag_id: str, path: Path, **kwargs: Any) -> Any:
    from airflow.sdk import DAG

    from airflow_provider_retell.operators.test_case_definitions import RetellSyncTestCaseDefinitionsOperator

    with DAG(dag_id=dag_id, schedule=None, start_date=datetime(2026, 1, 1), catchup=False) as dag:
        RetellSyncTestCaseDefinitionsOperator(task_id="sync", agent_id="agent_sync", path=str(path), **kwargs)
    return sync_dag(dag)


def definitions(emulator: Any) -> list[dict[str, Any]]:
    with emulator.client() as client:
        reply = client.get("/v2/list-test-case-definitions", params={**ENGINE, "limit": 1000})
        reply.raise_for_status()
        return reply.json()["items"]


def by_name(emulator: Any) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    for definition in definitions(emulator):
        found.setdefault(definition["name"], []).append(definition)
    return found


def writes(emulator: Any) -> list[tuple[str, str, Any]]:
    return [(r["method"], r["path"], r["body"]) for r in emulator.requests() if r["method"] != "GET"]


def run_sync(dag: Any, emulator: Any) -> tuple[Any, dict[str, Any]]:
    emulator.clear_requests()
    run = dag.test()
    return run, xcom(run, "sync")


def test_sync_creates_then_changes_nothing_then_updates_one_field_then_prunes(emulator, tmp_path):
    folder = write_cases(tmp_path / "cases", CASES)
    dag = sync_task_dag("e2e_sync_lifecycle", folder)

    # 1. The first sync creates every case, in file order, each without an engine version.
    run, result = run_sync(dag, emulator)
    assert run.state == "success"
    assert result["created"] == list(CASES)
    assert (result["updated"], result["deleted"], result["unchanged"]) == ([], [], [])
    stored = by_name(emulator)
    assert sorted(stored) == sorted(CASES)
    assert all(len(found) == 1 for found in stored.values())
    ids = [stored[name][0]["test_case_definition_id"] for name in CASES]
    assert result["test_case_definition_ids"] == ids
    assert xcom(run, "sync", "test_case_definition_ids") == ids
    assert [(m, p) for m, p, _ in writes(emulator)] == [("POST", CREATE)] * 3
    assert writes(emulator)[0][2] == {
        "name": "refund",
        "user_prompt": CASES["refund"][0],
        "metrics": CASES["refund"][1],
        "response_engine": ENGINE,
    }

    # 2. Applying the same files again sends no write at all.
    run, result = run_sync(dag, emulator)
    assert run.state == "success"
    assert result == {
        "created": [],
        "updated": [],
        "deleted": [],
        "unchanged": list(CASES),
        "test_case_definition_ids": ids,
    }
    assert writes(emulator) == []

    # 3. An edited prompt: exactly one PUT, holding only the changed field.
    edited = {**CASES, "human": ("You insist on a human and get impatient.", CASES["human"][1])}
    write_cases(folder, edited)
    run, result = run_sync(dag, emulator)
    assert result["updated"] == ["human"]
    assert result["unchanged"] == ["refund", "hours"]
    assert result["test_case_definition_ids"] == ids
    assert writes(emulator) == [
        ("PUT", f"/update-test-case-definition/{ids[1]}", {"user_prompt": edited["human"][0]})
    ]
    assert by_name(emulator)["human"][0]["user_prompt"] == edited["human"][0]

    # 4. A case removed from the files is kept without prune ...
    del edited["hours"]
    write_cases(folder, edited)
    run, result = run_sync(dag, emulator)
    assert result == {
        "created": [],
        "updated": [],
        "deleted": [],
        "unchanged": ["refund", "human"],
        "test_case_definition_ids": ids[:2],
    }
    assert writes(emulator) == []
    assert "hours" in by_name(emulator)

    # 5. ... and deleted with it: one DELETE, then the engine holds exactly the files' cases.
    pruning = sync_task_dag("e2e_sync_lifecycle_prune", folder, prune=True)
    run, result = run_sync(pruning, emulator)
    assert run.state == "success"
    assert result["deleted"] == ["hours"]
    assert writes(emulator) == [("DELETE", f"/delete-test-case-definition/{ids[2]}", None)]
    assert sorted(by_name(emulator)) == ["human", "refund"]
    run, result = run_sync(pruning, emulator)
    assert writes(emulator) == []


def test_a_dry_run_sends_no_write(emulator, tmp_path):
    folder = write_cases(tmp_path / "cases", CASES)
    run, _ = run_sync(sync_task_dag("e2e_sync_dry_first", folder, prune=True), emulator)
    ids = xcom(run, "sync", "test_case_definition_ids")
    write_cases(folder, {"refund": ("A new prompt.", CASES["refund"][1]), "new case": ("New.", ["m"])})

    run, result = run_sync(sync_task_dag("e2e_sync_dry", folder, prune=True, dry_run=True), emulator)
    assert run.state == "success"
    assert result == {
        "created": ["new case"],
        "updated": ["refund"],
        "deleted": ["hours", "human"],
        "unchanged": [],
        "test_case_definition_ids": [ids[0]],  # what exists today
    }
    assert {r["method"] for r in emulator.requests()} == {"GET"}
    assert sorted(by_name(emulator)) == sorted(CASES)


@pytest.mark.parametrize(
    "fault",
    [
        {"action": "lost_reply"},  # applied, then the connection is dropped
        {"action": "lost_reply", "status_code": 504},  # applied, then a gateway timeout
        {"action": "late_apply", "seconds": 0.4},  # dropped at once, applied 0.4 s later
        {"action": "late_apply", "seconds": 0.4, "status_code": 503},
    ],
    ids=["lost-reply-dropped", "lost-reply-504", "late-apply-dropped", "late-apply-503"],
)
def test_a_lost_create_reply_ends_with_exactly_one_definition(emulator, tmp_path, fault):
    folder = write_cases(tmp_path / "cases", CASES)
    emulator.add_fault("POST", CREATE, **fault)  # hits the first create: "refund"
    run, result = run_sync(sync_task_dag(f"e2e_sync_lost_{fault['action']}", folder), emulator)

    assert run.state == "success"
    assert task_instance(run, "sync").try_number == 1
    assert result["created"] == list(CASES)
    stored = by_name(emulator)
    assert {name: len(found) for name, found in stored.items()} == {name: 1 for name in CASES}
    assert result["test_case_definition_ids"][0] == stored["refund"][0]["test_case_definition_id"]
    assert [(m, p) for m, p, _ in writes(emulator)] == [("POST", CREATE)] * 3  # never sent twice
    assert [r["fault"] for r in emulator.requests("POST")] == [fault["action"], None, None]


def test_a_retry_finds_the_create_an_earlier_try_left_unknown(emulator, tmp_path, monkeypatch):
    """Try 1 sends a create whose reply is lost, then cannot read the listing and fails; the intent in
    the task_state_store makes try 2 look for the definition instead of sending it again."""
    monkeypatch.setenv(
        "AIRFLOW_CONN_RETELL_DEFAULT",
        emulator.connection_json(max_retries=3, max_retry_wait=0.05, create_settle_seconds=10),
    )
    folder = write_cases(tmp_path / "cases", {"refund": CASES["refund"]})
    listing = "/v2/list-test-case-definitions"
    emulator.add_fault("GET", listing, "delay", times=2, seconds=0)  # the plan's and the create's listings
    emulator.add_fault("POST", CREATE, "late_apply", seconds=1.5, status_code=504)
    emulator.add_fault("GET", listing, "malformed")  # the first look for it: try 1 fails
    dag = sync_task_dag("e2e_sync_retry", folder, retries=1, retry_delay=timedelta(0))
    run, result = run_sync(dag, emulator)

    assert run.state == "success"
    assert task_instance(run, "sync").try_number == 2
    stored = by_name(emulator)
    assert len(stored["refund"]) == 1
    assert result["test_case_definition_ids"] == [stored["refund"][0]["test_case_definition_id"]]
    assert emulator.count("POST", CREATE) == 1
    assert _stored_intent(run) is None


def test_a_sync_that_failed_midway_converges_on_the_next_run(emulator, tmp_path):
    folder = write_cases(tmp_path / "cases", CASES)
    dag = sync_task_dag("e2e_sync_midway", folder)
    emulator.add_fault("POST", CREATE, "delay", seconds=0)  # the first create goes through
    emulator.add_fault("POST", CREATE, "status", status_code=422, message="Retell refused it")
    run, _ = run_sync(dag, emulator)
    assert run.state == "failed"
    assert task_instance(run, "sync").try_number == 1  # a permanent error spends no retry
    assert sorted(by_name(emulator)) == ["refund"]

    run, result = run_sync(dag, emulator)
    assert run.state == "success"
    assert (result["created"], result["unchanged"]) == (["human", "hours"], ["refund"])
    assert {name: len(found) for name, found in by_name(emulator).items()} == {name: 1 for name in CASES}
    run, result = run_sync(dag, emulator)
    assert writes(emulator) == []


def test_two_definitions_with_one_name_on_the_engine_fail_the_sync_by_name(emulator, tmp_path):
    twins = [
        {"test_case_definition_id": f"tcd_twin_{i}", "name": "refund", "response_engine": ENGINE}
        for i in (1, 2)
    ]
    emulator.seed({**SEED, "test_case_definitions": twins})
    folder = write_cases(tmp_path / "cases", CASES)
    run, _ = run_sync(sync_task_dag("e2e_sync_twins", folder), emulator)
    assert run.state == "failed"
    assert task_instance(run, "sync").try_number == 1
    assert writes(emulator) == []


def test_the_files_are_checked_before_any_request(emulator, tmp_path):
    folder = tmp_path / "cases"
    folder.mkdir()
    (folder / "bad.yaml").write_text(
        textwrap.dedent("""
        - name: refund
          user_prompt: hi
          metrics: []
        """),
        encoding="utf-8",
    )
    run, _ = run_sync(sync_task_dag("e2e_sync_bad_files", folder), emulator)
    assert run.state == "failed"
    assert emulator.requests() == []


def _stored_intent(run: Any) -> Any:
    from airflow.models.task_state_store import TaskStateStoreModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    from airflow_provider_retell.definition_ops import INTENT_KEY

    with create_session() as session:
        return session.scalars(
            select(TaskStateStoreModel.value).where(
                TaskStateStoreModel.dag_id == run.dag_id,
                TaskStateStoreModel.run_id == run.run_id,
                TaskStateStoreModel.key == INTENT_KEY,
            )
        ).one_or_none()
