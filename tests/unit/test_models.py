"""models.py: engine input validation and tolerant, typed parsing of Retell replies."""

from __future__ import annotations

from typing import Any

import pytest
from _retell_helpers import batch_json, run_json

from airflow_provider_retell.exceptions import RetellAPIError, RetellInputError
from airflow_provider_retell.models import (
    Agent,
    BatchTest,
    ConversationFlowEngine,
    CustomLlmEngine,
    RetellLlmEngine,
    engine_query,
    parse_engine_input,
    parse_response,
)
from airflow_provider_retell.models import (
    TestRun as RunModel,
)


@pytest.mark.parametrize(
    "value",
    [
        None,
        "retell-llm",
        ["retell-llm", "llm_1"],
        42,
        {},
        {"llm_id": "llm_1"},
        {"type": "retell_llm", "llm_id": "llm_1"},
        {"type": "RETELL-LLM", "llm_id": "llm_1"},
        {"type": None, "llm_id": "llm_1"},
        {"type": "retell-llm"},
        {"type": "retell-llm", "llm_id": ""},
        {"type": "retell-llm", "llm_id": 123},
        {"type": "retell-llm", "conversation_flow_id": "cf_1"},
        {"type": "conversation-flow"},
        {"type": "conversation-flow", "conversation_flow_id": ""},
        {"type": "conversation-flow", "llm_id": "llm_1"},
        {"type": "retell-llm", "llm_id": "llm_1", "version": -1},
        {"type": "retell-llm", "llm_id": "llm_1", "version": "2"},
        {"type": "retell-llm", "llm_id": "llm_1", "version": 2.5},
        {"type": "retell-llm", "llm_id": "llm_1", "version": True},
        {"type": "custom-llm", "llm_websocket_url": "wss://example.invalid/ws"},
        {"type": "custom-llm"},
    ],
    ids=repr,
)
def test_malformed_engine_input_names_the_argument(value: Any) -> None:
    with pytest.raises(RetellInputError, match="response_engine") as info:
        parse_engine_input(value)
    assert isinstance(info.value, ValueError)


def test_engine_input_error_uses_the_given_argument_name() -> None:
    with pytest.raises(RetellInputError, match="my_engine"):
        parse_engine_input({"type": "retell-llm"}, argument="my_engine")


def test_custom_llm_input_is_refused_with_a_clear_reason() -> None:
    with pytest.raises(RetellInputError, match=r"custom-llm.*cannot be batch tested"):
        parse_engine_input({"type": "custom-llm", "llm_websocket_url": "wss://x"})


def test_custom_llm_model_instance_is_refused() -> None:
    with pytest.raises(RetellInputError, match="response_engine"):
        parse_engine_input(CustomLlmEngine(llm_websocket_url="wss://x"))


@pytest.mark.parametrize(
    ("value", "cls", "engine_id_field", "version"),
    [
        ({"type": "retell-llm", "llm_id": "llm_1"}, RetellLlmEngine, "llm_id", None),
        ({"type": "retell-llm", "llm_id": "llm_1", "version": 0}, RetellLlmEngine, "llm_id", 0),
        (
            {"type": "conversation-flow", "conversation_flow_id": "cf_1", "version": 7},
            ConversationFlowEngine,
            "conversation_flow_id",
            7,
        ),
    ],
)
def test_valid_engine_input(value: dict, cls: type, engine_id_field: str, version: int | None) -> None:
    engine = parse_engine_input(value)
    assert type(engine) is cls
    assert getattr(engine, engine_id_field) == value[engine_id_field]
    assert engine.version == version
    assert parse_engine_input(engine) is engine


def test_engine_query_selects_one_engine() -> None:
    llm = parse_engine_input({"type": "retell-llm", "llm_id": "llm_1", "version": 3})
    assert engine_query(llm) == {"type": "retell-llm", "llm_id": "llm_1", "version": 3}
    assert engine_query(llm, with_version=False) == {"type": "retell-llm", "llm_id": "llm_1"}
    flow = parse_engine_input({"type": "conversation-flow", "conversation_flow_id": "cf_1"})
    assert engine_query(flow) == {"type": "conversation-flow", "conversation_flow_id": "cf_1"}


def test_custom_llm_is_parsed_in_responses() -> None:
    agent = parse_response(
        Agent,
        {"agent_id": "a1", "response_engine": {"type": "custom-llm", "llm_websocket_url": "wss://x"}},
        method="GET",
        path="/get-agent/a1",
    )
    assert isinstance(agent.response_engine, CustomLlmEngine)
    batch = BatchTest.model_validate(
        batch_json(engine={"type": "custom-llm", "llm_websocket_url": "wss://x"})
    )
    assert isinstance(batch.response_engine, CustomLlmEngine)


def test_batch_test_tolerates_unknown_status_and_extra_fields() -> None:
    payload = batch_json(status="queued_for_review", passed=1, failed=1, total=5, brand_new_field={"a": 1})
    payload["response_engine"]["new_engine_field"] = "x"
    batch = parse_response(BatchTest, payload, method="GET", path="/get-batch-test/tcbj_1")
    assert batch.status == "queued_for_review"
    assert not batch.is_complete
    assert not batch.has_known_status
    assert batch.progress() == "2/5 done: 1 failed, 0 errored"
    summary = batch.summary()
    assert "brand_new_field" not in summary
    assert summary["status"] == "queued_for_review"
    assert summary["test_case_batch_job_id"] == "tcbj_1"


def test_batch_test_known_statuses() -> None:
    assert BatchTest.model_validate(batch_json(status="complete")).is_complete
    in_progress = BatchTest.model_validate(batch_json(status="in_progress"))
    assert not in_progress.is_complete
    assert in_progress.has_known_status


def test_progress_says_failed_and_errored_apart() -> None:
    batch = BatchTest.model_validate(
        batch_json(status="in_progress", passed=9, failed=2, errored=1, total=40)
    )
    assert batch.progress() == "12/40 done: 2 failed, 1 errored"
    assert batch.done_count == 12


@pytest.mark.parametrize(
    "field",
    [
        "test_case_batch_job_id",
        "status",
        "response_engine",
        "pass_count",
        "fail_count",
        "error_count",
        "total_count",
        "creation_timestamp",
    ],
)
def test_missing_required_batch_field_is_an_api_error_naming_it(field: str) -> None:
    payload = batch_json()
    del payload[field]
    with pytest.raises(RetellAPIError, match=field) as info:
        parse_response(BatchTest, payload, method="GET", path="/get-batch-test/tcbj_1")
    assert info.value.method == "GET"
    assert info.value.path == "/get-batch-test/tcbj_1"
    assert "BatchTest" in str(info.value)


def test_mistyped_field_and_non_object_body_are_api_errors() -> None:
    with pytest.raises(RetellAPIError, match="pass_count"):
        parse_response(BatchTest, batch_json(pass_count="many"), method="GET", path="/p")
    with pytest.raises(RetellAPIError, match="BatchTest"):
        parse_response(BatchTest, ["not", "an", "object"], method="GET", path="/p")
    with pytest.raises(RetellAPIError, match="BatchTest"):
        parse_response(BatchTest, None, method="GET", path="/p")


def test_test_run_drops_transcript_snapshot() -> None:
    transcript = [{"role": "user", "content": "my card number is 4111 1111 1111 1111"}]
    run = RunModel.model_validate(run_json("job_1", "fail", name="Refund", transcript_snapshot=transcript))
    assert "transcript_snapshot" not in run.model_dump()
    assert "transcript_snapshot" not in (run.model_extra or {})
    assert "4111" not in run.model_dump_json()
    assert not hasattr(run, "transcript_snapshot")
    assert run.name == "Refund"
    assert run.is_failed


def test_test_run_name_falls_back_to_definition_id() -> None:
    run = RunModel.model_validate(run_json("job_1", "pass", definition_id="def_9"))
    assert run.name == "def_9"
    assert not run.is_failed
    assert RunModel.model_validate(run_json("job_2", "error")).is_failed


@pytest.mark.parametrize(
    ("passed", "failed", "errored", "total"),
    [(0, 0, 0, 5), (1, 0, 0, 5), (7, 0, 0, 5), (-1, 3, 0, 2), (2, -1, 0, 1)],
)
def test_counts_that_do_not_add_up_are_named(passed: int, failed: int, errored: int, total: int) -> None:
    batch = BatchTest.model_validate(batch_json(passed=passed, failed=failed, errored=errored, total=total))
    (problem,) = batch.count_problems()
    assert f"{passed} passed + {failed} failed + {errored} errored != {total} total" in problem


def test_counts_that_add_up_have_no_problem() -> None:
    assert BatchTest.model_validate(batch_json(passed=3, failed=1, errored=1)).count_problems() == []


@pytest.mark.parametrize(
    "batch_id", ["..", ".", "x?version=7", "x#y", "a b", "a\nb", "a/b", "%2e%2e", "x" * 129, ""]
)
def test_a_reply_with_an_unsafe_batch_id_is_refused(batch_id: str) -> None:
    with pytest.raises(RetellAPIError, match="test_case_batch_job_id"):
        parse_response(BatchTest, batch_json(batch_id), method="GET", path="/p")


def test_a_huge_status_is_a_broken_reply() -> None:
    with pytest.raises(RetellAPIError, match="status"):
        parse_response(BatchTest, batch_json(status="x" * 10_000), method="GET", path="/p")


def test_summary_carries_only_known_fields_of_the_engine() -> None:
    payload = batch_json(nested={"deep": ["x"] * 1000})
    payload["response_engine"]["blob"] = "y" * 100_000
    summary = parse_response(BatchTest, payload, method="GET", path="/p").summary()
    assert "nested" not in summary
    assert set(summary["response_engine"]) <= {"type", "llm_id", "conversation_flow_id", "version"}
