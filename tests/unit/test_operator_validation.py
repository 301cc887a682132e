"""Operator and sensor: arguments are checked at construction and again after rendering, before any HTTP."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import httpx
import pytest
import respx
from _retell_helpers import API_KEY, BASE_URL, FLOW_ENGINE, LLM_ENGINE, batch_json, page

from airflow_provider_retell.exceptions import RetellInputError, RetellPermanentError
from airflow_provider_retell.operators.batch_test import RetellBatchTestOperator
from airflow_provider_retell.sensors.batch_test import RetellBatchTestSensor
from airflow_provider_retell.waiting import STATE_KEY
from tests.fakes import FakeStore


@pytest.fixture
def api():
    """respx with no routes: any request fails the test, and ``api.calls`` must stay empty."""
    with respx.mock(base_url=BASE_URL, assert_all_called=False) as mock:
        yield mock


def operator(conn_id: str = "retell_unit", **kwargs: Any) -> RetellBatchTestOperator:
    kwargs.setdefault("task_id", "start")
    if "response_engine" not in kwargs and "agent_id" not in kwargs:
        kwargs["agent_id"] = "agent_support"
    return RetellBatchTestOperator(retell_conn_id=conn_id, **kwargs)


# -- construction ---------------------------------------------------------------------------------


def test_exactly_one_of_engine_and_agent() -> None:
    for kwargs in ({}, {"response_engine": LLM_ENGINE, "agent_id": "agent_support"}):
        with pytest.raises(RetellInputError) as info:
            RetellBatchTestOperator(task_id="start", **kwargs)
        assert "response_engine" in str(info.value)
        assert "agent_id" in str(info.value)


@pytest.mark.parametrize(
    "gate",
    [{"max_failures": 2}, {"max_errors": None}, {"min_pass_rate": 0.9}, {"fail_on_empty": False}],
)
def test_gate_params_on_a_non_waiting_operator_are_refused(gate: dict[str, Any]) -> None:
    with pytest.raises(RetellInputError) as info:
        operator(**gate)
    assert next(iter(gate)) in str(info.value)
    assert "RetellBatchTestSensor" in str(info.value)
    assert isinstance(info.value, ValueError)


def test_all_changed_gate_params_are_named() -> None:
    with pytest.raises(RetellInputError) as info:
        operator(max_failures=1, min_pass_rate=0.5)
    assert "max_failures" in str(info.value)
    assert "min_pass_rate" in str(info.value)
    assert "max_errors" not in str(info.value)


def test_default_gate_params_are_fine_without_waiting() -> None:
    op = operator(max_failures=0, max_errors=0, min_pass_rate=None, fail_on_empty=True)
    assert op.wait_for_completion is False
    assert operator(wait_for_completion=True, max_failures=3, min_pass_rate=0.9).min_pass_rate == 0.9


@pytest.mark.parametrize("argument", ["poll_interval", "timeout"])
@pytest.mark.parametrize(
    "value",
    [
        0,
        -1,
        -0.5,
        timedelta(0),
        timedelta(seconds=-5),
        "60",
        None,
        True,
        float("nan"),
        float("inf"),
        1e14,
        timedelta(days=8),
    ],
)
def test_bad_durations_are_refused(argument: str, value: Any) -> None:
    with pytest.raises(RetellInputError, match=argument):
        operator(**{argument: value})


def test_durations_accept_seconds_and_timedelta() -> None:
    op = operator(poll_interval=0.5, timeout=timedelta(minutes=2))
    assert (op.poll_interval, op.wait_timeout) == (0.5, 120.0)


@pytest.mark.parametrize("argument", ["poke_interval", "timeout"])
@pytest.mark.parametrize("value", [0, -1, timedelta(seconds=-5), float("nan"), float("inf"), 1e14])
def test_sensor_bad_durations_are_refused(argument: str, value: Any) -> None:
    """A zero poke interval would poll Retell in a tight loop (and a deferred trigger likewise)."""
    with pytest.raises(ValueError, match=argument):
        RetellBatchTestSensor(task_id="wait", batch_test_id="tcbj_1", **{argument: value})


def test_sensor_durations() -> None:
    sensor = RetellBatchTestSensor(
        task_id="wait", batch_test_id="tcbj_1", poke_interval=timedelta(seconds=30), timeout=600
    )
    assert (sensor.poke_interval, sensor.timeout) == (30.0, 600.0)


def test_template_fields() -> None:
    gate = {
        "max_failures",
        "max_errors",
        "min_pass_rate",
        "fail_on_empty",
        "max_regressions",
        "baseline",
        "report_path",
    }
    assert set(RetellBatchTestOperator.template_fields) == {
        "response_engine",
        "agent_id",
        "agent_version",
        "test_case_definition_ids",
        *gate,
    }
    assert set(RetellBatchTestSensor.template_fields) == {"batch_test_id", "agent_id", *gate}


# -- execute(): rendered values of the wrong type, zero HTTP ---------------------------------------

RENDERED_WRONG = [
    ({"test_case_definition_ids": "def_a"}, "test_case_definition_ids"),
    ({"test_case_definition_ids": '["def_a", "def_b"]'}, "test_case_definition_ids"),
    ({"test_case_definition_ids": []}, "test_case_definition_ids"),
    ({"test_case_definition_ids": [f"d{i}" for i in range(20_001)]}, "test_case_definition_ids"),
    ({"test_case_definition_ids": ["def_a", "../def_b"]}, "test_case_definition_ids"),
    ({"test_case_definition_ids": ["def_a", "x?version=7"]}, "test_case_definition_ids"),
    ({"test_case_definition_ids": ["def_a", "def_b", "def_a"]}, "test_case_definition_ids"),
    ({"test_case_definition_ids": ["def_a", ""]}, "test_case_definition_ids"),
    ({"test_case_definition_ids": ["def_a", "   "]}, "test_case_definition_ids"),
    ({"test_case_definition_ids": ["def_a", None]}, "test_case_definition_ids"),
    ({"test_case_definition_ids": 12}, "test_case_definition_ids"),
    ({"agent_id": ""}, "agent_id"),
    ({"agent_id": "  "}, "agent_id"),
    ({"agent_id": 42}, "agent_id"),
    ({"agent_id": ["agent_support"]}, "agent_id"),
    ({"agent_id": "agents/support"}, "agent_id"),
    ({"agent_id": ".."}, "agent_id"),
    ({"agent_id": "."}, "agent_id"),
    ({"agent_id": "x#y"}, "agent_id"),
    ({"agent_id": "agent\x00x"}, "agent_id"),
    ({"agent_id": "agent x"}, "agent_id"),
    ({"agent_id": None, "response_engine": {**LLM_ENGINE, "verison": 3}}, "verison"),
    ({"agent_id": None, "response_engine": {"type": "retell-llm", "llm_id": "llm_1?version=2"}}, "llm_id"),
    ({"agent_version": -1}, "agent_version"),
    ({"agent_version": "2"}, "agent_version"),
    ({"agent_version": 1.5}, "agent_version"),
    ({"agent_version": True}, "agent_version"),
    ({"agent_id": None, "response_engine": json.dumps(LLM_ENGINE)}, "response_engine"),
    (
        {"agent_id": None, "response_engine": {"type": "custom-llm", "llm_websocket_url": "x"}},
        "response_engine",
    ),
    ({"agent_id": None, "response_engine": {"type": "retell-llm", "llm_id": ""}}, "response_engine"),
    ({"agent_id": None, "response_engine": LLM_ENGINE, "agent_version": 3}, "agent_version"),
    ({"response_engine": LLM_ENGINE}, "agent_id"),  # both, after rendering
    ({"agent_id": None}, "response_engine"),  # neither, after rendering
]
GATE_WRONG = [
    ({"min_pass_rate": "0.9"}, "min_pass_rate"),
    ({"min_pass_rate": 1.5}, "min_pass_rate"),
    ({"max_failures": "1"}, "max_failures"),
    ({"max_failures": -1}, "max_failures"),
    ({"max_errors": 0.5}, "max_errors"),
    ({"fail_on_empty": "False"}, "fail_on_empty"),
]


def render(task: Any, values: dict[str, Any]) -> None:
    """What template rendering does: set attributes after construction."""
    for name, value in values.items():
        setattr(task, name, value)


@pytest.mark.parametrize(("rendered", "argument"), RENDERED_WRONG + GATE_WRONG, ids=repr)
def test_operator_execute_rejects_wrong_rendered_values_without_http(
    retell_unit_conn: str, context: dict[str, Any], api: respx.MockRouter, rendered: dict, argument: str
) -> None:
    op = operator(retell_unit_conn, wait_for_completion=True)
    render(op, rendered)
    with pytest.raises(RetellInputError, match=argument) as info:
        op.execute(context)
    assert isinstance(info.value, ValueError)
    assert api.calls.call_count == 0
    assert context["ti"].pushed == []
    assert context["task_state_store"].data == {}


def test_operator_execute_rejects_bad_conn_id(context: dict[str, Any], api: respx.MockRouter) -> None:
    op = operator()
    op.retell_conn_id = ""
    with pytest.raises(RetellInputError, match="retell_conn_id"):
        op.execute(context)
    assert api.calls.call_count == 0


@pytest.mark.parametrize("password", [None, "  "])
def test_connection_without_key_fails_before_http(
    set_conn, context: dict[str, Any], api: respx.MockRouter, password: str | None
) -> None:
    conn_id = set_conn("retell_nokey", password=password)
    for task in (
        operator(conn_id),
        RetellBatchTestSensor(task_id="wait", batch_test_id="tcbj_1", retell_conn_id=conn_id),
    ):
        with pytest.raises(RetellInputError) as info:
            task.execute(context)
        assert "retell_nokey" in str(info.value)
        assert "API Key" in str(info.value)
    assert api.calls.call_count == 0


@pytest.mark.parametrize(
    ("rendered", "argument"),
    [
        ({"batch_test_id": ""}, "batch_test_id"),
        ({"batch_test_id": "   "}, "batch_test_id"),
        ({"batch_test_id": None}, "batch_test_id"),
        ({"batch_test_id": 12}, "batch_test_id"),
        ({"batch_test_id": []}, "batch_test_id"),
        ({"batch_test_id": ["tcbj_1", "tcbj_1"]}, "batch_test_id"),
        ({"batch_test_id": ["tcbj_1", ".."]}, "batch_test_id"),
        ({"batch_test_id": "tcbj_1/../x"}, "batch_test_id"),
        *GATE_WRONG,
    ],
    ids=repr,
)
@pytest.mark.parametrize("deferrable", [False, True])
def test_sensor_execute_rejects_wrong_rendered_values_without_http(
    retell_unit_conn: str,
    context: dict[str, Any],
    api: respx.MockRouter,
    rendered: dict,
    argument: str,
    deferrable: bool,
) -> None:
    sensor = RetellBatchTestSensor(
        task_id="wait", batch_test_id="tcbj_1", deferrable=deferrable, retell_conn_id=retell_unit_conn
    )
    render(sensor, rendered)
    with pytest.raises(RetellInputError, match=argument):
        sensor.execute(context)
    assert api.calls.call_count == 0
    assert context["ti"].pushed == []


# -- execute(): what only the API can judge -------------------------------------------------------


def agent_reply(engine: dict[str, Any]) -> dict[str, Any]:
    return {"agent_id": "agent_support", "response_engine": engine, "version": 1}


def definitions(*ids: str) -> dict[str, Any]:
    return page([{"test_case_definition_id": i, "name": i.upper()} for i in ids])


def test_operator_starts_one_batch_and_pushes_its_id(
    retell_unit_conn: str, context: dict[str, Any], api: respx.MockRouter
) -> None:
    api.get("/get-agent/agent_support").respond(200, json=agent_reply(FLOW_ENGINE))
    api.get("/v2/list-test-case-definitions").respond(200, json=definitions("def_a", "def_b"))
    api.get("/v2/list-batch-tests").respond(200, json=page([]))
    create = api.post("/create-batch-test").respond(
        201, json=batch_json("tcbj_new", status="in_progress", engine=FLOW_ENGINE, passed=0, total=2)
    )
    op = operator(retell_unit_conn)
    assert op.execute(context) == "tcbj_new"
    assert context["ti"].pushed == [
        ("agent_id", "agent_support"),
        ("batch_test_id", "tcbj_new"),
        ("batch_test_ids", ["tcbj_new"]),
    ]
    assert json.loads(create.calls.last.request.content) == {
        "response_engine": FLOW_ENGINE,
        "test_case_definition_ids": ["def_a", "def_b"],
    }
    # the verdict (the started id) is kept: a retry after this point returns it instead of billing anew
    assert context["task_state_store"].data[STATE_KEY]["verdict"] == "tcbj_new"
    assert API_KEY not in repr(context["ti"].pushed)


def test_operator_reattaches_instead_of_creating(
    retell_unit_conn: str, context: dict[str, Any], api: respx.MockRouter
) -> None:
    context["task_state_store"] = FakeStore({STATE_KEY: {"batch_test_id": "tcbj_earlier", "deadline": None}})
    assert operator(retell_unit_conn).execute(context) == "tcbj_earlier"
    assert context["ti"].pushed == [
        ("agent_id", "agent_support"),
        ("batch_test_id", "tcbj_earlier"),
        ("batch_test_ids", ["tcbj_earlier"]),
    ]
    assert api.calls.call_count == 0


def test_agent_on_custom_llm_is_refused_without_create(
    retell_unit_conn: str, context: dict[str, Any], api: respx.MockRouter
) -> None:
    agent = api.get("/get-agent/agent_support").respond(
        200, json=agent_reply({"type": "custom-llm", "llm_websocket_url": "wss://x"})
    )
    with pytest.raises(RetellInputError, match="agent_id"):
        operator(retell_unit_conn).execute(context)
    assert agent.call_count == 1
    assert api.calls.call_count == 1


def test_unknown_agent_fails_naming_agent_id_without_retry(
    retell_unit_conn: str, context: dict[str, Any], api: respx.MockRouter
) -> None:
    agent = api.get("/get-agent/agent_nope").respond(404, json={"message": "agent not found"})
    with pytest.raises(RetellPermanentError) as info:
        operator(retell_unit_conn, agent_id="agent_nope", agent_version=4).execute(context)
    assert "agent_id" in str(info.value)
    assert "agent_nope" in str(info.value)
    assert info.value.status_code == 404
    assert agent.call_count == 1
    assert agent.calls.last.request.url.params["version"] == "4"
    assert api.calls.call_count == 1


def test_unknown_definition_ids_fail_without_create(
    retell_unit_conn: str, context: dict[str, Any], api: respx.MockRouter
) -> None:
    api.get("/v2/list-test-case-definitions").respond(200, json=definitions("def_a"))
    create = api.post("/create-batch-test").respond(201, json=batch_json())
    op = operator(
        retell_unit_conn,
        agent_id=None,
        response_engine=LLM_ENGINE,
        test_case_definition_ids=["def_a", "def_zz"],
    )
    with pytest.raises(RetellInputError, match="test_case_definition_ids") as info:
        op.execute(context)
    assert "def_zz" in str(info.value)
    assert create.call_count == 0


def test_engine_without_definitions_fails_without_create(
    retell_unit_conn: str, context: dict[str, Any], api: respx.MockRouter
) -> None:
    api.get("/v2/list-test-case-definitions").respond(200, json=definitions())
    create = api.post("/create-batch-test").respond(201, json=batch_json())
    with pytest.raises(RetellInputError, match="test_case_definition_ids"):
        operator(retell_unit_conn, agent_id=None, response_engine=LLM_ENGINE).execute(context)
    assert create.call_count == 0


def test_sensor_unknown_batch_fails_naming_batch_test_id(
    retell_unit_conn: str, context: dict[str, Any], api: respx.MockRouter
) -> None:
    route = api.get("/get-batch-test/tcbj_nope").respond(404, json={"message": "not found"})
    sensor = RetellBatchTestSensor(task_id="wait", batch_test_id="tcbj_nope", retell_conn_id=retell_unit_conn)
    with pytest.raises(RetellPermanentError, match="batch_test_id"):
        sensor.execute(context)
    assert route.call_count == 1


def test_running_every_definition_past_200_splits_into_batches(
    retell_unit_conn: str, context: dict[str, Any], api: respx.MockRouter
) -> None:
    ids = [f"def_{i}" for i in range(450)]
    api.get("/v2/list-test-case-definitions").respond(200, json=definitions(*ids))
    api.get("/v2/list-batch-tests").respond(200, json=page([]))
    replies = [
        batch_json(f"tcbj_{n}", status="in_progress", passed=0, total=t) for n, t in enumerate((200, 200, 50))
    ]
    create = api.post("/create-batch-test").mock(side_effect=[httpx.Response(201, json=r) for r in replies])
    started = operator(retell_unit_conn, agent_id=None, response_engine=LLM_ENGINE).execute(context)
    assert started == ["tcbj_0", "tcbj_1", "tcbj_2"]
    sent = [json.loads(call.request.content)["test_case_definition_ids"] for call in create.calls]
    assert sent == [ids[:200], ids[200:400], ids[400:]]
    assert context["ti"].pushed[-1] == ("batch_test_ids", ["tcbj_0", "tcbj_1", "tcbj_2"])
    assert context["task_state_store"].data[STATE_KEY]["verdict"] == ["tcbj_0", "tcbj_1", "tcbj_2"]
