"""Malformed input fails before any HTTP call, naming the argument; input only Retell can judge fails
on the first response, naming the argument, without a retry or a create.

The emulator's request log is the witness: it must stay empty for every malformed input.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Callable
from typing import Any

import pytest

from airflow_provider_retell.exceptions import RetellError, RetellInputError, RetellPermanentError
from airflow_provider_retell.hooks.retell import RetellHook
from airflow_provider_retell.operators.batch_test import RetellBatchTestOperator
from airflow_provider_retell.sensors.batch_test import RetellBatchTestSensor
from tests.fakes import fake_context

BOOKING = {"type": "retell-llm", "llm_id": "llm_booking"}
IDS = ["tcd_booking_01", "tcd_booking_02"]


def hook_call(method: str, *args: Any, **kwargs: Any) -> Callable[[], Any]:
    def call() -> Any:
        hook = RetellHook()
        try:
            return getattr(hook, method)(*args, **kwargs)
        finally:
            hook.close()

    return call


def operator(**kwargs: Any) -> Callable[[], Any]:
    """Construct (some errors are raised here) and execute with a minimal fake context."""

    def call() -> Any:
        kwargs.setdefault("poll_interval", 0.1)
        if "agent_id" not in kwargs:
            kwargs.setdefault("response_engine", BOOKING)
        return RetellBatchTestOperator(task_id="start", **kwargs).execute(fake_context())

    return call


def waiting_operator(**kwargs: Any) -> Callable[[], Any]:
    return operator(wait_for_completion=True, test_case_definition_ids=IDS, **kwargs)


def sensor(**kwargs: Any) -> Callable[[], Any]:
    def call() -> Any:
        kwargs.setdefault("batch_test_id", "tcbj_anything")
        kwargs.setdefault("poke_interval", 0.1)
        return RetellBatchTestSensor(task_id="wait", **kwargs).execute(fake_context())

    return call


def with_connection(call: Callable[[], Any], **conn: Any) -> Callable[[], Any]:
    """Run ``call`` with ``retell_default`` replaced by this connection (fields over the emulator's)."""

    def run(emulator: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
        fields = json.loads(emulator.connection_json())
        fields.update(conn)
        monkeypatch.setenv("AIRFLOW_CONN_RETELL_DEFAULT", json.dumps(fields))
        return call()

    run.needs_connection = True  # type: ignore[attr-defined]
    return run


# (id, call, argument the message must name)
MALFORMED: list[tuple[str, Any, str]] = [
    # -- engine shapes (hook)
    ("engine-not-a-dict", hook_call("create_batch_test", "llm_booking", IDS), "response_engine"),
    (
        "engine-missing-type",
        hook_call("create_batch_test", {"llm_id": "llm_booking"}, IDS),
        "response_engine",
    ),
    ("engine-unknown-type", hook_call("list_batch_tests", {"type": "gpt", "llm_id": "x"}), "response_engine"),
    (
        "engine-custom-llm",
        hook_call("create_batch_test", {"type": "custom-llm", "llm_websocket_url": "wss://x"}, IDS),
        "response_engine",
    ),
    (
        "engine-retell-llm-without-llm_id",
        hook_call("create_batch_test", {"type": "retell-llm"}, IDS),
        "llm_id",
    ),
    (
        "engine-empty-llm_id",
        hook_call("list_test_case_definitions", {"type": "retell-llm", "llm_id": ""}),
        "llm_id",
    ),
    (
        "engine-flow-without-id",
        hook_call("create_batch_test", {"type": "conversation-flow"}, IDS),
        "conversation_flow_id",
    ),
    ("engine-negative-version", hook_call("create_batch_test", {**BOOKING, "version": -1}, IDS), "version"),
    ("engine-bool-version", hook_call("create_batch_test", {**BOOKING, "version": True}, IDS), "version"),
    ("engine-str-version", hook_call("create_batch_test", {**BOOKING, "version": "2"}, IDS), "version"),
    # -- ids (hook)
    ("ids-a-str", hook_call("create_batch_test", BOOKING, "tcd_booking_01"), "test_case_definition_ids"),
    ("ids-empty", hook_call("create_batch_test", BOOKING, []), "test_case_definition_ids"),
    (
        "ids-201",
        hook_call("create_batch_test", BOOKING, [f"tcd_{i}" for i in range(201)]),
        "test_case_definition_ids",
    ),
    ("ids-duplicates", hook_call("create_batch_test", BOOKING, ["a", "b", "a"]), "test_case_definition_ids"),
    ("ids-non-string", hook_call("create_batch_test", BOOKING, ["a", 7]), "test_case_definition_ids"),
    ("ids-empty-string", hook_call("create_batch_test", BOOKING, ["a", " "]), "test_case_definition_ids"),
    ("ids-none", hook_call("create_batch_test", BOOKING, None), "test_case_definition_ids"),
    # -- path ids (hook)
    ("get-batch-empty-id", hook_call("get_batch_test", ""), "batch_test_id"),
    ("get-batch-none-id", hook_call("get_batch_test", None), "batch_test_id"),
    ("runs-id-with-slash", hook_call("list_test_runs", "tcbj_1/../x"), "batch_test_id"),
    ("agent-empty-id", hook_call("get_agent_response_engine", ""), "agent_id"),
    ("agent-negative-version", hook_call("get_agent_response_engine", "agent_booking", -1), "agent_version"),
    ("hook-empty-conn-id", lambda: RetellHook(retell_conn_id=""), "retell_conn_id"),
    # -- connection
    ("conn-no-key", with_connection(hook_call("get_batch_test", "tcbj_1"), password=""), "password"),
    (
        "conn-http-non-loopback",
        with_connection(hook_call("get_batch_test", "tcbj_1"), host="http://retell.example.com"),
        "allow_insecure_http",
    ),
    ("conn-not-http", with_connection(hook_call("get_batch_test", "tcbj_1"), host="ftp://127.0.0.1"), "host"),
    (
        "conn-extra-timeout-str",
        with_connection(hook_call("get_batch_test", "tcbj_1"), extra={"timeout": "soon"}),
        "timeout",
    ),
    (
        "conn-extra-negative-retries",
        with_connection(hook_call("get_batch_test", "tcbj_1"), extra={"max_retries": -1}),
        "max_retries",
    ),
    (
        "conn-extra-fractional-retries",
        with_connection(hook_call("get_batch_test", "tcbj_1"), extra={"max_retries": 1.5}),
        "max_retries",
    ),
    (
        "conn-extra-bool-wait",
        with_connection(hook_call("get_batch_test", "tcbj_1"), extra={"max_retry_wait": True}),
        "max_retry_wait",
    ),
    (
        "conn-extra-nan-connect-timeout",
        with_connection(hook_call("get_batch_test", "tcbj_1"), extra={"connect_timeout": "nan"}),
        "connect_timeout",
    ),
    ("op-conn-no-key", with_connection(operator(agent_id="agent_booking"), password=None), "password"),
    (
        "conn-key-with-newline",
        with_connection(hook_call("get_batch_test", "tcbj_1"), password="key\nX-Injected: 1"),
        "API key",
    ),
    (
        "conn-extra-zero-timeout",
        with_connection(hook_call("get_batch_test", "tcbj_1"), extra={"timeout": 0}),
        "timeout",
    ),
    (
        "conn-extra-inf-timeout",
        with_connection(hook_call("get_batch_test", "tcbj_1"), extra={"timeout": "inf"}),
        "timeout",
    ),
    (
        "conn-proxy-with-http",
        with_connection(hook_call("get_batch_test", "tcbj_1"), extra={"proxy": "http://proxy:3128"}),
        "proxy",
    ),
    # -- operator
    ("op-both-engine-and-agent", operator(response_engine=BOOKING, agent_id="agent_booking"), "agent_id"),
    ("op-neither-engine-nor-agent", operator(response_engine=None), "response_engine"),
    ("op-engine-not-a-dict", operator(response_engine="llm_booking"), "response_engine"),
    ("op-custom-llm", operator(response_engine={"type": "custom-llm"}), "response_engine"),
    ("op-agent-version-negative", operator(agent_id="agent_booking", agent_version=-1), "agent_version"),
    ("op-agent-version-str", operator(agent_id="agent_booking", agent_version="1"), "agent_version"),
    ("op-agent-version-with-engine", operator(agent_version=1), "agent_version"),
    ("op-agent-id-empty", operator(agent_id=""), "agent_id"),
    ("op-agent-id-not-str", operator(agent_id=["agent_booking"]), "agent_id"),
    ("op-ids-a-str", operator(test_case_definition_ids="tcd_booking_01"), "test_case_definition_ids"),
    ("op-ids-empty", operator(test_case_definition_ids=[]), "test_case_definition_ids"),
    ("op-ids-duplicates", operator(test_case_definition_ids=IDS + IDS[:1]), "test_case_definition_ids"),
    ("op-max-failures-negative", waiting_operator(max_failures=-1), "max_failures"),
    ("op-max-errors-float", waiting_operator(max_errors=0.5), "max_errors"),
    ("op-min-pass-rate-1.5", waiting_operator(min_pass_rate=1.5), "min_pass_rate"),
    ("op-min-pass-rate-negative", waiting_operator(min_pass_rate=-0.1), "min_pass_rate"),
    ("op-min-pass-rate-str", waiting_operator(min_pass_rate="0.9"), "min_pass_rate"),
    ("op-min-pass-rate-nan", waiting_operator(min_pass_rate=math.nan), "min_pass_rate"),
    ("op-fail-on-empty-yes", waiting_operator(fail_on_empty="yes"), "fail_on_empty"),
    ("op-gate-without-wait", operator(test_case_definition_ids=IDS, min_pass_rate=0.9), "min_pass_rate"),
    ("op-poll-interval-zero", operator(poll_interval=0), "poll_interval"),
    ("op-poll-interval-nan", operator(poll_interval=math.nan), "poll_interval"),
    ("op-poll-interval-inf", operator(poll_interval=math.inf), "poll_interval"),
    ("op-timeout-negative", operator(timeout=-5), "timeout"),
    ("op-timeout-inf", operator(timeout=math.inf), "timeout"),
    ("op-timeout-1e14", operator(timeout=1e14), "timeout"),
    ("op-engine-typo-key", operator(response_engine={**BOOKING, "verison": 2}), "verison"),
    ("op-agent-id-dotdot", operator(agent_id=".."), "agent_id"),
    ("op-agent-id-query", operator(agent_id="x?version=7"), "agent_id"),
    ("op-agent-id-fragment", operator(agent_id="x#y"), "agent_id"),
    ("op-agent-id-space", operator(agent_id="agent booking"), "agent_id"),
    (
        "op-ids-control-char",
        operator(test_case_definition_ids=["tcd_booking_01\n"]),
        "test_case_definition_ids",
    ),
    ("op-rerun-without-wait", operator(rerun_failed=1), "rerun_failed"),
    ("op-rerun-negative", waiting_operator(rerun_failed=-1), "rerun_failed"),
    ("op-max-test-cases-zero", waiting_operator(max_test_cases=0), "max_test_cases"),
    ("op-empty-conn-id", operator(agent_id="agent_booking", retell_conn_id=""), "retell_conn_id"),
    # -- sensor
    ("sensor-empty-batch-id", sensor(batch_test_id=""), "batch_test_id"),
    ("sensor-none-batch-id", sensor(batch_test_id=None), "batch_test_id"),
    ("sensor-list-with-a-bad-id", sensor(batch_test_id=["tcbj_1", "tcbj 2"]), "batch_test_id"),
    ("sensor-dotdot-batch-id", sensor(batch_test_id=".."), "batch_test_id"),
    ("sensor-poke-interval-nan", sensor(poke_interval=math.nan), "poke_interval"),
    ("sensor-max-failures-negative", sensor(max_failures=-1), "max_failures"),
    ("sensor-min-pass-rate-nan", sensor(min_pass_rate=math.nan), "min_pass_rate"),
    ("sensor-fail-on-empty-str", sensor(fail_on_empty="false"), "fail_on_empty"),
    ("sensor-deferrable-bad-gate", sensor(deferrable=True, max_errors=-3), "max_errors"),
]


@pytest.mark.parametrize(("call", "argument"), [c[1:] for c in MALFORMED], ids=[c[0] for c in MALFORMED])
def test_malformed_input_fails_naming_the_argument_without_any_request(
    retell_conn, monkeypatch, call, argument
):
    run = (
        functools.partial(call, retell_conn, monkeypatch)
        if getattr(call, "needs_connection", False)
        else call
    )
    with pytest.raises(RetellInputError) as info:
        run()

    assert isinstance(info.value, ValueError)  # RetellInputError is also a ValueError
    assert argument in str(info.value)
    assert retell_conn.api_key not in str(info.value)
    assert retell_conn.requests() == []


def test_the_table_is_broad_enough():
    kinds = {case[0].split("-")[0] for case in MALFORMED}
    assert len(MALFORMED) >= 25
    assert {"engine", "ids", "conn", "op", "sensor"} <= kinds


# -- input only Retell can judge --------------------------------------------------------------------


def test_unknown_agent_id_fails_on_the_first_reply(retell_conn):
    with pytest.raises(RetellPermanentError) as info:
        operator(agent_id="agent_nope")()

    assert "agent_id" in str(info.value)
    assert "agent_nope" in str(info.value)
    assert info.value.status_code == 404
    assert retell_conn.count("GET", "/get-agent/*") == 1
    assert retell_conn.count("POST") == 0


def test_unknown_agent_version_fails_on_the_first_reply(retell_conn):
    with pytest.raises(RetellPermanentError) as info:
        operator(agent_id="agent_booking", agent_version=99)()

    assert "agent_id" in str(info.value)
    assert "v99" in str(info.value)
    assert retell_conn.count("GET", "/get-agent/*") == 1
    assert retell_conn.count("POST") == 0


def test_agent_on_a_custom_llm_fails_on_the_first_reply(retell_conn):
    with pytest.raises(RetellInputError) as info:
        operator(agent_id="agent_custom")()

    assert "agent_id" in str(info.value)
    assert "custom LLM" in str(info.value)
    assert [(r["method"], r["path"]) for r in retell_conn.requests()] == [("GET", "/get-agent/agent_custom")]


def test_unknown_definition_id_fails_on_the_first_reply(retell_conn):
    with pytest.raises(RetellInputError) as info:
        operator(test_case_definition_ids=["tcd_booking_01", "tcd_nope"])()

    assert "test_case_definition_ids" in str(info.value)
    assert "tcd_nope" in str(info.value)
    assert retell_conn.count("GET", "/v2/list-test-case-definitions") == 1
    assert retell_conn.count("POST") == 0
    assert retell_conn.count() == 1


def test_definition_of_another_engine_fails_on_the_first_reply(retell_conn):
    with pytest.raises(RetellInputError, match="test_case_definition_ids"):
        operator(test_case_definition_ids=["tcd_support_01"])()

    assert retell_conn.count() == 1
    assert retell_conn.count("POST") == 0


def test_unknown_engine_fails_on_the_first_reply(retell_conn):
    with pytest.raises(RetellError) as info:
        operator(response_engine={"type": "retell-llm", "llm_id": "llm_nope"})()

    assert "llm_nope" in str(info.value)
    assert getattr(info.value, "status_code", None) == 404
    assert retell_conn.count("GET", "/v2/list-test-case-definitions") == 1
    assert retell_conn.count("POST") == 0


@pytest.mark.parametrize("deferrable", [False, True], ids=["poke", "deferrable"])
def test_unknown_batch_id_on_the_sensor_fails_on_the_first_reply(retell_conn, deferrable):
    with pytest.raises(RetellPermanentError) as info:
        sensor(batch_test_id="tcbj_nope", deferrable=deferrable)()

    assert "batch_test_id" in str(info.value)
    assert "tcbj_nope" in str(info.value)
    assert info.value.status_code == 404
    assert retell_conn.count("GET", "/get-batch-test/tcbj_nope") == 1
    assert retell_conn.count() == 1
