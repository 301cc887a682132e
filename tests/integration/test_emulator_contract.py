"""Contract test: every emulator response parses with the official retell-sdk types, and the official
client drives the emulator (create, get, list batch tests, list test runs) without a parse error."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from pydantic import TypeAdapter
from retell import Retell
from retell.types import (
    AgentListResponse,
    AgentResponse,
    BatchTestResponse,
    TestCaseDefinitionResponse,
    TestCaseJobResponse,
    TestListBatchTestsResponse,
    TestListTestCaseDefinitionsResponse,
    TestListTestRunsResponse,
)

from airflow_provider_retell.emulator.pytest_plugin import RetellEmulator

BOOKING = {"type": "retell-llm", "llm_id": "llm_booking"}
SUPPORT = {"type": "conversation-flow", "conversation_flow_id": "cf_support"}


def strict(model: Any, data: dict[str, Any]) -> Any:
    """Validate with pydantic (the SDK's own ``construct`` never fails), all required fields present."""
    return TypeAdapter(model).validate_python(data)


@pytest.fixture
def api(retell_emulator: RetellEmulator) -> Iterator[httpx.Client]:
    with retell_emulator.client() as client:
        yield client


@pytest.fixture
def sdk(retell_emulator: RetellEmulator) -> Iterator[Retell]:
    client = Retell(
        api_key=retell_emulator.api_key,
        base_url=retell_emulator.url,
        max_retries=0,
        http_client=httpx.Client(trust_env=False),
    )
    yield client
    client.close()


def test_every_response_kind_parses_with_sdk_types(
    api: httpx.Client, retell_emulator: RetellEmulator
) -> None:
    retell_emulator.reset(time_scale=1000)  # runs stay pending / in progress
    for engine, ids in [(BOOKING, ["tcd_booking_01", "tcd_booking_07"]), (SUPPORT, ["tcd_support_01"])]:
        created = api.post(
            "/create-batch-test", json={"response_engine": engine, "test_case_definition_ids": ids}
        )
        batch = strict(BatchTestResponse, created.json())
        assert batch.status == "in_progress"
        assert batch.response_engine.type == engine["type"]
        strict(BatchTestResponse, api.get(f"/get-batch-test/{batch.test_case_batch_job_id}").json())
        listed = strict(
            TestListTestRunsResponse, api.get(f"/v2/list-test-runs/{batch.test_case_batch_job_id}").json()
        )
        assert {r.status for r in listed.items} == {"in_progress"}
        strict(TestCaseJobResponse, api.get(f"/get-test-run/{listed.items[0].test_case_job_id}").json())
    batches = strict(TestListBatchTestsResponse, api.get("/v2/list-batch-tests", params={**BOOKING}).json())
    assert len(batches.items) == 1
    definitions = strict(
        TestListTestCaseDefinitionsResponse, api.get("/v2/list-test-case-definitions", params=SUPPORT).json()
    )
    assert len(definitions.items) == 8
    one = strict(TestCaseDefinitionResponse, api.get("/get-test-case-definition/tcd_booking_02").json())
    assert one.name == "Reschedules an appointment"
    for agent_id in ("agent_support", "agent_booking", "agent_flaky", "agent_custom"):
        agent = strict(AgentResponse, api.get(f"/get-agent/{agent_id}").json())
        assert agent.agent_id == agent_id


def test_finished_runs_parse_with_sdk_types(api: httpx.Client, retell_emulator: RetellEmulator) -> None:
    retell_emulator.reset(time_scale=0)
    ids = [f"tcd_booking_{i:02d}" for i in range(1, 13)]
    created = api.post(
        "/create-batch-test", json={"response_engine": BOOKING, "test_case_definition_ids": ids}
    )
    batch = strict(BatchTestResponse, created.json())
    runs = strict(
        TestListTestRunsResponse, api.get(f"/v2/list-test-runs/{batch.test_case_batch_job_id}").json()
    )
    assert sorted(r.status for r in runs.items) == ["error", "fail"] + ["pass"] * 10
    for run in runs.items:
        assert run.result_explanation
        assert run.transcript_snapshot is not None
        assert run.test_case_definition_snapshot.name


def test_official_client_drives_the_emulator(sdk: Retell) -> None:
    ids = [f"tcd_booking_{i:02d}" for i in range(1, 13)]
    batch = sdk.tests.create_batch_test(
        response_engine={"type": "retell-llm", "llm_id": "llm_booking"}, test_case_definition_ids=ids
    )
    assert isinstance(batch, BatchTestResponse)
    assert batch.total_count == 12
    assert batch.status == "in_progress"
    assert batch.response_engine.type == "retell-llm"
    assert batch.response_engine.version == 2
    deadline = time.monotonic() + 10
    while (got := sdk.tests.get_batch_test(batch.test_case_batch_job_id)).status != "complete":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert (got.pass_count, got.fail_count, got.error_count, got.total_count) == (10, 1, 1, 12)
    listed = sdk.tests.list_batch_tests(type="retell-llm", llm_id="llm_booking", version=2, limit=10)
    assert [b.test_case_batch_job_id for b in listed.items] == [batch.test_case_batch_job_id]
    assert listed.has_more is False
    page = sdk.tests.list_test_runs(batch.test_case_batch_job_id, limit=5)
    assert len(page.items) == 5
    assert page.has_more
    assert page.pagination_key
    rest = sdk.tests.list_test_runs(
        batch.test_case_batch_job_id, limit=50, pagination_key=page.pagination_key
    )
    assert len(rest.items) == 7
    assert not rest.has_more
    run = sdk.tests.get_test_run(rest.items[0].test_case_job_id)
    assert run.status in ("pass", "fail", "error")
    definitions = sdk.tests.list_test_case_definitions(
        type="conversation-flow", conversation_flow_id="cf_support"
    )
    assert len(definitions.items) == 8
    agent = sdk.agent.retrieve("agent_booking", version=1)
    assert agent.version == 1
    assert agent.response_engine.type == "retell-llm"


def test_official_client_sees_api_errors(sdk: Retell) -> None:
    import retell

    with pytest.raises(retell.BadRequestError) as bad:
        sdk.tests.create_batch_test(
            response_engine={"type": "retell-llm", "llm_id": "llm_booking"}, test_case_definition_ids=[]
        )
    assert bad.value.status_code == 400
    with pytest.raises(retell.NotFoundError):
        sdk.tests.get_batch_test("tcbj_missing")
    wrong = Retell(
        api_key="nope", base_url=sdk.base_url, max_retries=0, http_client=httpx.Client(trust_env=False)
    )
    with pytest.raises(retell.AuthenticationError):
        wrong.tests.get_batch_test("tcbj_missing")
    wrong.close()


def test_agent_listings_parse_with_sdk_types(api: httpx.Client, sdk: Retell) -> None:
    listed = strict(AgentListResponse, api.post("/v2/list-agents", json={}).json())
    assert {a.agent_id for a in listed.items} == {
        "agent_support",
        "agent_booking",
        "agent_flaky",
        "agent_custom",
    }
    assert all(a.channel == "voice" and a.is_suspended is False for a in listed.items)
    older = strict(list[AgentResponse], api.get("/list-agents").json())
    assert [a.agent_id for a in older] == ["agent_support", "agent_booking", "agent_flaky", "agent_custom"]
    # the official client: POST /v2/list-agents with query limit / pagination_key / sort_order and a
    # filter_criteria body
    page = sdk.agent.list(limit=2, sort_order="ascending")
    assert isinstance(page, AgentListResponse)
    assert [a.agent_id for a in page.items] == ["agent_support", "agent_booking"]
    assert page.has_more
    assert page.pagination_key == "agent_booking"
    rest = sdk.agent.list(limit=2, sort_order="ascending", pagination_key=page.pagination_key)
    assert [a.agent_id for a in rest.items] == ["agent_flaky", "agent_custom"]
    assert not rest.has_more
    found = sdk.agent.list(
        filter_criteria={"query": "booking", "channel": {"op": "eq", "type": "string", "value": "voice"}}
    )
    assert [a.agent_id for a in found.items] == ["agent_booking"]
    assert sdk.agent.list().items[0].agent_id == "agent_custom"  # newest first by default
