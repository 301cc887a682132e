"""Waits for a Retell batch test in the triggerer, without holding a worker slot."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_retell.exceptions import RetellError, RetellPermanentError, still_running_message
from airflow_provider_retell.hooks.retell import RetellHook
from airflow_provider_retell.models import BatchTest
from airflow_provider_retell.retry import is_transient

#: Longest pause between polls while Retell keeps failing transiently.
MAX_BACKOFF_SECONDS = 600.0
#: How long a poll may run past the deadline (the hook's own retries included) before it is cut.
POLL_GRACE_SECONDS = 30.0


class RetellBatchTestTrigger(BaseTrigger):
    """Poll one batch test until it completes, fails permanently or ``end_time`` passes.

    Everything it needs is in its kwargs, so any triggerer can resume it after a restart; the
    deadline is absolute (epoch seconds), so a restart never extends it.

    :param batch_test_id: the batch test to wait for.
    :param retell_conn_id: the Retell connection.
    :param poll_interval: seconds between polls.
    :param end_time: absolute deadline, epoch seconds.
    """

    def __init__(
        self, batch_test_id: str, retell_conn_id: str, poll_interval: float, end_time: float
    ) -> None:
        super().__init__()
        self.batch_test_id = batch_test_id
        self.retell_conn_id = retell_conn_id
        self.poll_interval = float(poll_interval)
        self.end_time = float(end_time)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "batch_test_id": self.batch_test_id,
                "retell_conn_id": self.retell_conn_id,
                "poll_interval": self.poll_interval,
                "end_time": self.end_time,
            },
        )

    def _event(
        self, status: str, *, batch: BatchTest | None = None, message: str | None = None
    ) -> TriggerEvent:
        payload: dict[str, Any] = {"status": status, "batch_test_id": self.batch_test_id}
        if batch is not None:
            payload["batch_test"] = batch.summary()
        if message is not None:
            payload["message"] = message
        return TriggerEvent(payload)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        hook = RetellHook(retell_conn_id=self.retell_conn_id)
        last: BatchTest | None = None
        last_progress = ""
        failures = 0
        try:
            while True:
                try:
                    # bounded, so even a poll stuck in the hook's retries ends by the deadline
                    batch = await asyncio.wait_for(
                        hook.aget_batch_test(self.batch_test_id),
                        timeout=max(self.end_time - time.time(), 0) + POLL_GRACE_SECONDS,
                    )
                except asyncio.TimeoutError:
                    failures += 1
                    self.log.warning("Polling batch test %s did not finish in time", self.batch_test_id)
                except RetellError as exc:
                    if not is_transient(exc):
                        if isinstance(exc, RetellPermanentError):  # the task fails without retries
                            event = self._event("error", batch=last, message=exc.message)
                            event.payload["status_code"] = exc.status_code
                        else:
                            event = self._event("error", batch=last, message=str(exc))
                        yield event
                        return
                    failures += 1
                    self.log.warning(
                        "Polling batch test %s failed (%s); will poll again", self.batch_test_id, exc
                    )
                else:
                    failures = 0
                    if batch.is_complete:
                        self.log.info("Batch test %s complete: %s", batch.id, batch.progress())
                        yield self._event("complete", batch=batch)
                        return
                    if not batch.has_known_status and (last is None or last.status != batch.status):
                        self.log.warning(
                            "Batch test %s has unknown status %r: treated as not finished",
                            batch.id,
                            batch.status,
                        )
                    last = batch
                    if (progress := batch.progress()) != last_progress:
                        self.log.info("Batch test %s: %s", batch.id, progress)
                        last_progress = progress

                remaining = self.end_time - time.time()
                if remaining <= 0:
                    progress = f" ({last.progress()})" if last else ""
                    message = f"Timed out waiting for Retell batch test {self.batch_test_id}{progress}. "
                    yield self._event(
                        "timeout", batch=last, message=message + still_running_message(self.batch_test_id)
                    )
                    return
                delay = self.poll_interval
                if failures:
                    delay = max(delay, min(delay * 2 ** min(failures, 10), MAX_BACKOFF_SECONDS))
                await asyncio.sleep(min(delay, remaining))
        finally:
            await hook.aclose()

    async def on_kill(self) -> None:
        self.log.warning("Stopped waiting. %s", still_running_message(self.batch_test_id))
