"""RetellBatchTestTrigger over respx: one event per run, resilient polling, bounded connections."""

from __future__ import annotations

import asyncio
import importlib
import json
import time
from typing import Any

import httpx
import pytest
import respx
from _retell_helpers import API_KEY, BASE_URL, batch_json
from airflow.triggers.base import TriggerEvent

from airflow_provider_retell import transport as connection_module
from airflow_provider_retell.exceptions import STATUS_MEANINGS
from airflow_provider_retell.models import BatchTest
from airflow_provider_retell.triggers.batch_test import RetellBatchTestTrigger

GET_PATH = "/get-batch-test/tcbj_1"
POLL = 0.1  # the shortest poll interval allowed


@pytest.fixture
def api():
    with respx.mock(base_url=BASE_URL, assert_all_called=False) as mock:
        yield mock


@pytest.fixture
def no_retry_conn(set_conn) -> str:
    """The hook gives up at once, so the trigger's own polling loop is what is tested."""
    return set_conn("retell_trig", extra={"max_retries": 0, "max_retry_wait": 0.001})


def make_trigger(conn_id: str, *, end_in: float = 30.0, batch_id: str = "tcbj_1") -> RetellBatchTestTrigger:
    return RetellBatchTestTrigger(
        batch_test_id=batch_id, retell_conn_id=conn_id, poll_interval=POLL, end_time=time.time() + end_in
    )


async def collect(trigger: RetellBatchTestTrigger, limit: float = 10.0) -> list[TriggerEvent]:
    async def _run() -> list[TriggerEvent]:
        return [event async for event in trigger.run()]

    return await asyncio.wait_for(_run(), timeout=limit)


def replies(*payloads: Any) -> list[httpx.Response]:
    return [p if isinstance(p, httpx.Response) else httpx.Response(200, json=p) for p in payloads]


def in_progress(done: int = 0, failed: int = 0, total: int = 12, **kw: Any) -> dict[str, Any]:
    return batch_json(
        status=kw.pop("status", "in_progress"),
        passed=done - failed,
        failed=failed,
        total=total,
        modified_ms=None,
        **kw,
    )


def pool_entries() -> list[Any]:
    """The shared pool's clients for the running event loop."""
    loop_id = id(asyncio.get_running_loop())
    return [entry for key, entry in connection_module.ASYNC_CLIENTS._clients.items() if key[0] == loop_id]


# -- serialization --------------------------------------------------------------------------------


def test_serialize_round_trips() -> None:
    end_time = 1_767_225_600.123456
    trigger = RetellBatchTestTrigger("tcbj_1", "retell_default", 30, end_time)
    classpath, kwargs = trigger.serialize()
    module_name, _, class_name = classpath.rpartition(".")
    cls = getattr(importlib.import_module(module_name), class_name)
    assert cls is RetellBatchTestTrigger
    assert classpath == "airflow_provider_retell.triggers.batch_test.RetellBatchTestTrigger"
    restored = cls(**json.loads(json.dumps(kwargs)))
    assert restored.serialize() == (classpath, kwargs)
    assert restored.end_time == end_time
    assert kwargs == {
        "batch_test_id": "tcbj_1",
        "batch_test_ids": ["tcbj_1"],
        "retell_conn_id": "retell_default",
        "poll_interval": 30.0,
        "end_time": end_time,
        "first_poll_at": None,
        "schema_version": 2,
    }


def test_the_previous_releases_kwargs_still_resume() -> None:
    """A task deferred under 0.1.0 resumes after an upgrade: its stored kwargs build the new trigger."""
    old = {
        "batch_test_id": "tcbj_1",
        "retell_conn_id": "retell_default",
        "poll_interval": 30.0,
        "end_time": 1e9,
    }
    trigger = RetellBatchTestTrigger(**old)
    assert trigger.batch_test_ids == ["tcbj_1"]
    assert (trigger.poll_interval, trigger.end_time, trigger.first_poll_at) == (30.0, 1e9, None)


def test_several_batches_round_trip() -> None:
    trigger = RetellBatchTestTrigger(
        batch_test_ids=["tcbj_1", "tcbj_2"], poll_interval=5, end_time=1e9, first_poll_at=2e9
    )
    _, kwargs = trigger.serialize()
    assert RetellBatchTestTrigger(**kwargs).serialize()[1] == kwargs
    assert kwargs["batch_test_id"] == "tcbj_1"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"batch_test_id": "../x"},
        {"batch_test_ids": []},
        {"batch_test_ids": ["tcbj_1", "tcbj_1"]},
        {"poll_interval": 0},
        {"poll_interval": float("nan")},
        {"end_time": float("inf")},
        {"end_time": "soon"},
        {"first_poll_at": float("nan")},
    ],
    ids=repr,
)
def test_bad_kwargs_are_refused(kwargs: dict[str, Any]) -> None:
    from airflow_provider_retell.exceptions import RetellInputError

    base: dict[str, Any] = {"batch_test_id": "tcbj_1", "poll_interval": 1, "end_time": 1e9}
    with pytest.raises(RetellInputError):
        RetellBatchTestTrigger(**{**base, **kwargs})


# -- events ---------------------------------------------------------------------------------------


async def test_complete_event_carries_the_summary(no_retry_conn: str, api: respx.MockRouter) -> None:
    done = batch_json(passed=10, failed=1, errored=1, transcript_snapshot="SECRET-TRANSCRIPT", extra_field=1)
    route = api.get(GET_PATH).mock(side_effect=replies(in_progress(3), in_progress(7, 1), done))
    events = await collect(make_trigger(no_retry_conn))
    assert len(events) == 1
    payload = events[0].payload
    assert payload["status"] == "complete"
    assert payload["batch_test_id"] == "tcbj_1"
    assert "message" not in payload
    expected = {k: v for k, v in done.items() if k not in ("transcript_snapshot", "extra_field")}
    assert payload["batch_test"] == expected
    assert set(payload["batch_test"]) == set(BatchTest.model_fields)
    text = json.dumps(payload)
    assert "SECRET-TRANSCRIPT" not in text
    assert API_KEY not in text
    assert route.call_count == 3


async def test_deadline_in_the_past_gives_one_timeout_event(
    no_retry_conn: str, api: respx.MockRouter
) -> None:
    route = api.get(GET_PATH).mock(side_effect=replies(in_progress(3, 1)) * 5)
    events = await collect(make_trigger(no_retry_conn, end_in=-60))
    assert len(events) == 1
    payload = events[0].payload
    assert payload["status"] == "timeout"
    assert payload["batch_test_id"] == "tcbj_1"
    assert "tcbj_1" in payload["message"]
    assert "keeps running in Retell" in payload["message"]
    assert "3/12 done: 1 failed, 0 errored" in payload["message"]
    assert "batch_test" not in payload  # a timeout carries no batch: nothing to judge
    assert route.call_count == 1


async def test_deadline_passes_while_polling(no_retry_conn: str, api: respx.MockRouter) -> None:
    api.get(GET_PATH).respond(200, json=in_progress(1))
    started = time.monotonic()
    events = await collect(make_trigger(no_retry_conn, end_in=0.3))
    assert [e.payload["status"] for e in events] == ["timeout"]
    assert time.monotonic() - started < 2


async def test_timeout_while_retell_is_down(no_retry_conn: str, api: respx.MockRouter) -> None:
    route = api.get(GET_PATH).respond(503)
    events = await collect(make_trigger(no_retry_conn, end_in=0.5))
    assert len(events) == 1
    assert events[0].payload["status"] == "timeout"
    assert "batch_test" not in events[0].payload
    assert "keeps running in Retell" in events[0].payload["message"]
    assert "HTTP 503" in events[0].payload["message"]  # the last error is named
    assert route.call_count >= 2  # kept trying until the deadline


@pytest.mark.parametrize("status", [401, 403, 404])
async def test_permanent_error_gives_an_error_event(set_conn, api: respx.MockRouter, status: int) -> None:
    conn_id = set_conn("retell_trig_perm", extra={"max_retries": 3, "max_retry_wait": 0.001})
    route = api.get(GET_PATH).respond(status, json={"status": "error", "message": "refused"})
    events = await collect(make_trigger(conn_id))
    assert len(events) == 1
    payload = events[0].payload
    assert payload["status"] == "error"
    assert payload["batch_test_id"] == "tcbj_1"
    assert STATUS_MEANINGS[status] in payload["message"]
    assert API_KEY not in payload["message"]
    assert payload["status_code"] == status  # so the task fails without spending retries
    assert route.call_count == 1


async def test_transient_errors_then_success(no_retry_conn: str, api: respx.MockRouter) -> None:
    route = api.get(GET_PATH).mock(
        side_effect=[
            httpx.Response(503),
            httpx.ConnectError("refused"),
            httpx.Response(429, headers={"Retry-After": "0"}),
            httpx.Response(502),
            httpx.Response(200, json=batch_json()),
        ]
    )
    events = await collect(make_trigger(no_retry_conn))
    assert [e.payload["status"] for e in events] == ["complete"]
    assert route.call_count == 5


async def test_malformed_json_gives_an_error_event(no_retry_conn: str, api: respx.MockRouter) -> None:
    route = api.get(GET_PATH).respond(200, content=b"{not json")
    events = await collect(make_trigger(no_retry_conn, end_in=5))
    assert [e.payload["status"] for e in events] == ["error"]
    assert "not valid JSON" in events[0].payload["message"]
    assert route.call_count == 1


async def test_reply_missing_fields_gives_an_error_event(no_retry_conn: str, api: respx.MockRouter) -> None:
    """A reply that cannot be parsed is final: the trigger must not poll it until the deadline."""
    route = api.get(GET_PATH).respond(200, json={"status": "complete"})
    events = await collect(make_trigger(no_retry_conn, end_in=5))
    assert [e.payload["status"] for e in events] == ["error"]
    assert "test_case_batch_job_id" in events[0].payload["message"]
    assert route.call_count == 1


class RecordingLog:
    """Stands in for the trigger's logger (Airflow routes it through structlog, not caplog)."""

    def __init__(self) -> None:
        self.records: list[tuple[str, str]] = []

    def _record(self, level: str) -> Any:
        return lambda msg, *args, **_: self.records.append((level, msg % args if args else msg))

    def __getattr__(self, level: str) -> Any:
        return self._record(level)

    def messages(self, level: str) -> list[str]:
        return [m for lvl, m in self.records if lvl == level]


@pytest.fixture
def trigger_log(monkeypatch: pytest.MonkeyPatch) -> RecordingLog:
    log = RecordingLog()
    monkeypatch.setattr(RetellBatchTestTrigger, "log", log)
    return log


async def test_unknown_status_logged_once_and_not_finished(
    no_retry_conn: str, api: respx.MockRouter, trigger_log: RecordingLog
) -> None:
    weird = in_progress(2, status="paused_by_retell")
    route = api.get(GET_PATH).mock(side_effect=replies(weird, weird, weird, batch_json()))
    events = await collect(make_trigger(no_retry_conn))
    assert [e.payload["status"] for e in events] == ["complete"]
    assert route.call_count == 4
    warnings = [m for m in trigger_log.messages("warning") if "unknown status" in m]
    assert len(warnings) == 1
    assert "paused_by_retell" in warnings[0]


async def test_progress_logged_at_most_once_per_poll(
    no_retry_conn: str, api: respx.MockRouter, trigger_log: RecordingLog
) -> None:
    polls = [in_progress(1), in_progress(1), in_progress(3, 1), in_progress(3, 1), in_progress(3, 1)]
    route = api.get(GET_PATH).mock(side_effect=replies(*polls, batch_json(passed=11, failed=1)))
    events = await collect(make_trigger(no_retry_conn))
    assert events[0].payload["status"] == "complete"
    infos = trigger_log.messages("info")
    progress = [m for m in infos if " done: " in m]
    assert len(progress) <= route.call_count
    assert sum("3/12 done: 1 failed, 0 errored" in m for m in progress) == 1
    assert sum("1/12 done: 0 failed, 0 errored" in m for m in progress) == 1
    assert any("12/12 done: 1 failed, 0 errored" in m for m in progress)


@pytest.fixture
def created(monkeypatch: pytest.MonkeyPatch) -> list[httpx.AsyncClient]:
    """Every AsyncClient the provider builds, in order."""
    clients: list[httpx.AsyncClient] = []

    class CountingClient(httpx.AsyncClient):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            clients.append(self)

    monkeypatch.setattr(connection_module.httpx, "AsyncClient", CountingClient)
    return clients


async def test_one_client_reused_across_polls_and_released(
    no_retry_conn: str, api: respx.MockRouter, created: list[httpx.AsyncClient]
) -> None:
    route = api.get(GET_PATH).mock(side_effect=replies(*[in_progress(i) for i in range(6)], batch_json()))
    events = await collect(make_trigger(no_retry_conn))
    assert events[0].payload["status"] == "complete"
    assert route.call_count == 7
    assert len(created) == 1
    assert created[0].is_closed
    assert pool_entries() == []


async def test_concurrent_triggers_share_one_pool(
    no_retry_conn: str, api: respx.MockRouter, created: list[httpx.AsyncClient]
) -> None:
    for n in range(5):
        api.get(f"/get-batch-test/tcbj_{n}").mock(
            side_effect=replies(
                in_progress(1, batch_id=f"tcbj_{n}"),
                in_progress(2, batch_id=f"tcbj_{n}"),
                batch_json(f"tcbj_{n}"),
            )
        )
    triggers = [make_trigger(no_retry_conn, batch_id=f"tcbj_{n}") for n in range(5)]
    results = await asyncio.gather(*(collect(t) for t in triggers))
    assert [r[0].payload["batch_test_id"] for r in results] == [f"tcbj_{n}" for n in range(5)]
    assert all(r[0].payload["status"] == "complete" for r in results)
    assert len(created) == 1
    assert created[0].is_closed
    assert pool_entries() == []


async def test_cancelled_trigger_releases_the_pool(no_retry_conn: str, api: respx.MockRouter) -> None:
    api.get(GET_PATH).respond(200, json=in_progress(1))
    task = asyncio.create_task(collect(make_trigger(no_retry_conn)))
    await asyncio.sleep(0.1)
    assert len(pool_entries()) == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert pool_entries() == []


async def test_on_kill_says_the_batch_keeps_running(trigger_log: RecordingLog) -> None:
    await make_trigger("retell_default").on_kill()
    assert any("tcbj_1" in m and "keeps running in Retell" in m for m in trigger_log.messages("warning"))


async def test_a_hanging_poll_is_cut_at_the_deadline(
    no_retry_conn: str, api: respx.MockRouter, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow_provider_retell.hooks import retell as hook_module

    monkeypatch.setattr(hook_module, "LAST_POLL_GRACE_SECONDS", 0.05)

    async def hang(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(5)
        return httpx.Response(200, json=batch_json(status="in_progress"))

    api.get(GET_PATH).mock(side_effect=hang)
    started = time.monotonic()
    events = await collect(make_trigger(no_retry_conn, end_in=0.2))
    assert time.monotonic() - started < 2  # the deadline (0.2 s) plus the grace, not the 5 s hang
    assert [e.payload["status"] for e in events] == ["timeout"]
    assert "tcbj_1" in events[0].payload["message"]


async def test_the_first_poll_waits_when_the_task_has_just_polled(
    no_retry_conn: str, api: respx.MockRouter
) -> None:
    route = api.get(GET_PATH).respond(200, json=batch_json())
    trigger = RetellBatchTestTrigger(
        batch_test_id="tcbj_1",
        retell_conn_id=no_retry_conn,
        poll_interval=0.5,
        end_time=time.time() + 30,
        first_poll_at=time.time() + 0.5,
    )
    started = time.monotonic()
    events = await collect(trigger)
    assert events[0].payload["status"] == "complete"
    assert route.call_count == 1
    assert time.monotonic() - started >= 0.45


async def test_several_batches_give_one_event_with_every_summary(
    no_retry_conn: str, api: respx.MockRouter
) -> None:
    api.get("/get-batch-test/tcbj_1").mock(
        side_effect=replies(in_progress(1, batch_id="tcbj_1"), batch_json("tcbj_1"))
    )
    second = api.get("/get-batch-test/tcbj_2").mock(
        side_effect=replies(
            *[in_progress(n, batch_id="tcbj_2") for n in range(3)], batch_json("tcbj_2", failed=1)
        )
    )
    trigger = RetellBatchTestTrigger(
        batch_test_ids=["tcbj_1", "tcbj_2"],
        retell_conn_id=no_retry_conn,
        poll_interval=POLL,
        end_time=time.time() + 30,
    )
    (event,) = await collect(trigger)
    payload = event.payload
    assert payload["status"] == "complete"
    assert payload["batch_test_ids"] == ["tcbj_1", "tcbj_2"]
    assert [b["test_case_batch_job_id"] for b in payload["batch_tests"]] == ["tcbj_1", "tcbj_2"]
    assert second.call_count == 4


async def test_a_reply_about_another_batch_is_an_error(no_retry_conn: str, api: respx.MockRouter) -> None:
    api.get(GET_PATH).respond(200, json=batch_json("tcbj_other"))
    (event,) = await collect(make_trigger(no_retry_conn))
    assert event.payload["status"] == "error"
    assert "tcbj_other" in event.payload["message"]


async def test_the_shared_pool_keeps_every_connection_alive_and_bounds_requests_in_flight(
    no_retry_conn: str, api: respx.MockRouter
) -> None:
    in_flight = peak = 0

    async def slow(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.05)
        in_flight -= 1
        return httpx.Response(200, json=batch_json(request.url.path.rsplit("/", 1)[1]))

    api.route(method="GET", path__startswith="/get-batch-test/").mock(side_effect=slow)
    triggers = [make_trigger(no_retry_conn, batch_id=f"tcbj_{n}") for n in range(60)]
    tasks = [asyncio.ensure_future(collect(t)) for t in triggers]
    for _ in range(1000):  # the triggers acquire the shared client on their first poll
        if pool_entries():
            break
        await asyncio.sleep(0.005)
    (entry,) = pool_entries()
    pool = entry.client._transport._pool
    assert pool._max_keepalive_connections == pool._max_connections == connection_module.POOL_SIZE
    results = await asyncio.gather(*tasks)
    assert all(r[0].payload["status"] == "complete" for r in results)
    assert peak <= connection_module.POOL_SIZE


def test_without_first_poll_at_the_first_poll_is_spread_within_one_interval_and_the_cap() -> None:
    """A restarted triggerer starts all its triggers at once: their first polls spread out instead of
    going out together, never later than one poll interval (or FIRST_POLL_SPREAD) from now."""
    from airflow_provider_retell.triggers.batch_test import FIRST_POLL_SPREAD

    given = RetellBatchTestTrigger(batch_test_id="tcbj_1", poll_interval=5, end_time=2e9, first_poll_at=1.9e9)
    assert given._first_poll_at() == 1.9e9  # the task has just polled: one interval after it
    for poll, bound in ((2.0, 2.0), (600.0, FIRST_POLL_SPREAD)):
        trigger = RetellBatchTestTrigger(batch_test_id="tcbj_1", poll_interval=poll, end_time=2e9)
        now = time.time()
        delays = [trigger._first_poll_at() - now for _ in range(200)]
        assert all(-0.01 <= d <= bound + 0.5 for d in delays), (min(delays), max(delays))
        assert max(delays) - min(delays) > bound / 4  # spread, not one instant
