"""RetellHook against the emulator over real loopback HTTP: every method and its async twin."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from airflow_provider_retell import operations
from airflow_provider_retell.hooks.retell import RetellHook
from airflow_provider_retell.models import ConversationFlowEngine, CustomLlmEngine, RetellLlmEngine

BOOKING = {"type": "retell-llm", "llm_id": "llm_booking"}
SUPPORT = {"type": "conversation-flow", "conversation_flow_id": "cf_support"}
BOOKING_IDS = [f"tcd_booking_{i:02d}" for i in range(1, 13)]
SUPPORT_IDS = [f"tcd_support_{i:02d}" for i in range(1, 9)]


@pytest.fixture
def hook(retell_conn) -> Iterator[RetellHook]:
    hook = RetellHook()
    yield hook
    hook.close()


@pytest.fixture
async def ahook(retell_conn) -> AsyncIterator[RetellHook]:
    hook = RetellHook()
    yield hook
    await hook.aclose()


# -- sync -------------------------------------------------------------------------------------------


def test_create_batch_test(hook, retell_conn):
    batch = hook.create_batch_test(BOOKING, BOOKING_IDS)

    assert batch.id.startswith("tcbj_")
    assert batch.status == "in_progress"
    assert batch.total_count == 12
    assert batch.response_engine == RetellLlmEngine(llm_id="llm_booking", version=2)
    # One snapshot of the engine's batches, one create: nothing else.
    assert [(r["method"], r["path"]) for r in retell_conn.requests()] == [
        ("GET", "/v2/list-batch-tests"),
        ("POST", "/create-batch-test"),
    ]
    assert retell_conn.requests("POST")[0]["status"] == 201


def test_get_batch_test(hook, retell_conn):
    retell_conn.reset(time_scale=0)
    created = hook.create_batch_test(BOOKING, BOOKING_IDS)

    batch = hook.get_batch_test(created.id)

    assert batch.id == created.id
    assert batch.is_complete
    assert (batch.pass_count, batch.fail_count, batch.error_count, batch.total_count) == (10, 1, 1, 12)
    assert batch.progress() == "12/12 done: 1 failed, 1 errored"
    assert retell_conn.count("GET", f"/get-batch-test/{created.id}") == 1


def test_list_test_runs_reads_every_page(hook, retell_conn, monkeypatch):
    retell_conn.reset(time_scale=0)
    batch = hook.create_batch_test(BOOKING, BOOKING_IDS)
    monkeypatch.setattr(operations, "PAGE_SIZE", 2)

    monkeypatch.setattr(operations, "RUNS_PAGE_SIZE", 2)

    runs = hook.list_test_runs(batch.id)

    assert [r.test_case_definition_id for r in runs] == BOOKING_IDS
    assert len({r.test_case_job_id for r in runs}) == 12
    assert sorted(r.status for r in runs if r.is_failed) == ["error", "fail"]
    assert all("transcript_snapshot" not in r.model_dump() for r in runs)
    pages = retell_conn.requests("GET", f"/v2/list-test-runs/{batch.id}")
    assert len(pages) == 6
    assert all(p["query"]["limit"] == "2" for p in pages)
    assert "pagination_key" not in pages[0]["query"]
    assert all("pagination_key" in p["query"] for p in pages[1:])


def test_list_batch_tests(hook, retell_conn, monkeypatch):
    first = hook.create_batch_test(BOOKING, BOOKING_IDS[:3])
    second = hook.create_batch_test(BOOKING, BOOKING_IDS[3:5])
    hook.create_batch_test(SUPPORT, SUPPORT_IDS[:1])
    retell_conn.clear_requests()
    monkeypatch.setattr(operations, "PAGE_SIZE", 1)

    monkeypatch.setattr(operations, "RUNS_PAGE_SIZE", 1)

    batches = hook.list_batch_tests(BOOKING)

    assert [b.id for b in batches] == [second.id, first.id]  # newest first, other engines left out
    assert [b.total_count for b in batches] == [2, 3]
    assert retell_conn.count("GET", "/v2/list-batch-tests") == 2


def test_list_test_case_definitions(hook, retell_conn):
    booking = hook.list_test_case_definitions(BOOKING)
    support = hook.list_test_case_definitions({**SUPPORT, "version": 1})

    assert [d.test_case_definition_id for d in booking] == BOOKING_IDS
    assert [d.test_case_definition_id for d in support] == SUPPORT_IDS
    assert all(d.name for d in booking + support)
    queries = [r["query"] for r in retell_conn.requests("GET", "/v2/list-test-case-definitions")]
    assert "version" not in queries[1]  # definitions are listed for the engine, any version


def test_get_agent_response_engine(hook, retell_conn):
    assert hook.get_agent_response_engine("agent_booking") == RetellLlmEngine(llm_id="llm_booking", version=2)
    support = hook.get_agent_response_engine("agent_support", version=1)
    assert support == ConversationFlowEngine(conversation_flow_id="cf_support", version=1)
    assert isinstance(hook.get_agent_response_engine("agent_custom"), CustomLlmEngine)
    queries = [r["query"] for r in retell_conn.requests("GET", "/get-agent/*")]
    assert queries == [{}, {"version": "1"}, {}]


def test_test_connection_ok(hook, retell_conn):
    ok, message = hook.test_connection()

    assert ok is True
    assert retell_conn.url in message
    assert retell_conn.count() == 1


def test_test_connection_wrong_key(retell_conn, monkeypatch):
    monkeypatch.setenv(
        "AIRFLOW_CONN_RETELL_WRONG",
        retell_conn.connection_json(max_retries=3, max_retry_wait=0.05).replace(
            retell_conn.api_key, "wrong-key-123"
        ),
    )

    ok, message = RetellHook("retell_wrong").test_connection()

    assert ok is False
    assert "401" in message
    assert "API key" in message
    assert message.startswith(f"Retell at {retell_conn.url} refused the test request: ")
    assert "wrong-key-123" not in message
    assert retell_conn.count() == 1  # a rejected key is not retried


# -- async twins ------------------------------------------------------------------------------------


async def test_async_create_and_get(ahook, retell_conn):
    retell_conn.reset(time_scale=0)
    created = await ahook.acreate_batch_test(SUPPORT, SUPPORT_IDS)
    batch = await ahook.aget_batch_test(created.id)

    assert created.total_count == 8
    assert created.response_engine == ConversationFlowEngine(conversation_flow_id="cf_support", version=1)
    assert batch.id == created.id
    assert batch.is_complete
    assert (batch.pass_count, batch.fail_count, batch.error_count) == (8, 0, 0)
    assert [(r["method"], r["path"]) for r in retell_conn.requests()] == [
        ("GET", "/v2/list-batch-tests"),
        ("POST", "/create-batch-test"),
        ("GET", f"/get-batch-test/{created.id}"),
    ]


async def test_async_list_test_runs_reads_every_page(ahook, retell_conn, monkeypatch):
    retell_conn.reset(time_scale=0)
    batch = await ahook.acreate_batch_test(BOOKING, BOOKING_IDS)
    monkeypatch.setattr(operations, "PAGE_SIZE", 2)

    monkeypatch.setattr(operations, "RUNS_PAGE_SIZE", 2)

    runs = await ahook.alist_test_runs(batch.id)

    assert [r.test_case_definition_id for r in runs] == BOOKING_IDS
    assert retell_conn.count("GET", f"/v2/list-test-runs/{batch.id}") == 6


async def test_async_lists_and_agent(ahook, retell_conn, monkeypatch):
    created = await ahook.acreate_batch_test(BOOKING, BOOKING_IDS[:2])
    monkeypatch.setattr(operations, "PAGE_SIZE", 5)

    monkeypatch.setattr(operations, "RUNS_PAGE_SIZE", 5)

    batches = await ahook.alist_batch_tests(BOOKING)
    definitions = await ahook.alist_test_case_definitions(BOOKING)
    engine = await ahook.aget_agent_response_engine("agent_booking")
    old = await ahook.aget_agent("agent_support", 0)

    assert [b.id for b in batches] == [created.id]
    assert [d.test_case_definition_id for d in definitions] == BOOKING_IDS
    assert retell_conn.count("GET", "/v2/list-test-case-definitions") == 3  # 12 items, 5 a page
    assert engine == RetellLlmEngine(llm_id="llm_booking", version=2)
    assert old.agent_id == "agent_support"
    assert isinstance(old.response_engine, ConversationFlowEngine)
