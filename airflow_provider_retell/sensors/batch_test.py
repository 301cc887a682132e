"""Wait for a Retell test run (one batch id or several) and gate on its result."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseSensorOperator, PokeReturnValue
from airflow.sdk.configuration import conf
from airflow.sdk.exceptions import AirflowRescheduleException, AirflowSensorTimeout

from airflow_provider_retell.exceptions import RetellTimeoutError
from airflow_provider_retell.gate import GATE_PARAMS, check_literals
from airflow_provider_retell.links import RetellAgentLink
from airflow_provider_retell.validation import (
    poll_interval_seconds,
    templated,
    timeout_seconds,
    validate_id,
    validate_ids,
)

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_retell.contracts import BatchTestResult, RunRecord
    from airflow_provider_retell.waiting import BatchTestWaiter

# Imported at module level: only what a DAG parse needs (argument checks, the link). The waiting
# core, the hook and the models load when a task runs (tests/unit/test_parse_imports.py).


class RetellBatchTestSensor(BaseSensorOperator):
    """Wait for a run's batch tests to complete, return the result dict, and fail if the gate says no.

    Works in ``poke`` and ``reschedule`` mode, or deferred to the triggerer (``deferrable=True``).
    The timeout is an absolute deadline, fixed at the first poke and kept across retries and
    reschedules. While Retell is unavailable the sensor keeps waiting (backing off, honouring
    ``Retry-After``) until that deadline; it never spends a task retry on an outage.

    :param batch_test_id: the batch to wait for, or a list judged as one run: ``start.output`` of the
        operator, or ``start.output["batch_test_ids"]``.
    :param max_failures: most failed cases the gate allows (None: no bound).
    :param max_errors: most errored cases the gate allows (None: no bound).
    :param min_pass_rate: least pass/total in 0..1 (None: no bound).
    :param fail_on_empty: a run with no cases fails the gate.
    :param baseline: compare each case with its earlier verdict: ``"previous"`` (the engine's
        earlier runs) or a batch test id; None compares nothing.
    :param baseline_lookback: earlier batches looked through for ``"previous"`` (1-200).
    :param max_regressions: most regressions the gate allows with a baseline (None: no bound).
    :param report_path: where to write a JUnit XML report (templated; an absolute path or a URL).
    :param agent_id: the agent the batches test, for the result's ``url`` and the extra link
        (e.g. ``start.output["agent_id"]``); None shows no link.
    :param deferrable: wait in the triggerer instead of a worker slot (recommended). Defaults to
        Airflow's ``[operators] default_deferrable`` (False unless configured).
    :param poke_interval: seconds between status checks, or a timedelta (0.1 s to 1 day); also the
        trigger's poll interval when deferred.
    :param timeout: how long the run may take from the first check (seconds or timedelta, up to 7
        days); an absolute deadline, never extended by retries, reschedules or triggerer restarts. When
        it passes the task fails and the batches keep running in Retell (there is no cancel API).
    :param mode: ``"poke"`` (hold a worker slot between checks) or ``"reschedule"`` (free it); ignored
        when ``deferrable``. Prefer ``deferrable=True`` to reschedule mode: see the docs' troubleshooting
        page (apache/airflow#71172).
    :param retell_conn_id: the Retell connection (type ``retell``).
    :param kwargs: any other ``BaseSensorOperator`` argument (``task_id``, ``retries``, ...).
    """

    template_fields: Sequence[str] = ("batch_test_id", *GATE_PARAMS, "baseline", "report_path", "agent_id")
    operator_extra_links = (RetellAgentLink(),)
    ui_color = "#e8f0fe"

    def __init__(
        self,
        *,
        batch_test_id: str | list[str],
        max_failures: int | None = 0,
        max_errors: int | None = 0,
        min_pass_rate: float | None = None,
        fail_on_empty: bool = True,
        baseline: str | None = None,
        baseline_lookback: int = 20,
        max_regressions: int | None = 0,
        report_path: str | None = None,
        agent_id: str | None = None,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poke_interval: float | timedelta = 60,
        timeout: float | timedelta = timedelta(hours=6),
        mode: str = "poke",
        retell_conn_id: str = "retell_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(
            poke_interval=poll_interval_seconds(poke_interval, "poke_interval"),
            timeout=timeout_seconds(timeout),
            mode=mode,
            **kwargs,
        )
        self.batch_test_id = batch_test_id
        self.max_failures = max_failures
        self.max_errors = max_errors
        self.min_pass_rate = min_pass_rate
        self.fail_on_empty = fail_on_empty
        self.baseline, self.baseline_lookback = baseline, baseline_lookback
        self.max_regressions, self.report_path, self.agent_id = max_regressions, report_path, agent_id
        self.deferrable = deferrable
        self.retell_conn_id = retell_conn_id
        if not templated(batch_test_id):
            self._batch_test_ids()
        if agent_id is not None and not templated(agent_id):
            validate_id(agent_id, "agent_id")
        check_literals(self)

    def _batch_test_ids(self) -> list[str]:
        value = self.batch_test_id
        if isinstance(value, str):
            return [validate_id(value, "batch_test_id")]
        return validate_ids(value, argument="batch_test_id")

    def _waiter(self, context: Context) -> BatchTestWaiter:
        from airflow_provider_retell.waiting import BatchTestWaiter, WaitPolicy

        if self.agent_id is not None:
            validate_id(self.agent_id, "agent_id")
        policy = WaitPolicy.of(self, poll_interval=float(self.poke_interval), timeout=float(self.timeout))
        self._active = BatchTestWaiter(self, context, policy)
        return self._active

    def _record(self, waiter: BatchTestWaiter) -> RunRecord:
        """The stored run when it is for these batches (a retry, a reschedule); else a new one."""
        from airflow_provider_retell.contracts import RunRecord

        ids = self._batch_test_ids()
        record = waiter.load()
        if record is None or record.rounds[0].batch_test_ids != ids:
            record = RunRecord.for_batches(ids, float(self.timeout), waiter.max_tries())
            waiter.state.save(record)
        return record

    def execute(self, context: Context) -> Any:
        ids = self._batch_test_ids()
        waiter = self._waiter(context)
        waiter.preflight()
        waiter.announce(ids)
        if self.deferrable:
            return waiter.drive(self._record(waiter), "defer")
        try:
            return super().execute(context)
        except AirflowSensorTimeout as exc:
            record = waiter.load()
            waiter.state.forget()
            raise RetellTimeoutError(
                waiter.timeout_message(record.batch_test_ids if record else [], [])
            ) from exc

    def poke(self, context: Context) -> bool | PokeReturnValue:
        from airflow_provider_retell.waiting import NotYet

        waiter = getattr(self, "_active", None) or self._waiter(context)
        try:
            result = waiter.drive(self._record(waiter), "poke")
        except NotYet as later:
            self._pause(later.delay, waiter)
            return False
        return PokeReturnValue(is_done=True, xcom_value=result)

    def _pause(self, delay: float, waiter: BatchTestWaiter) -> None:
        """Honour a backoff or ``Retry-After`` longer than the poke interval, cut at the deadline."""
        record = waiter.load()
        wait = min(delay, max(record.deadline - time.time(), 0.0)) if record else delay
        if wait <= float(self.poke_interval):
            return
        if self.reschedule:
            raise AirflowRescheduleException(datetime.now(timezone.utc) + timedelta(seconds=wait))
        time.sleep(wait - float(self.poke_interval))

    def execute_complete(self, context: Context, event: Any = None) -> BatchTestResult:
        """Resume from the trigger; any event not understood fails the task (fail closed)."""
        from airflow_provider_retell.contracts import BatchTestEvent

        return self._waiter(context).resume(BatchTestEvent.from_payload(event))

    def resume_execution(self, next_method: str, next_kwargs: dict[str, Any] | None, context: Context) -> Any:
        return self._waiter(context).after_deferral(
            lambda: super(RetellBatchTestSensor, self).resume_execution(next_method, next_kwargs, context)
        )

    def on_kill(self) -> None:
        waiter = getattr(self, "_active", None)
        if waiter is not None:
            waiter.killed()
