"""Attacks on "the trigger never blocks the event loop" with a huge (but under-the-cap) reply.

Currently FAILS: one poll stalls the triggerer's event loop (every other trigger in it) for more
than a second.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from airflow_provider_retell.triggers.batch_test import RetellBatchTestTrigger
from tests.attack.fake_retell import FakeRetell
from tests.chaos import Reply

ENGINE = {"type": "retell-llm", "llm_id": "llm_atk", "version": 2}
IDS = ["tcd_a", "tcd_b", "tcd_c"]


async def test_one_padded_reply_stalls_the_triggerer_event_loop(retell: FakeRetell, attack_conn: Any) -> None:
    """Breaks "the trigger never blocks the event loop" (a triggerer runs up to 1,000 waits on one loop).

    A ``get-batch-test`` reply is ~300 bytes, but the only bound is ``MAX_REPLY_BYTES`` = 32 MiB for
    every endpoint, and ``interpret_reply`` runs ``json.loads`` (then pydantic) *on the event loop*.
    A valid batch padded with an unknown field of 30 MiB (``[0,0,0,...]``: ignored by the model, but
    parsed first) holds the loop for over a second per poll; 20 such polls in flight (the pool size)
    freeze every trigger of the triggerer for ~30 s, and its liveness check with them.
    Promised: no stall longer than a fraction of a second. Measured: the loop's longest gap.
    """
    conn = attack_conn()
    batch = retell.apply_create({"response_engine": ENGINE, "test_case_definition_ids": IDS})
    view = batch.view(time.time())
    head = json.dumps(view)[:-1].encode() + b', "padding": ['
    count = (30 * 2**20) // 2
    body = head + b"0," * (count - 1) + b"0]}"
    retell.server.route("GET", f"/get-batch-test/{batch.id}", Reply(200, body=body))
    trigger = RetellBatchTestTrigger(
        batch_test_ids=[batch.id], retell_conn_id=conn, poll_interval=0.2, end_time=time.time() + 20
    )
    gaps: list[float] = []
    stop = asyncio.Event()

    async def heartbeat() -> None:
        last = time.perf_counter()
        while not stop.is_set():
            await asyncio.sleep(0.01)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    beat = asyncio.create_task(heartbeat())
    events = [e.payload async for e in trigger.run()]
    stop.set()
    await beat

    # a reply that size is no batch test: refused unread, or parsed off the loop, never a stall
    (event,) = events
    assert event["status"] == "complete" or "larger than 1 MiB" in event["message"]
    worst = max(gaps) - 0.01
    assert worst < 0.3, f"one poll blocked the triggerer's event loop for {worst:.2f} s"
