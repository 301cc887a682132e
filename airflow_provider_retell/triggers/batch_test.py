"""Waits for a run's Retell batch tests in the triggerer, without holding a worker slot.

The triggerer imports a trigger's module on its event loop, so this one imports only the argument
checks. The hook, the models and the poll loop (0.1-0.5 s to import on a busy machine: a "blocked
main thread" warning if done on the loop) are imported in a worker thread when a trigger first runs.
"""

from __future__ import annotations

import asyncio
import importlib
import random
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any, Literal

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_retell.exceptions import (
    RetellError,
    RetellInputError,
    RetellPermanentError,
    still_running_message,
)
from airflow_provider_retell.validation import finite, poll_interval_seconds, validate_id, validate_ids

#: Longest a trigger created without ``first_poll_at`` waits before its first poll (seconds).
FIRST_POLL_SPREAD = 10.0
#: Imported off the event loop by :func:`_load_runtime` before the first poll.
RUNTIME_MODULES = (
    "airflow_provider_retell.contracts",
    "airflow_provider_retell.hooks.retell",
    "airflow_provider_retell.operations",
    "airflow_provider_retell.retry",
)


def _import_runtime() -> None:
    for name in RUNTIME_MODULES:
        importlib.import_module(name)


async def _load_runtime() -> None:
    """A thread hop per trigger (cached imports after the first): concurrent first imports wait on
    the module locks in the worker threads, never on the loop."""
    await asyncio.to_thread(_import_runtime)


def _epoch(value: Any, argument: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not finite(value):
        raise RetellInputError(f"{argument} must be a finite epoch time in seconds, got {value!r:.60}")
    return float(value)


class RetellBatchTestTrigger(BaseTrigger):
    """Poll a run's batch tests until all complete, one fails permanently, or ``end_time`` passes.

    Everything it needs is in its kwargs, so any triggerer can resume it after a restart; the
    deadline is absolute (epoch seconds), so a restart never extends it. A transient error while
    polling only means "not finished yet" (the outage policy in ``operations.poll_until_complete``).

    :param batch_test_id: the batch test to wait for (the previous release's form; one id).
    :param retell_conn_id: the Retell connection.
    :param poll_interval: seconds between polls.
    :param end_time: absolute deadline, epoch seconds.
    :param batch_test_ids: every batch of the run to wait for (instead of ``batch_test_id``).
    :param first_poll_at: epoch seconds of the first poll, when the task has just polled itself.
    :param schema_version: the version of these kwargs (set by the task; the previous release's, 1,
        is still read).
    """

    def __init__(
        self,
        batch_test_id: str | None = None,
        retell_conn_id: str = "retell_default",
        poll_interval: float = 60.0,
        end_time: float = 0.0,
        *,
        batch_test_ids: Sequence[str] | None = None,
        first_poll_at: float | None = None,
        schema_version: int | None = None,  # written by serialize(); read back, not needed to run
    ) -> None:
        super().__init__()
        if batch_test_ids is None:
            batch_test_ids = [validate_id(batch_test_id, "batch_test_id")]
        self.batch_test_ids = validate_ids(batch_test_ids, argument="batch_test_ids")
        self.retell_conn_id = retell_conn_id
        self.poll_interval = poll_interval_seconds(poll_interval)
        self.end_time = _epoch(end_time, "end_time")
        self.first_poll_at = None if first_poll_at is None else _epoch(first_poll_at, "first_poll_at")
        self.schema_version = schema_version

    @property
    def batch_test_id(self) -> str:
        return self.batch_test_ids[0]

    def serialize(self) -> tuple[str, dict[str, Any]]:
        from airflow_provider_retell.contracts import SCHEMA_VERSION

        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "batch_test_id": self.batch_test_id,
                "batch_test_ids": list(self.batch_test_ids),
                "retell_conn_id": self.retell_conn_id,
                "poll_interval": self.poll_interval,
                "end_time": self.end_time,
                "first_poll_at": self.first_poll_at,
                "schema_version": SCHEMA_VERSION,
            },
        )

    def _first_poll_at(self) -> float:
        """When the task has just polled, one interval later. Otherwise (a triggerer that restarted or
        took over, and starts all its triggers at once) a random point within the first interval, at
        most ``FIRST_POLL_SPREAD`` s away: a thousand triggers would otherwise all poll in the same
        instant and queue behind each other. A poll interval still bounds the first detection."""
        if self.first_poll_at is not None:
            return self.first_poll_at
        return time.time() + random.uniform(0, min(self.poll_interval, FIRST_POLL_SPREAD))

    def _event(self, status: Literal["complete", "timeout", "error"], **fields: Any) -> TriggerEvent:
        from airflow_provider_retell.contracts import BatchTestEvent

        event = BatchTestEvent(
            status=status, batch_test_id=self.batch_test_id, batch_test_ids=self.batch_test_ids, **fields
        )
        return TriggerEvent(event.to_payload())

    async def run(self) -> AsyncIterator[TriggerEvent]:
        await _load_runtime()
        from airflow_provider_retell.hooks.retell import RetellHook
        from airflow_provider_retell.operations import TimedOut, describe, poll_until_complete
        from airflow_provider_retell.retry import OutagePolicy

        hook = RetellHook(retell_conn_id=self.retell_conn_id)
        operation = poll_until_complete(
            self.batch_test_ids,
            OutagePolicy(self.poll_interval),
            self.end_time,
            self.log,
            first_poll_at=self._first_poll_at(),
        )
        try:
            done = await hook.arun(operation)
        except TimedOut as exc:
            latest = [exc.latest[i] for i in self.batch_test_ids if i in exc.latest]
            progress = f" ({describe(latest)})" if latest else ""
            cause = f" The last read failed: {exc.error}." if exc.error else ""
            message = (
                f"Timed out waiting for Retell{progress}.{cause} {still_running_message(self.batch_test_ids)}"
            )
            yield self._event("timeout", message=message[:2000])
            return
        except RetellError as exc:  # permanent, or a reply that retrying cannot fix: the task decides
            status_code = exc.status_code if isinstance(exc, RetellPermanentError) else None
            message = exc.message if isinstance(exc, RetellPermanentError) else str(exc)
            yield self._event("error", message=message[:2000], status_code=status_code)
            return
        except Exception as exc:  # a bug, never a silent stall: the task fails and names it
            self.log.exception("Waiting for %s failed unexpectedly", self.batch_test_ids)
            yield self._event("error", message=f"{type(exc).__name__} while waiting"[:2000])
            return
        finally:
            await hook.aclose()
        self.log.info("%s: complete", describe(list(done.values())))
        summaries = [done[i].summary() for i in self.batch_test_ids]
        yield self._event("complete", batch_tests=summaries)

    async def on_kill(self) -> None:
        self.log.warning("Stopped waiting. %s", still_running_message(self.batch_test_ids))
