"""Wait for a Retell batch test and gate on its result."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseSensorOperator, PokeReturnValue
from airflow.sdk.configuration import conf
from airflow.sdk.exceptions import AirflowSensorTimeout

from airflow_provider_retell.exceptions import RetellInputError, RetellTimeoutError
from airflow_provider_retell.validation import positive_seconds
from airflow_provider_retell.waiting import GATE_PARAMS, BatchTestState, BatchTestWaitMixin

if TYPE_CHECKING:
    from airflow.sdk import Context


class RetellBatchTestSensor(BatchTestWaitMixin, BaseSensorOperator):
    """Wait for a batch test to complete, return the result dict, and fail if the gate says no.

    Works in ``poke`` and ``reschedule`` mode, or deferred to the triggerer (``deferrable=True``).
    The timeout is an absolute deadline, fixed at the first poke and kept across retries and
    reschedules.

    :param batch_test_id: the batch to wait for, e.g. ``start.output`` of the operator.
    :param max_failures: most failed cases the gate allows (None: no bound).
    :param max_errors: most errored cases the gate allows (None: no bound).
    :param min_pass_rate: least pass/total in 0..1 (None: no bound).
    :param fail_on_empty: a batch with no cases fails the gate.
    :param retell_conn_id: the Retell connection.
    """

    template_fields: Sequence[str] = ("batch_test_id", *GATE_PARAMS)
    ui_color = "#e8f0fe"
    agent_id = None

    def __init__(
        self,
        *,
        batch_test_id: str,
        max_failures: int | None = 0,
        max_errors: int | None = 0,
        min_pass_rate: float | None = None,
        fail_on_empty: bool = True,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poke_interval: float | timedelta = 60,
        timeout: float | timedelta = timedelta(hours=6),
        mode: str = "poke",
        retell_conn_id: str = "retell_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(poke_interval=poke_interval, timeout=timeout, mode=mode, **kwargs)
        positive_seconds(self.poke_interval, "poke_interval")  # 0 would poll Retell in a tight loop
        positive_seconds(self.timeout, "timeout")
        self.batch_test_id = batch_test_id
        self.max_failures = max_failures
        self.max_errors = max_errors
        self.min_pass_rate = min_pass_rate
        self.fail_on_empty = fail_on_empty
        self.deferrable = deferrable
        self.retell_conn_id = retell_conn_id

    @property
    def poll_interval(self) -> float:  # type: ignore[override]
        return float(self.poke_interval)

    @property
    def wait_timeout(self) -> float:  # type: ignore[override]
        return float(self.timeout)

    def execute(self, context: Context) -> Any:
        if not isinstance(self.batch_test_id, str) or not self.batch_test_id.strip():
            raise RetellInputError(f"batch_test_id must be a non-empty string, got {self.batch_test_id!r}")
        self.preflight()
        if self.deferrable:
            return self.wait_for_batch(context, self.batch_test_id, deferrable=True)
        try:
            return super().execute(context)
        except AirflowSensorTimeout as exc:
            BatchTestState(context).forget()
            raise RetellTimeoutError(self.timeout_message(self.batch_test_id, None)) from exc

    def poke(self, context: Context) -> bool | PokeReturnValue:
        result = self.check_batch(context, self.batch_test_id, self.deadline(context, self.batch_test_id))
        return False if result is None else PokeReturnValue(is_done=True, xcom_value=result)
