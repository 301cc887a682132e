"""RetellBatchTestTrigger against the emulator over real loopback HTTP."""

from __future__ import annotations

import asyncio
import itertools
import time
from typing import Any
from urllib.parse import urlsplit

import psutil

from airflow_provider_retell import transport as connection_module
from airflow_provider_retell.hooks.retell import RetellHook
from airflow_provider_retell.triggers.batch_test import RetellBatchTestTrigger

BOOKING = {"type": "retell-llm", "llm_id": "llm_booking"}
SUPPORT = {"type": "conversation-flow", "conversation_flow_id": "cf_support"}
BOOKING_IDS = [f"tcd_booking_{i:02d}" for i in range(1, 13)]


def create(engine: dict[str, Any], ids: list[str], count: int = 1) -> list[str]:
    hook = RetellHook()
    try:
        return [hook.create_batch_test(engine, ids).id for _ in range(count)]
    finally:
        hook.close()


async def events(trigger: RetellBatchTestTrigger) -> list[dict[str, Any]]:
    return [event.payload async for event in trigger.run()]


def trigger(
    batch_test_id: str, *, end_in: float = 30.0, poll_interval: float = 0.1
) -> RetellBatchTestTrigger:
    return RetellBatchTestTrigger(
        batch_test_id=batch_test_id,
        retell_conn_id="retell_default",
        poll_interval=poll_interval,
        end_time=time.time() + end_in,
    )


async def test_runs_to_completion_with_the_seeded_counts(retell_conn):
    (batch_test_id,) = create(BOOKING, BOOKING_IDS)  # time scale 0.01: complete after ~1.8 s
    start = time.monotonic()

    (event,) = await events(trigger(batch_test_id))

    assert event["status"] == "complete"
    assert event["batch_test_id"] == batch_test_id
    batch = event["batch_test"]
    assert batch["status"] == "complete"
    assert (batch["pass_count"], batch["fail_count"], batch["error_count"], batch["total_count"]) == (
        10,
        1,
        1,
        12,
    )
    assert "message" not in event
    polls = retell_conn.count("GET", f"/get-batch-test/{batch_test_id}")
    elapsed = time.monotonic() - start
    assert 2 <= polls <= elapsed / 0.1 + 2  # polled, at most once per poll interval


async def test_times_out_at_the_absolute_deadline(retell_conn):
    retell_conn.reset(time_scale=1)  # real pacing: the batch takes minutes
    (batch_test_id,) = create(BOOKING, BOOKING_IDS)
    start = time.monotonic()

    (event,) = await events(trigger(batch_test_id, end_in=1.0))

    elapsed = time.monotonic() - start
    assert 0.9 <= elapsed < 2.0
    assert event["status"] == "timeout"
    assert "batch_test" not in event
    assert "0/12 done" in event["message"]
    assert batch_test_id in event["message"]
    assert "keeps running in Retell" in event["message"]
    assert retell_conn.count("GET", f"/get-batch-test/{batch_test_id}") >= 2


async def test_many_triggers_share_one_client_and_bounded_sockets(retell_conn, monkeypatch):
    n_triggers = 60  # well above the shared pool size
    retell_conn.reset(time_scale=0.03)  # 8 cases: complete ~3.6 s after creation
    batch_ids = create(SUPPORT, [f"tcd_support_{i:02d}" for i in range(1, 9)], n_triggers)
    retell_conn.clear_requests()

    pool = connection_module.ASYNC_CLIENTS
    acquired: list[Any] = []
    original_acquire = pool.acquire

    def spy(settings):
        client = original_acquire(settings)
        acquired.append(client)
        return client

    monkeypatch.setattr(pool, "acquire", spy)
    port = urlsplit(retell_conn.url).port
    me = psutil.Process()

    def sockets_to_emulator() -> int:
        return sum(1 for c in me.net_connections(kind="tcp") if c.raddr and c.raddr.port == port)

    baseline = sockets_to_emulator()  # the emulator handle's own control client, at most one
    peak = 0
    done = asyncio.Event()

    async def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, sockets_to_emulator() - baseline)
            await asyncio.sleep(0.01)

    sampler = asyncio.create_task(sample())
    results = await asyncio.gather(*(events(trigger(b, poll_interval=1.0)) for b in batch_ids))
    done.set()
    await sampler

    assert [[e["status"] for e in r] for r in results] == [["complete"]] * n_triggers
    assert [r[0]["batch_test_id"] for r in results] == batch_ids
    assert all(r[0]["batch_test"]["pass_count"] == 8 for r in results)
    assert len(acquired) == n_triggers
    assert len({id(c) for c in acquired}) == 1  # one AsyncClient for every trigger on this loop
    polls = retell_conn.count("GET", "/get-batch-test/*")
    assert polls > n_triggers  # some triggers polled a running batch
    assert 1 <= peak <= connection_module.POOL_SIZE
    # Connections opened, not only peak sockets: a pool that closes idle connections and reopens them
    # (keep-alive below the maximum) stays under the peak but opens one per poll.
    assert retell_conn.connections("GET", "/get-batch-test/*") <= connection_module.POOL_SIZE
    # The last trigger out closes the shared client: no sockets and no pool entry are left behind.
    assert acquired[0].client.is_closed
    assert not pool._clients
    assert sockets_to_emulator() - baseline <= 0


async def test_bursts_of_polls_reuse_connections_instead_of_churning(retell_conn):
    """What a full triggerer does every poll interval: many polls at once, then quiet. Counted as TCP
    connections the emulator accepted: a pool that closes connections as they go idle (httpcore counts
    every connection against the keep-alive limit) reopens them on each burst."""
    from airflow_provider_retell.hooks.retell import RetellHook

    (batch_test_id,) = create(SUPPORT, ["tcd_support_01"])
    retell_conn.clear_requests()
    hooks = [RetellHook() for _ in range(60)]
    try:
        for _ in range(5):
            await asyncio.gather(*(hook.aget_batch_test(batch_test_id) for hook in hooks))
            await asyncio.sleep(0.3)
    finally:
        for hook in hooks:
            await hook.aclose()
    assert retell_conn.count("GET", "/get-batch-test/*") == 300
    assert retell_conn.connections("GET", "/get-batch-test/*") <= connection_module.POOL_SIZE


async def test_a_deferring_sensor_and_its_trigger_do_not_poll_twice_in_a_row(retell_conn):
    """The task polls once before deferring; the trigger's first poll then waits one poll interval
    (``first_poll_at``) instead of reading the same status again a few milliseconds later."""
    from airflow.sdk.exceptions import TaskDeferred

    from airflow_provider_retell.sensors.batch_test import RetellBatchTestSensor
    from tests.fakes import fake_context

    retell_conn.reset(time_scale=0)
    (batch_test_id,) = create(SUPPORT, ["tcd_support_01"])
    # Held in progress for the task's own look and the trigger's first poll, complete after that.
    retell_conn.add_fault(
        "GET", "/get-batch-test/*", "patch", times=2, json={"status": "in_progress", "pass_count": 0}
    )
    retell_conn.clear_requests()
    poll = 0.5
    sensor = RetellBatchTestSensor(
        task_id="wait", batch_test_id=batch_test_id, deferrable=True, poke_interval=poll, timeout=60
    )
    context = fake_context()
    try:
        sensor.execute(context)
    except TaskDeferred as deferred:
        events = [event.payload async for event in deferred.trigger.run()]
    else:
        raise AssertionError("the sensor did not defer")

    assert [e["status"] for e in events] == ["complete"]
    stamps = [r["timestamp"] for r in retell_conn.requests("GET", "/get-batch-test/*")]
    assert len(stamps) == 3  # the task's look, the trigger's held poll, the complete one
    assert min(b - a for a, b in itertools.pairwise(stamps)) >= poll - 0.02
