"""execute_complete fails closed: only a well-formed event for the right, finished batch succeeds."""

from __future__ import annotations

from typing import Any

import pytest
import respx
from _retell_helpers import BASE_URL, LLM_ENGINE, batch_json, page, run_json
from airflow.sdk.exceptions import AirflowFailException

from airflow_provider_retell.exceptions import (
    RetellAPIError,
    RetellError,
    RetellPermanentError,
    RetellQualityGateError,
    RetellTimeoutError,
)
from airflow_provider_retell.operators.batch_test import RetellBatchTestOperator
from airflow_provider_retell.sensors.batch_test import RetellBatchTestSensor
from airflow_provider_retell.waiting import STATE_KEY
from tests.fakes import FakeStore


@pytest.fixture
def api():
    with respx.mock(base_url=BASE_URL, assert_all_called=False) as mock:
        yield mock


@pytest.fixture(params=["sensor", "operator"])
def task(request: pytest.FixtureRequest, retell_unit_conn: str):
    if request.param == "sensor":
        return RetellBatchTestSensor(task_id="wait", batch_test_id="tcbj_1", retell_conn_id=retell_unit_conn)
    return RetellBatchTestOperator(
        task_id="run",
        agent_id="agent_support",
        wait_for_completion=True,
        retell_conn_id=retell_unit_conn,
    )


@pytest.fixture
def stored_context(context: dict[str, Any]) -> dict[str, Any]:
    context["task_state_store"] = FakeStore({STATE_KEY: {"batch_test_id": "tcbj_1", "deadline": 1e12}})
    return context


BAD_EVENTS = [
    None,
    "complete",
    ["complete", "tcbj_1"],
    {},
    {"status": "complete"},
    {"status": "complete", "batch_test_id": None, "batch_test": batch_json()},
    {"status": "complete", "batch_test_id": 7, "batch_test": batch_json()},
    {"status": "finished", "batch_test_id": "tcbj_1", "batch_test": batch_json()},
    {"status": None, "batch_test_id": "tcbj_1"},
    {"batch_test_id": "tcbj_1", "batch_test": batch_json()},
    {"status": "complete", "batch_test_id": "tcbj_1"},
    {"status": "complete", "batch_test_id": "tcbj_1", "batch_test": None},
    {"status": "complete", "batch_test_id": "tcbj_1", "batch_test": "complete"},
    {"status": "complete", "batch_test_id": "tcbj_1", "batch_test": {"status": "complete"}},
    {"status": "complete", "batch_test_id": "tcbj_1", "batch_test": batch_json(status="in_progress")},
    {"status": "complete", "batch_test_id": "tcbj_1", "batch_test": batch_json(status="paused")},
    {"status": "complete", "batch_test_id": "tcbj_1", "batch_test": batch_json("tcbj_other")},
    {
        "status": "complete",
        "batch_test_id": "tcbj_1",
        "batch_test_ids": ["tcbj_2", "tcbj_1"],
        "batch_tests": [],
    },
    {
        "status": "complete",
        "batch_test_id": "tcbj_1",
        "batch_test_ids": ["tcbj_1", "tcbj_2"],
        "batch_tests": [batch_json()],
    },
    {"status": "complete", "batch_test_id": "tcbj_1", "batch_tests": [batch_json(), batch_json("tcbj_9")]},
    {"status": "complete", "batch_test_id": "tcbj_1", "batch_test": batch_json(), "surprise": 1},
    {"status": "complete", "batch_test_id": "../x", "batch_test": batch_json("../x")},
    {"status": "timeout", "batch_test_id": "tcbj_1", "message": "x" * 5000},
]


@pytest.mark.parametrize("event", BAD_EVENTS, ids=repr)
def test_unexpected_events_fail_closed(
    task: Any, stored_context: dict[str, Any], api: respx.MockRouter, event: Any
) -> None:
    with pytest.raises(RetellError):
        task.execute_complete(stored_context, event)
    assert stored_context["ti"].pushed == []
    assert api.calls.call_count == 0


def test_timeout_event(task: Any, stored_context: dict[str, Any]) -> None:
    event = {"status": "timeout", "batch_test_id": "tcbj_1", "message": "Timed out waiting for tcbj_1."}
    with pytest.raises(RetellTimeoutError, match="tcbj_1"):
        task.execute_complete(stored_context, event)
    assert STATE_KEY not in stored_context["task_state_store"].data  # a re-run starts a new wait


def test_timeout_event_without_message_still_names_the_batch(
    task: Any, stored_context: dict[str, Any]
) -> None:
    with pytest.raises(RetellTimeoutError) as info:
        task.execute_complete(stored_context, {"status": "timeout", "batch_test_id": "tcbj_1"})
    assert "tcbj_1" in str(info.value)
    assert "keeps running in Retell" in str(info.value)


def test_error_event(task: Any, stored_context: dict[str, Any]) -> None:
    event = {"status": "error", "batch_test_id": "tcbj_1", "message": "HTTP 503 after retries"}
    with pytest.raises(RetellAPIError) as info:
        task.execute_complete(stored_context, event)
    assert "tcbj_1" in str(info.value)
    assert "HTTP 503 after retries" in str(info.value)
    assert not isinstance(info.value, AirflowFailException)  # a task retry may help, and reattaches
    assert stored_context["ti"].pushed == []


@pytest.mark.parametrize("status_code", [401, 403, 404])
def test_permanent_error_event_fails_without_retries(
    task: Any, stored_context: dict[str, Any], status_code: int
) -> None:
    event = {"status": "error", "batch_test_id": "tcbj_1", "message": "refused", "status_code": status_code}
    with pytest.raises(RetellPermanentError) as info:
        task.execute_complete(stored_context, event)
    assert isinstance(info.value, AirflowFailException)
    assert info.value.status_code == status_code
    assert "tcbj_1" in str(info.value)


def test_complete_event_passing_gate(
    task: Any, stored_context: dict[str, Any], api: respx.MockRouter
) -> None:
    runs = [run_json(f"j{i}", "pass") for i in range(8)]
    listing = api.get("/v2/list-test-runs/tcbj_1").respond(200, json=page(runs))
    event = {"status": "complete", "batch_test_id": "tcbj_1", "batch_test": batch_json(passed=8)}
    result = task.execute_complete(stored_context, event)
    assert result["batch_test_id"] == "tcbj_1"
    assert result["gate_passed"] is True
    assert result["pass_count"] == 8
    assert result["response_engine"] == LLM_ENGINE
    assert listing.call_count == 1  # the runs are read even when the counts say all passed
    # the verdict is kept, so a retry after it (a lost push) returns it instead of billing anew
    assert stored_context["task_state_store"].data[STATE_KEY]["verdict"] == result


def test_complete_event_whose_runs_contradict_all_pass_counts_fails_the_gate(
    task: Any, stored_context: dict[str, Any], api: respx.MockRouter
) -> None:
    runs = [run_json("j1", "pass"), run_json("j2", "fail", explanation="no refund")]
    api.get("/v2/list-test-runs/tcbj_1").respond(200, json=page(runs))
    event = {"status": "complete", "batch_test_id": "tcbj_1", "batch_test": batch_json(passed=2)}
    with pytest.raises(RetellQualityGateError, match="disagree with its counts"):
        task.execute_complete(stored_context, event)


def test_complete_event_failing_gate_pushes_result_first(
    task: Any, stored_context: dict[str, Any], api: respx.MockRouter
) -> None:
    runs = [run_json("j1", "pass"), run_json("j2", "fail", name="Refund", explanation="no refund offered")]
    route = api.get("/v2/list-test-runs/tcbj_1").respond(200, json=page(runs))
    event = {"status": "complete", "batch_test_id": "tcbj_1", "batch_test": batch_json(passed=1, failed=1)}
    with pytest.raises(RetellQualityGateError) as info:
        task.execute_complete(stored_context, event)
    assert "Refund" in str(info.value)
    assert "no refund offered" in str(info.value)
    assert route.call_count == 1
    [(key, value)] = stored_context["ti"].pushed
    assert key == "return_value"
    assert value["gate_passed"] is False
    assert value["fail_count"] == 1
    assert [c["test_case_job_id"] for c in value["failed_test_cases"]] == ["j2"]
    assert stored_context["task_state_store"].data[STATE_KEY]["verdict"] == value


def test_complete_event_with_a_bad_rendered_gate_param_fails(
    retell_unit_conn: str, stored_context: dict[str, Any]
) -> None:
    sensor = RetellBatchTestSensor(
        task_id="wait",
        batch_test_id="tcbj_1",
        min_pass_rate="{{ params.rate }}",
        retell_conn_id=retell_unit_conn,
    )
    sensor.min_pass_rate = "0.9"  # what a template rendered to, without render_template_as_native_obj
    event = {"status": "complete", "batch_test_id": "tcbj_1", "batch_test": batch_json()}
    with pytest.raises(RetellError, match="min_pass_rate"):
        sensor.execute_complete(stored_context, event)


def test_permanent_error_listing_runs_is_reported(
    task: Any, stored_context: dict[str, Any], api: respx.MockRouter
) -> None:
    api.get("/v2/list-test-runs/tcbj_1").respond(401, json={"message": "bad key"})
    event = {"status": "complete", "batch_test_id": "tcbj_1", "batch_test": batch_json(passed=0, failed=1)}
    with pytest.raises(RetellPermanentError):
        task.execute_complete(stored_context, event)
    assert stored_context["ti"].pushed == []


@pytest.mark.parametrize(("status_code", "forgotten"), [(404, True), (401, False)])
def test_permanent_error_event_names_the_batch_and_forgets_only_an_unknown_one(
    task: Any, stored_context: dict[str, Any], status_code: int, forgotten: bool
) -> None:
    event = {"status": "error", "batch_test_id": "tcbj_1", "message": "refused", "status_code": status_code}
    with pytest.raises(RetellPermanentError, match="batch_test_id='tcbj_1'"):
        task.execute_complete(stored_context, event)
    # a batch Retell does not know is dropped, so clearing the task starts a new one; after a bad key
    # the record stays, so fixing the key and clearing the task reattaches
    assert (STATE_KEY not in stored_context["task_state_store"].data) is forgotten


def test_polling_a_batch_retell_does_not_know_forgets_it(
    task: Any, stored_context: dict[str, Any], api: respx.MockRouter
) -> None:
    route = api.get("/get-batch-test/tcbj_1").respond(404, json={"status": "error", "message": "Not Found"})
    waiter = task._waiter(stored_context)
    with pytest.raises(RetellPermanentError, match="batch_test_id='tcbj_1'"):
        waiter.drive(waiter.load(), "block")
    assert route.call_count == 1
    assert STATE_KEY not in stored_context["task_state_store"].data


def test_deferral_timed_out_by_airflow_fails_like_our_timeout(
    task: Any, stored_context: dict[str, Any]
) -> None:
    from airflow.sdk.bases.operator import TRIGGER_FAIL_REPR, TriggerFailureReason

    # what the task runner calls when the scheduler timed the deferral out (no triggerer answered)
    kwargs = {"error": TriggerFailureReason.TRIGGER_TIMEOUT}
    with pytest.raises(RetellTimeoutError) as info:
        task.resume_execution(TRIGGER_FAIL_REPR, kwargs, stored_context)
    assert "tcbj_1" in str(info.value)
    assert "keeps running in Retell" in str(info.value)
    assert STATE_KEY not in stored_context["task_state_store"].data
