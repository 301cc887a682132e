"""N triggers of one provider in one event loop, run the way Airflow's triggerer runs them.

One process per side and N, so neither side inherits the other's imports, pools or garbage.
``TriggerRunner.create_triggers`` creates every pending trigger in one pass (yielding between
them) and each task enters a greenback portal before consuming ``trigger.run()``; this does the
same. A ticker coroutine measures how late the loop wakes it (the lag every trigger suffers), and
each event's arrival is compared with the completion time carried in its id.

Before the measured window, one trigger runs to completion against a separate warm-up listener, so
one-off costs that a long-running triggerer has already paid (lazy imports, SSL context, provider
discovery) stay out of the figures, and the measured listener's counters see only the N triggers.

Writes its figures as JSON to ``--out``; its stdout and stderr carry only the triggers' own logs
(structlog at INFO, as Airflow configures it), which the caller sends to a file. Connections (``AIRFLOW_CONN_*``) and ``SSL_CERT_FILE`` come from the
environment that ``side_by_side.py`` sets.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import math
import resource
import time
from collections.abc import Callable
from typing import Any

import greenback
import psutil
from completions import dbt_run_id, retell_id, schedule

TICK = 0.01  # the lag ticker's period: fine enough for a p50 below a millisecond
WARMUP_AT = 1.0  # the warm-up batch or run is complete from the epoch's first second


def retell_factory(conn_id: str, poll: float, end_time: float) -> Callable[[int, float], Any]:
    from airflow_provider_retell.triggers.batch_test import RetellBatchTestTrigger

    def make(index: int, completes_at: float) -> Any:
        return RetellBatchTestTrigger(
            batch_test_id=retell_id(index, completes_at),
            retell_conn_id=conn_id,
            poll_interval=poll,
            end_time=end_time,
        )

    return make


def dbt_factory(conn_id: str, poll: float, end_time: float) -> Callable[[int, float], Any]:
    from airflow.providers.dbt.cloud.triggers.dbt import DbtCloudRunJobTrigger

    def make(index: int, completes_at: float) -> Any:
        # account_id=None, as DbtCloudRunJobOperator passes by default: the hook reads the login.
        return DbtCloudRunJobTrigger(
            conn_id=conn_id,
            run_id=dbt_run_id(index, completes_at),
            end_time=end_time,
            poll_interval=poll,
            account_id=None,
        )

    return make


SIDES = {
    "retell": (retell_factory, "retell_default", "retell_warmup", ("complete",)),
    "dbt": (dbt_factory, "dbt_cloud_default", "dbt_cloud_warmup", ("success",)),
}


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(int(q * len(ordered)), len(ordered) - 1)]


async def consume(trigger: Any) -> tuple[float, dict[str, Any]] | None:
    """What ``TriggerRunner.run_trigger`` does with a trigger, minus the supervisor messages."""
    await greenback.ensure_portal()
    first = None
    try:
        async for event in trigger.run():  # to the end, so the trigger's own clean-up runs now
            first = first or (time.time(), event.payload)
    finally:
        await trigger.cleanup()
    return first


async def ticker(lags: list[float], rss: list[int]) -> None:
    loop = asyncio.get_running_loop()
    process = psutil.Process()
    due = loop.time() + TICK
    while True:
        await asyncio.sleep(max(due - loop.time(), 0))
        now = loop.time()
        lags.append(now - due)
        due = now + TICK
        if len(lags) % 25 == 0:  # every ~0.25 s: psutil costs ~50 µs, keep it off most ticks
            rss.append(process.memory_info().rss)


async def run_side(side: str, n: int, poll: float, spread: float, grace: float) -> dict[str, Any]:
    factory, conn_id, warmup_conn_id, ok_statuses = SIDES[side]
    warm = await asyncio.create_task(consume(factory(warmup_conn_id, poll, time.time() + 60)(0, WARMUP_AT)))
    if warm is None or warm[1]["status"] not in ok_statuses:
        raise RuntimeError(f"warm-up trigger failed: {warm}")

    gc.collect()
    process = psutil.Process()
    rss0 = process.memory_info().rss
    cpu0 = time.process_time()
    t0 = time.time()
    deadline = t0 + spread + 2 * poll + grace
    completes = schedule(t0, n, spread)
    make = factory(conn_id, poll, deadline + 60)
    lags: list[float] = []
    rss: list[int] = [rss0]
    tick = asyncio.create_task(ticker(lags, rss))

    tasks = []
    for i, at in enumerate(completes):  # as TriggerRunner.create_triggers: one pass, yielding between
        await asyncio.sleep(0)
        tasks.append(asyncio.create_task(consume(make(i, at))))
    done, pending = await asyncio.wait(tasks, timeout=max(deadline - time.time(), 0))
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    cpu = time.process_time() - cpu0
    wall = time.time() - t0
    tick.cancel()

    detections: list[float] = []  # a trigger that never fired counts as infinitely late
    errors: dict[str, int] = {}
    for task, at in zip(tasks, completes, strict=True):
        if task.cancelled() or task not in done:
            errors["no event by the deadline"] = errors.get("no event by the deadline", 0) + 1
            detections.append(math.inf)
        elif task.exception() is not None:
            kind = f"raised {type(task.exception()).__name__}"
            errors[kind] = errors.get(kind, 0) + 1
        elif (result := task.result()) is None or result[1]["status"] not in ok_statuses:
            kind = f"event {result[1]['status'] if result else 'none'}"
            errors[kind] = errors.get(kind, 0) + 1
        else:
            detections.append(result[0] - at)
    lags_ms = [lag * 1000 for lag in lags]
    return {
        "side": side,
        "n": n,
        "poll": poll,
        "wall_s": wall,
        "cpu_s": cpu,
        "rss_delta_kib": (max(rss) - rss0) / 1024,
        "maxrss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "lag_p50_ms": percentile(lags_ms, 0.50),
        "lag_p99_ms": percentile(lags_ms, 0.99),
        "lag_max_ms": max(lags_ms, default=None),
        "detect_p50_s": percentile(detections, 0.50),
        "detect_p99_s": percentile(detections, 0.99),
        "detected": sum(d < math.inf for d in detections),
        "errors": errors,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--side", choices=sorted(SIDES), required=True)
    parser.add_argument("--n", type=int, required=True, help="triggers in the loop")
    parser.add_argument("--poll", type=float, default=2.0, help="poll interval, seconds")
    parser.add_argument(
        "--spread", type=float, default=30.0, help="completions spread over this many seconds"
    )
    parser.add_argument(
        "--grace", type=float, default=8.0, help="seconds past the last poll before giving up"
    )
    parser.add_argument("--out", required=True, help="write the figures here, as JSON")
    args = parser.parse_args()
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # a triggerer is run with a high limit too
    result = asyncio.run(run_side(args.side, args.n, args.poll, args.spread, args.grace))
    with open(args.out, "w") as out:
        json.dump(result, out)


if __name__ == "__main__":
    main()
