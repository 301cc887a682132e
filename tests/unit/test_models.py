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
    assert batch.progress() == "2/5 done, 1 failed"
    summary = batch.summary()
    assert "brand_new_field" not in summary
    assert summary["status"] == "queued_for_review"
    assert summary["test_case_batch_job_id"] == "tcbj_1"


def test_batch_test_known_statuses() -> None:
    assert BatchTest.model_validate(batch_json(status="complete")).is_complete
    in_progress = BatchTest.model_validate(batch_json(status="in_progress"))
    assert not in_progress.is_complete
    assert in_progress.has_known_status


def test_progress_counts_errors_as_failed() -> None:
    batch = BatchTest.model_validate(
        batch_json(status="in_progress", passed=9, failed=2, errored=1, total=40)
    )
    assert batch.progress() == "12/40 done, 3 failed"
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
        parse_response(BatchTest, batch_json(pass_count=-1), method="GET", path="/p")
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
