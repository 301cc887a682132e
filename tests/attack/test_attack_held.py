"""Attacks that held: the same harness (fake Retell on a chaos server), the promised outcome observed.

These PASS today. They are the controls for the failing attacks next to them (the harness is fair:
the same fake adopts a lost create, fails closed, scrubs, bounds a trickle) and the record of what
was tried and resisted.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from airflow_provider_retell.creating import MemoryIntentStore
from airflow_provider_retell.exceptions import (
    RetellAPIError,
    RetellError,
    RetellInputError,
    RetellQualityGateError,
)
from airflow_provider_retell.hooks.retell import RetellHook
from airflow_provider_retell.operators.batch_test import RetellBatchTestOperator
from airflow_provider_retell.triggers.batch_test import RetellBatchTestTrigger
from airflow_provider_retell.waiting import STATE_KEY
from tests.attack.fake_retell import API_KEY, FakeRetell, WorkerKilled, engine_key
from tests.chaos import Reply, Trickle, endless_page, huge_json_string, nested_json, retell_error
from tests.fakes import FakeStore, fake_context

ENGINE = {"type": "retell-llm", "llm_id": "llm_atk", "version": 2}
KEY = engine_key(ENGINE)
IDS = ["tcd_a", "tcd_b", "tcd_c"]


def _hook(conn: str) -> RetellHook:
    return RetellHook(retell_conn_id=conn)


def _create(conn: str, store: Any = None, end_in: float = 20) -> Any:
    hook = _hook(conn)
    try:
        return hook.create_batch_test(
            ENGINE, IDS, intent_store=store or MemoryIntentStore(), end=time.time() + end_in
        )
    finally:
        hook.close()


def _lost(fake: FakeRetell, req: Any) -> Reply:
    fake.apply_create(req.json())
    return retell_error(504, "gateway timeout")


@pytest.mark.parametrize("lag", [0.0, 1.5])
def test_held_a_lost_create_is_adopted_even_when_listed_late(
    retell: FakeRetell, attack_conn: Any, lag: float
) -> None:
    conn = attack_conn(create_settle_seconds=3)
    retell.latest[KEY] = 2
    retell.list_lag = lag
    retell.creates = [_lost]
    batch = _create(conn)
    assert [b.id for b in retell.batches] == [batch.id]


def test_held_a_create_that_was_not_applied_is_sent_once_more(retell: FakeRetell, attack_conn: Any) -> None:
    conn = attack_conn(create_settle_seconds=1)
    retell.latest[KEY] = 2
    retell.creates = ["fail"]
    batch = _create(conn)
    assert [b.id for b in retell.batches] == [batch.id]
    assert retell.posts == 2


def test_held_a_kill_between_the_intent_and_the_post_sends_once(retell: FakeRetell, attack_conn: Any) -> None:
    """The retry lists until the settle window passes, then sends: one batch."""
    conn = attack_conn(create_settle_seconds=1)
    retell.latest[KEY] = 2
    store = MemoryIntentStore()
    hook = _hook(conn)
    operation = hook._create(ENGINE, IDS, store, time.time() + 20)
    step = next(operation)  # the pre-create listing
    while step.method != "POST":
        step = operation.send(hook._call(step))
    operation.close()  # killed with the intent recorded, before the POST went out
    hook.close()
    assert store.load() is not None
    assert retell.posts == 0
    _create(conn, store)
    assert len(retell.batches) == 1


def test_held_an_oldest_first_listing_is_read_to_the_end(retell: FakeRetell, attack_conn: Any) -> None:
    conn = attack_conn()
    retell.latest[KEY] = 2
    for _ in range(60):  # an engine with history, listed oldest first
        retell.apply_create({"response_engine": ENGINE, "test_case_definition_ids": IDS})

    def oldest_first(kind: str, payload: Any, req: Any) -> Any:
        if kind == "list" and not req.query.get("pagination_key"):
            every = sorted(
                (b.view(time.time()) for b in retell.batches), key=lambda v: v["creation_timestamp"]
            )
            return {"items": every[:50], "has_more": True, "pagination_key": "rest"}
        if kind == "list" and req.query.get("pagination_key") == "rest":
            every = sorted(
                (b.view(time.time()) for b in retell.batches), key=lambda v: v["creation_timestamp"]
            )
            return {"items": every[50:], "has_more": False}
        return payload

    retell.transform = oldest_first
    retell.creates = [_lost]
    batch = _create(conn)
    assert len(retell.batches) == 61
    assert batch.id == retell.batches[-1].id


def test_held_a_reply_about_another_batch_fails_closed(retell: FakeRetell, attack_conn: Any) -> None:
    conn = attack_conn()
    mine = retell.apply_create({"response_engine": ENGINE, "test_case_definition_ids": IDS})
    other = retell.apply_create({"response_engine": ENGINE, "test_case_definition_ids": IDS})
    retell.server.route("GET", f"/get-batch-test/{mine.id}", Reply(200, json=other.view(time.time())))
    with pytest.raises(RetellAPIError, match="about batch test"):
        _hook(conn).get_batch_test(mine.id)


def test_held_counts_that_do_not_add_up_fail_the_gate(retell: FakeRetell, attack_conn: Any) -> None:
    conn = attack_conn()
    retell.known_definitions = IDS

    def bad_counts(kind: str, payload: Any, req: Any) -> Any:
        if kind == "get":
            payload.update(pass_count=3, fail_count=1, total_count=3)
        return payload

    retell.transform = bad_counts
    op = RetellBatchTestOperator(
        task_id="t", response_engine=ENGINE, test_case_definition_ids=IDS, wait_for_completion=True,
        poll_interval=0.1, timeout=10, retell_conn_id=conn,
    )  # fmt: skip
    with pytest.raises(RetellQualityGateError, match="do not add up"):
        op.execute(fake_context())


@pytest.mark.parametrize("value", ["1e9", "-5", "nan", "inf", "Wed, 21 Oct 2099 07:28:00 GMT"])
def test_held_hostile_retry_after_is_bounded(retell: FakeRetell, attack_conn: Any, value: str) -> None:
    conn = attack_conn(max_retries=1, max_retry_wait=0.5)
    batch = retell.apply_create({"response_engine": ENGINE, "test_case_definition_ids": IDS})
    retell.server.route(
        "GET", "/get-batch-test/*", retell_error(429, "slow", **{"Retry-After": value}), times=1
    )
    start = time.monotonic()
    assert _hook(conn).get_batch_test(batch.id).id == batch.id
    assert time.monotonic() - start < 2


@pytest.mark.parametrize(
    "reply",
    [
        huge_json_string(64 * 2**20),
        huge_json_string(64 * 2**20, content_length=False),
        nested_json(100_000),
        nested_json(100_000, objects=True),
    ],
    ids=["huge-declared", "huge-undeclared", "nested-lists", "nested-objects"],
)
def test_held_huge_or_deeply_nested_replies_are_refused(
    retell: FakeRetell, attack_conn: Any, reply: Reply
) -> None:
    conn = attack_conn()
    retell.server.route("GET", "/get-batch-test/*", reply)
    start = time.monotonic()
    with pytest.raises(RetellAPIError):
        _hook(conn).get_batch_test("tcbj_x")
    assert time.monotonic() - start < 10


def test_held_an_endless_listing_is_cut(retell: FakeRetell, attack_conn: Any) -> None:
    conn = attack_conn()
    retell.server.route("GET", "/v2/list-test-runs/*", endless_page())
    with pytest.raises(RetellAPIError, match="repeats pagination_key"):
        _hook(conn).list_test_runs("tcbj_x")


def test_held_a_trickling_reply_is_cut_near_the_deadline(retell: FakeRetell, attack_conn: Any) -> None:
    from airflow_provider_retell.operations import get_batch

    conn = attack_conn(timeout=30)
    batch = retell.apply_create({"response_engine": ENGINE, "test_case_definition_ids": IDS})
    body = Reply(200, json=batch.view(time.time()), trickle=Trickle(1, 0.2))
    retell.server.route("GET", "/get-batch-test/*", body)
    start = time.monotonic()
    with pytest.raises(RetellAPIError):
        _hook(conn).run(get_batch(batch.id, retry=None, end=time.time() + 1))
    assert time.monotonic() - start < 1 + 5


@pytest.mark.parametrize("encoding", ["json", "percent", "raw"])
def test_held_an_error_body_echoing_the_key_is_scrubbed(
    retell: FakeRetell, attack_conn: Any, encoding: str
) -> None:
    from tests.chaos import echo

    conn = attack_conn()
    retell.server.route("GET", "/get-batch-test/*", echo("header:authorization", encoding, status=401))
    with pytest.raises(RetellError) as info:
        _hook(conn).get_batch_test("tcbj_x")
    assert API_KEY not in str(info.value)


def test_held_lower_case_http_never_uses_the_environment_proxy(
    retell: FakeRetell, attack_conn: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("ALL_PROXY", "http://127.0.0.1:9")
    conn = attack_conn()
    assert _hook(conn).settings.proxy is None


@pytest.mark.parametrize(
    "engine",
    [
        {"type": "retell-llm", "llm_id": "llm_1", "extra": 1},
        {"type": "retell-llm", "llm_id": "../get-agent"},
        {"type": "retell-llm", "llm_id": "llm_1", "version": True},
        {"type": "custom-llm", "llm_websocket_url": "wss://x"},
    ],
)
def test_held_bad_engines_fail_before_any_request(
    retell: FakeRetell, attack_conn: Any, chaos: Any, engine: Any
) -> None:
    conn = attack_conn()
    with pytest.raises(RetellInputError):
        RetellBatchTestOperator(task_id="t", response_engine=engine, retell_conn_id=conn)
    assert chaos.requests == []


def test_held_a_previous_release_record_reattaches_without_a_create(
    retell: FakeRetell, attack_conn: Any
) -> None:
    conn = attack_conn()
    retell.known_definitions = IDS
    batch = retell.apply_create({"response_engine": ENGINE, "test_case_definition_ids": IDS})
    store = FakeStore({STATE_KEY: {"batch_test_id": batch.id, "deadline": time.time() + 20}})
    op = RetellBatchTestOperator(
        task_id="t", response_engine=ENGINE, test_case_definition_ids=IDS, wait_for_completion=True,
        poll_interval=0.1, timeout=10, retell_conn_id=conn,
    )  # fmt: skip
    assert op.execute(fake_context(store))["batch_test_id"] == batch.id
    assert retell.posts == 0


async def test_held_a_restarted_trigger_keeps_its_absolute_deadline(
    retell: FakeRetell, attack_conn: Any
) -> None:
    conn = attack_conn()
    retell.complete_after = 3600
    batch = retell.apply_create({"response_engine": ENGINE, "test_case_definition_ids": IDS})
    end = time.time() + 1.5
    first = RetellBatchTestTrigger(
        batch_test_ids=[batch.id], retell_conn_id=conn, poll_interval=0.2, end_time=end
    )
    _, kwargs = first.serialize()
    restarted = RetellBatchTestTrigger(**kwargs)  # a new triggerer takes it over from its kwargs alone
    events = [e.payload async for e in restarted.run()]
    assert [e["status"] for e in events] == ["timeout"]
    assert time.time() - end < 5


class KillAfterWriting(FakeStore):
    """Dies right after a write that matches ``when`` (the write itself is durable)."""

    def __init__(self, when: Any) -> None:
        super().__init__()
        self.when, self.killed = when, False

    def set(self, key: str, value: Any, **kw: Any) -> None:
        super().set(key, value, **kw)
        if not self.killed and self.when(value):
            self.killed = True
            raise WorkerKilled("SIGKILL after the intent was recorded, before the POST")


def _started(value: Any) -> int:
    return sum(b is not None for r in value["rounds"] for b in r["batch_test_ids"])


@pytest.mark.parametrize("shape", ["split", "rerun"])
def test_held_a_kill_between_intent_and_post_during_a_split_or_a_rerun(
    retell: FakeRetell, attack_conn: Any, shape: str
) -> None:
    conn = attack_conn(create_settle_seconds=1)
    if shape == "split":
        ids, kwargs, expected = [f"tcd_{i:04d}" for i in range(401)], {}, 3
        store = KillAfterWriting(lambda v: v.get("create_intent") and _started(v) == 1)
    else:
        ids, kwargs, expected = IDS, {"rerun_failed": 1}, 2
        retell.outcomes = {"tcd_c": ["fail", "pass"]}
        store = KillAfterWriting(lambda v: v.get("create_intent") and len(v["rounds"]) == 2)
    retell.known_definitions = ids

    def op() -> RetellBatchTestOperator:
        return RetellBatchTestOperator(
            task_id="t", response_engine=ENGINE, test_case_definition_ids=ids, wait_for_completion=True,
            poll_interval=0.1, timeout=20, retell_conn_id=conn, **kwargs,
        )  # fmt: skip

    with pytest.raises(WorkerKilled):
        op().execute(fake_context(store))
    result = op().execute(fake_context(store))
    assert len(retell.batches) == expected
    assert result["gate_passed"]
