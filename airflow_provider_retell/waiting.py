"""Waiting for a batch test and reaching its verdict: shared by the operator and the sensor.

State that must outlive a try (the batch id, the absolute deadline) lives in Airflow's
``task_state_store``: XComs are cleared when a new try starts, the store is not.
"""

from __future__ import annotations

import time
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk.exceptions import AirflowSensorTimeout, TaskDeferralTimeout

from airflow_provider_retell.exceptions import (
    PERMANENT_STATUSES,
    RetellAPIError,
    RetellError,
    RetellPermanentError,
    RetellQualityGateError,
    RetellTimeoutError,
    still_running_message,
)
from airflow_provider_retell.results import (
    QualityGate,
    build_result,
    failed_cases_table,
    gate_failure_message,
)

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_retell.hooks.retell import RetellHook
    from airflow_provider_retell.models import BatchTest

# The hook, the models and the trigger are imported where they are used, not at module level: a DAG
# file that imports the operator or the sensor then pays only for this module (see docs/benchmarks.md).

#: task_state_store key holding ``{"batch_test_id": str, "deadline": float | None}``.
STATE_KEY = "retell_batch_test"
#: Extra time the scheduler grants a deferral past the trigger's own deadline (a backstop only).
DEFER_GRACE = timedelta(minutes=5)
GATE_PARAMS = ("max_failures", "max_errors", "min_pass_rate", "fail_on_empty")


class BatchTestState:
    """The per-task record in ``task_state_store`` (a no-op where the context has no store)."""

    def __init__(self, context: Context) -> None:
        self._store = context.get("task_state_store")

    def get(self) -> dict[str, Any]:
        value = self._store.get(STATE_KEY) if self._store is not None else None
        return value if isinstance(value, dict) else {}

    def set(self, **record: Any) -> None:
        if self._store is not None:
            self._store.set(STATE_KEY, record)

    def forget(self) -> None:
        if self._store is not None:
            self._store.delete(STATE_KEY)

    def deadline(self, batch_test_id: str, timeout: float) -> float:
        """The wait's absolute end, fixed the first time any try waits for this batch."""
        record = self.get()
        if record.get("batch_test_id") == batch_test_id and record.get("deadline"):
            return float(record["deadline"])
        deadline = time.time() + timeout
        self.set(batch_test_id=batch_test_id, deadline=deadline)
        return deadline


class BatchTestWaitMixin:
    """Poll or defer until the batch completes, then build the result and apply the gate.

    The host class provides ``retell_conn_id``, ``poll_interval``, ``wait_timeout`` (seconds),
    the gate params, ``agent_id`` (or None), ``log`` and ``defer``.
    """

    retell_conn_id: str
    poll_interval: float
    wait_timeout: float
    agent_id: Any
    max_failures: Any
    max_errors: Any
    min_pass_rate: Any
    fail_on_empty: Any
    log: Any

    @property
    def hook(self) -> RetellHook:
        hook: RetellHook | None = getattr(self, "_retell_hook", None)
        if hook is None:
            from airflow_provider_retell.hooks.retell import RetellHook

            hook = self._retell_hook = RetellHook(retell_conn_id=self.retell_conn_id)
        return hook

    def preflight(self) -> None:
        """Fail on a bad gate bound, conn id or connection now: before any request, not after hours."""
        self.quality_gate()
        _ = self.hook.settings  # reads and checks the connection (API key, base URL, extras)

    def quality_gate(self) -> QualityGate:
        return QualityGate.from_params(**{name: getattr(self, name) for name in GATE_PARAMS})

    def deadline(self, context: Context, batch_test_id: str) -> float:
        return BatchTestState(context).deadline(batch_test_id, self.wait_timeout)

    def check_batch(self, context: Context, batch_test_id: str, deadline: float) -> dict[str, Any] | None:
        """One poll: the result once complete, else None; raises once the absolute deadline passed."""
        self._waiting_for = batch_test_id
        try:
            batch = self.hook.get_batch_test(batch_test_id)
        except RetellPermanentError as exc:
            raise self._permanent_error(context, exc, batch_test_id) from exc
        if batch.is_complete:
            return self.finish(context, batch, self.quality_gate())
        self.log.info("Batch test %s: %s", batch_test_id, batch.progress())
        if time.time() >= deadline:
            BatchTestState(context).forget()
            raise RetellTimeoutError(self.timeout_message(batch_test_id, batch))
        return None

    def wait_for_batch(self, context: Context, batch_test_id: str, *, deferrable: bool) -> dict[str, Any]:
        """Return the result once the batch completes; defers instead of polling when asked."""
        deadline = self.deadline(context, batch_test_id)
        while (result := self.check_batch(context, batch_test_id, deadline)) is None:
            remaining = deadline - time.time()
            if deferrable:
                from airflow_provider_retell.triggers.batch_test import RetellBatchTestTrigger

                self.defer(  # type: ignore[attr-defined]
                    trigger=RetellBatchTestTrigger(
                        batch_test_id=batch_test_id,
                        retell_conn_id=self.retell_conn_id,
                        poll_interval=self.poll_interval,
                        end_time=deadline,
                    ),
                    method_name="execute_complete",
                    timeout=timedelta(seconds=max(remaining, 0)) + DEFER_GRACE,
                )
            time.sleep(max(0.0, min(self.poll_interval, remaining)))
        return result

    def resume_execution(self, next_method: str, next_kwargs: dict[str, Any] | None, context: Context) -> Any:
        """A deferral that Airflow timed out (triggerer down past the deadline) fails like our own timeout."""
        try:
            return super().resume_execution(next_method, next_kwargs, context)  # type: ignore[misc]
        except (TaskDeferralTimeout, AirflowSensorTimeout) as exc:
            state = BatchTestState(context)
            batch_test_id = str(state.get().get("batch_test_id") or getattr(self, "batch_test_id", "?"))
            state.forget()
            raise RetellTimeoutError(self.timeout_message(batch_test_id, None)) from exc

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> dict[str, Any]:
        """Resume from the trigger; any event not understood fails the task (fail closed)."""
        if not isinstance(event, dict) or not isinstance(event.get("batch_test_id"), str):
            raise RetellError(f"Unexpected event from the Retell trigger: {event!r}")
        batch_test_id, status = event["batch_test_id"], event.get("status")
        if status == "complete":
            from airflow_provider_retell.models import BatchTest, parse_response

            batch = parse_response(BatchTest, event.get("batch_test"), method="GET", path="(trigger event)")
            if batch.is_complete and batch.id == batch_test_id:
                return self.finish(context, batch, self.quality_gate())
        elif status == "timeout":
            BatchTestState(context).forget()
            raise RetellTimeoutError(str(event.get("message") or self.timeout_message(batch_test_id, None)))
        elif status == "error":
            status_code = event.get("status_code")
            if status_code in PERMANENT_STATUSES:
                path = f"/get-batch-test/{batch_test_id}"
                exc = RetellPermanentError(
                    str(event.get("message")), status_code=status_code, method="GET", path=path
                )
                raise self._permanent_error(context, exc, batch_test_id)
            raise RetellAPIError(f"while waiting for batch test {batch_test_id}: {event.get('message')}")
        raise RetellError(f"Unexpected event from the Retell trigger: {event!r}")

    def _permanent_error(
        self, context: Context, exc: RetellPermanentError, batch_test_id: str
    ) -> RetellPermanentError:
        """Name the argument; a batch Retell does not know is forgotten, so a cleared task starts anew."""
        if exc.status_code == 404:
            BatchTestState(context).forget()
        return reraise_for_argument(exc, "batch_test_id", batch_test_id)

    def finish(self, context: Context, batch: BatchTest, gate: QualityGate) -> dict[str, Any]:
        """Build the result, push it, and raise if the gate says no. The stored batch is forgotten."""
        runs = self.hook.list_test_runs(batch.id) if batch.fail_count + batch.error_count else []
        result = build_result(batch, runs, gate, agent_id=self.agent_id)
        BatchTestState(context).forget()
        self.log.info(
            "Batch test %s complete: %d passed, %d failed, %d errored of %d; gate %s",
            batch.id,
            result["pass_count"],
            result["fail_count"],
            result["error_count"],
            result["total_count"],
            "passed" if result["gate_passed"] else "FAILED",
        )
        if result["failed_test_cases"]:
            self.log.info("Failed test cases:\n%s", failed_cases_table(result["failed_test_cases"]))
        if not result["gate_passed"]:
            # Pushed before raising, so an ``all_done`` report task still reads the counts.
            context["ti"].xcom_push(key="return_value", value=result)
            raise RetellQualityGateError(gate_failure_message(result))
        return result

    def timeout_message(self, batch_test_id: str, batch: BatchTest | None) -> str:
        progress = f" ({batch.progress()})" if batch else ""
        return (
            f"Timed out after {self.wait_timeout:.0f}s waiting for Retell batch test "
            f"{batch_test_id}{progress}. {still_running_message(batch_test_id)}"
        )

    def on_kill(self) -> None:
        batch_test_id = getattr(self, "_waiting_for", None)
        if batch_test_id:
            self.log.warning("Task killed. %s", still_running_message(batch_test_id))


def reraise_for_argument(exc: RetellPermanentError, argument: str, value: Any) -> RetellPermanentError:
    """The same API error, with the message naming the task argument that caused it."""
    return RetellPermanentError(
        f"{argument}={value!r}: {exc.message}", status_code=exc.status_code, method=exc.method, path=exc.path
    )
