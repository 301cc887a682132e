"""Start a Retell test run (one batch, or several past 200 cases); optionally wait and gate on it."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator
from airflow.sdk.configuration import conf

from airflow_provider_retell.exceptions import RetellInputError
from airflow_provider_retell.gate import GATE_PARAMS, QualityGate, check_literals, gate_from
from airflow_provider_retell.links import RetellAgentLink
from airflow_provider_retell.validation import (
    check_target,
    chunked,
    count_argument,
    poll_interval_seconds,
    timeout_seconds,
)

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_retell.contracts import BatchTestResult
    from airflow_provider_retell.models import TestableEngine
    from airflow_provider_retell.waiting import BatchTestWaiter

# Imported at module level: only what a DAG parse needs (argument checks, the link). The waiting
# core, the hook and the models load when a task runs (tests/unit/test_parse_imports.py).

MAX_RERUNS = 5


class RetellBatchTestOperator(BaseOperator):
    """Start a test run of a Retell agent or response engine and push its batch ids to XCom at once.

    A run is one batch, or several when it has more than 200 test cases. A task retry reattaches
    to the batches an earlier try started and starts only the missing ones (Retell bills every run
    and has no idempotency key); clearing the task after a verdict starts a new run.

    :param response_engine: ``{"type": "retell-llm", "llm_id": ..., "version"?: int}`` or
        ``{"type": "conversation-flow", "conversation_flow_id": ..., "version"?: int}``.
    :param agent_id: test this agent's response engine instead (exactly one of the two).
    :param agent_version: the agent version to resolve; latest when None.
    :param test_case_definition_ids: the ids to run, split into batches of 200; None runs every
        definition of the engine.
    :param wait_for_completion: wait and return the result dict instead of the batch id(s).
    :param deferrable: wait in the triggerer instead of a worker slot. Defaults to Airflow's
        ``[operators] default_deferrable`` (False unless configured). Only when waiting.
    :param poll_interval: seconds (or a timedelta) between status checks while waiting (0.1 s to
        1 day).
    :param timeout: how long the run may take, creates included (seconds or timedelta, up to 7
        days); the deadline is fixed when the run starts and never extended by retries. When it
        passes the task fails and the batches keep running in Retell (there is no cancel API).
    :param rerun_failed: rerun the failed and errored cases up to this many times, in new batches;
        each case is judged on its last run (needs ``wait_for_completion``).
    :param max_test_cases: most test cases the run may start, reruns included (None: no cap).
    :param max_failures: most failed cases the gate allows (None: no bound). Only when waiting.
    :param max_errors: most errored cases the gate allows (None: no bound). Only when waiting.
    :param min_pass_rate: least pass/total in 0..1 (None: no bound). Only when waiting.
    :param fail_on_empty: a run with no cases fails the gate. Only when waiting.
    :param baseline: compare each case with its earlier verdict: ``"previous"`` (the engine's
        earlier runs) or a batch test id; None compares nothing. Only when waiting.
    :param baseline_lookback: earlier batches looked through for ``"previous"`` (1-200).
    :param max_regressions: most regressions the gate allows with a baseline (None: no bound).
    :param report_path: where to write a JUnit XML report (templated; an absolute path or a URL
        Airflow's ObjectStoragePath supports). Only when waiting.
    :param retell_conn_id: the Retell connection (type ``retell``).
    :param kwargs: any other ``BaseOperator`` argument (``task_id``, ``retries``, ...).
    """

    template_fields: Sequence[str] = (
        "response_engine",
        "agent_id",
        "agent_version",
        "test_case_definition_ids",
        *GATE_PARAMS,
        "baseline",
        "report_path",
    )
    template_fields_renderers = {"response_engine": "json", "test_case_definition_ids": "json"}
    operator_extra_links = (RetellAgentLink(),)
    ui_color = "#e8f0fe"

    def __init__(
        self,
        *,
        response_engine: dict[str, Any] | None = None,
        agent_id: str | None = None,
        agent_version: int | None = None,
        test_case_definition_ids: list[str] | None = None,
        wait_for_completion: bool = False,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poll_interval: float | timedelta = 60,
        timeout: float | timedelta = timedelta(hours=6),
        rerun_failed: int = 0,
        max_test_cases: int | None = None,
        max_failures: int | None = 0,
        max_errors: int | None = 0,
        min_pass_rate: float | None = None,
        fail_on_empty: bool = True,
        baseline: str | None = None,
        baseline_lookback: int = 20,
        max_regressions: int | None = 0,
        report_path: str | None = None,
        retell_conn_id: str = "retell_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.response_engine = response_engine
        self.agent_id = agent_id
        self.agent_version = agent_version
        self.test_case_definition_ids = test_case_definition_ids
        self.wait_for_completion = wait_for_completion
        self.deferrable = deferrable
        self.poll_interval = poll_interval_seconds(poll_interval)
        self.wait_timeout = timeout_seconds(timeout)
        self.rerun_failed = rerun_failed
        self.max_test_cases = max_test_cases
        self.max_failures = max_failures
        self.max_errors = max_errors
        self.min_pass_rate = min_pass_rate
        self.fail_on_empty = fail_on_empty
        self.baseline, self.baseline_lookback = baseline, baseline_lookback
        self.max_regressions, self.report_path = max_regressions, report_path
        self.retell_conn_id = retell_conn_id
        count_argument(rerun_failed, "rerun_failed", minimum=0, maximum=MAX_RERUNS)
        count_argument(max_test_cases, "max_test_cases", minimum=1, none_ok=True)
        if not wait_for_completion:
            changed = [p for p in GATE_PARAMS if getattr(self, p) != getattr(QualityGate(), p)]
            changed += [p for p in ("rerun_failed", "baseline", "report_path") if getattr(self, p)]
            if changed:
                raise RetellInputError(
                    f"{', '.join(changed)} only applies when the task waits: set wait_for_completion=True, "
                    "or put the gate on RetellBatchTestSensor"
                )
        check_target(response_engine, agent_id, agent_version, test_case_definition_ids, skip_templated=True)
        check_literals(self)

    def _waiter(self, context: Context) -> BatchTestWaiter:
        from airflow_provider_retell.waiting import BatchTestWaiter, WaitPolicy

        policy = WaitPolicy.of(
            self,
            poll_interval=self.poll_interval,
            timeout=self.wait_timeout,
            rerun_failed=self.rerun_failed,
            max_test_cases=self.max_test_cases,
        )
        self._active = BatchTestWaiter(self, context, policy)
        return self._active

    def execute(self, context: Context) -> Any:
        engine, ids = self._check_input()
        waiter = self._waiter(context)
        waiter.preflight()
        waiter.announce(record.batch_test_ids if (record := waiter.load()) else [])
        if self.agent_id:
            context["ti"].xcom_push(key="agent_id", value=self.agent_id)
        if record is None:
            from airflow_provider_retell.planning import plan_ids, resolve_engine

            if engine is None:
                assert isinstance(self.agent_id, str)  # checked above: exactly one of the two
                engine = resolve_engine(waiter.hook, self.agent_id, self.agent_version)
            record = waiter.new_run(engine, chunked(plan_ids(waiter.hook, engine, ids)))
        elif started := record.batch_test_ids:
            self.log.info("Reattaching to the batches an earlier try of this task started: %s", started)
            context["ti"].xcom_push(key="batch_test_id", value=started[0])
            context["ti"].xcom_push(key="batch_test_ids", value=started)
        if not self.wait_for_completion:
            if record.verdict is None:
                waiter.start_batches(record)
                started = record.batch_test_ids
                waiter.conclude(record, started[0] if len(started) == 1 else started)
            return record.verdict
        return waiter.drive(record, "defer" if self.deferrable else "block")

    def execute_complete(self, context: Context, event: Any = None) -> BatchTestResult:
        """Resume from the trigger; any event not understood fails the task (fail closed)."""
        from airflow_provider_retell.contracts import BatchTestEvent

        return self._waiter(context).resume(BatchTestEvent.from_payload(event))

    def resume_execution(self, next_method: str, next_kwargs: dict[str, Any] | None, context: Context) -> Any:
        return self._waiter(context).after_deferral(
            lambda: super(RetellBatchTestOperator, self).resume_execution(next_method, next_kwargs, context)
        )

    def _check_input(self) -> tuple[TestableEngine | None, list[str] | None]:
        """Check every rendered argument before any HTTP call; each error names its argument."""
        from airflow_provider_retell.models import parse_engine_input

        ids = check_target(
            self.response_engine, self.agent_id, self.agent_version, self.test_case_definition_ids
        )
        gate_from(self)
        return (None if self.response_engine is None else parse_engine_input(self.response_engine)), ids

    def on_kill(self) -> None:
        waiter = getattr(self, "_active", None)
        if waiter is not None:
            waiter.killed()
