"""The waiting core: one object that the operator and the sensor each own.

It holds the connection, the poll policy, the deadline, the gate and the run's record in Airflow's
``task_state_store`` (XComs are cleared when a new try starts; the store is not), and drives the
pure verdict step (``verdict.next_step``) until the run is judged: starting batches, waiting for
them (blocking, poking or deferred to the triggerer), listing runs, rerunning failed cases.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from typing import TYPE_CHECKING, Any, Literal

from airflow_provider_retell.exceptions import (
    RetellAPIError,
    RetellError,
    RetellInputError,
    RetellPermanentError,
    RetellQualityGateError,
    RetellTimeoutError,
    still_running_message,
)
from airflow_provider_retell.gate import QualityGate, gate_from
from airflow_provider_retell.links import DASHBOARD_AGENT_URL
from airflow_provider_retell.results import (
    asset_summary,
    build_result,
    counts_line,
    failed_cases_table,
    gate_failure_message,
    run_label,
)
from airflow_provider_retell.validation import PREVIOUS, check_baseline, check_report_path

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator, Context

    from airflow_provider_retell.baselines import Comparison
    from airflow_provider_retell.contracts import BatchTestEvent, BatchTestResult, RunRecord
    from airflow_provider_retell.hooks.retell import RetellHook
    from airflow_provider_retell.models import BatchTest, TestableEngine, TestRun
    from airflow_provider_retell.verdict import Outcome

# Loaded when a task runs, never at DAG parse (the operator and the sensor import it in their methods);
# the hook, the models and the trigger load later still, where they are used.

#: task_state_store key of the run's record (``contracts.RunRecord``).
STATE_KEY = "retell_batch_test"
#: Extra time the scheduler grants a deferral past the trigger's own deadline (a backstop only).
DEFER_GRACE = timedelta(minutes=5)

Mode = Literal["block", "defer", "poke"]


class NotYet(Exception):
    """A poke found the run unfinished (or Retell briefly unavailable): poke again after ``delay``."""

    def __init__(self, delay: float) -> None:
        super().__init__(f"not finished; next look in {delay:.1f}s")
        self.delay = delay


class RunState:
    """The run's record in ``task_state_store``; a task without a store cannot record a create intent."""

    def __init__(self, context: Context) -> None:
        self._store = context.get("task_state_store")
        self._memory: dict[str, Any] | None = None

    def load(self, timeout: float) -> RunRecord | None:
        from airflow_provider_retell.contracts import RunRecord

        value = self._store.get(STATE_KEY) if self._store is not None else self._memory
        return RunRecord.from_store(value, timeout)

    def save(self, record: RunRecord) -> None:
        if self._store is None:
            self._memory = record.to_store()
        else:
            self._store.set(STATE_KEY, record.to_store())

    def forget(self) -> None:
        self._memory = None
        if self._store is not None:
            self._store.delete(STATE_KEY)

    def require_durable(self) -> None:
        if self._store is None:
            raise RetellError(
                "The task context has no task_state_store, so a create's intent could not outlive this try; "
                "not sending one (the provider needs Airflow 3.3)"
            )


class _IntentInRecord:
    """The create protocol's intent store: a field of the run's record, saved durably each time. The
    batch's id lands in its slot of the plan in the same write that clears the intent."""

    def __init__(self, state: RunState, record: RunRecord, round_: int, index: int) -> None:
        self.state, self.record, self.slot = state, record, (round_, index)

    def load(self) -> dict[str, Any] | None:
        return self.record.create_intent

    def save(self, intent: dict[str, Any]) -> None:
        self.record.create_intent = intent
        self.state.save(self.record)

    def clear(self) -> None:
        self.record.create_intent = None
        self.state.save(self.record)

    def resolve(self, batch: BatchTest) -> None:
        round_, index = self.slot
        self.record.rounds[round_].batch_test_ids[index] = batch.id
        self.clear()


@dataclass(frozen=True)
class WaitPolicy:
    """What the task asked for: connection, polling, deadline, gate and the run's shape."""

    retell_conn_id: str
    poll_interval: float
    timeout: float
    gate: QualityGate
    agent_id: str | None = None
    rerun_failed: int = 0
    max_test_cases: int | None = None
    baseline: str | None = None  # "previous" or a batch test id
    baseline_lookback: int = 20
    report_path: str | None = None

    @classmethod
    def of(cls, task: Any, **fields: Any) -> WaitPolicy:
        """The operator's or the sensor's rendered arguments, checked: gate, baseline, report, connection."""
        check_baseline(task.baseline, task.baseline_lookback)
        return cls(
            retell_conn_id=task.retell_conn_id,
            gate=gate_from(task),
            agent_id=task.agent_id,
            baseline=task.baseline,
            baseline_lookback=task.baseline_lookback,
            report_path=check_report_path(task.report_path),
            **fields,
        )


class BatchTestWaiter:
    """Drives one task's run to its verdict; owned by the operator and by the sensor."""

    def __init__(self, task: BaseOperator, context: Context, policy: WaitPolicy) -> None:
        self.task, self.context, self.policy = task, context, policy
        self.log = task.log
        self.state = RunState(context)
        self.batches: dict[str, BatchTest] = {}  # complete batches seen in this try
        self._hook: RetellHook | None = None

    @property
    def hook(self) -> RetellHook:
        if self._hook is None:
            from airflow_provider_retell.hooks.retell import RetellHook

            self._hook = RetellHook(retell_conn_id=self.policy.retell_conn_id)
        return self._hook

    def preflight(self) -> None:
        """Fail on a bad connection now, before any request: not after hours of waiting."""
        _ = self.hook.settings

    def announce(self, batch_test_ids: list[str]) -> None:
        """The first lines of the task log: the run's batches and, when the agent is known, its page."""
        if batch_test_ids:
            self.log.info("Retell batch tests of this run: %s", ", ".join(batch_test_ids))
        if self.policy.agent_id:
            self.log.info("Retell agent page: %s", DASHBOARD_AGENT_URL.format(agent_id=self.policy.agent_id))

    def load(self) -> RunRecord | None:
        """The run an earlier try of this task left, unless a person has cleared the task since.

        Airflow raises ``max_tries`` when a task is cleared by hand and never on a retry: a cleared
        task whose run had a verdict starts a new run; one cleared mid-run goes on with the same
        batches (nothing is billed twice) under a fresh deadline."""
        record = self.state.load(self.policy.timeout)
        if record is None:
            return None
        now, then = self.max_tries(), record.max_tries
        cleared = now is not None and then is not None and now != then
        if record.verdict is not None and (cleared or now is None or then is None):
            self.state.forget()
            return None
        if cleared:
            self.log.info("The task was cleared mid-run: going on with its batches under a fresh deadline")
            record.deadline = time.time() + self.policy.timeout
            record.max_tries = now
            self.state.save(record)
        return record

    def max_tries(self) -> int | None:
        value = getattr(self.context.get("ti"), "max_tries", None)
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    def conclude(self, record: RunRecord, verdict: Any) -> Any:
        """Keep the verdict (one write), then hand it out: a retry after this point returns it again."""
        record.verdict = verdict
        self.state.save(record)
        return verdict

    # -- the run ------------------------------------------------------------------------------------

    def new_run(self, engine: TestableEngine, chunks: list[list[str]]) -> RunRecord:
        """Record the plan (ordered ids, split by 200) before anything is billed; never recomputed."""
        from airflow_provider_retell.contracts import Round, RunRecord

        self.check_cost(sum(map(len, chunks)), 0)
        record = RunRecord(
            deadline=time.time() + self.policy.timeout,
            engine=engine.model_dump(exclude_none=True),
            agent_id=self.policy.agent_id,
            rounds=[Round(test_case_definition_ids=chunks, batch_test_ids=[None] * len(chunks))],
            max_tries=self.max_tries(),
        )
        self.state.save(record)
        return record

    def start_batches(self, record: RunRecord) -> None:
        """Start every batch of the last round that has none yet (a retry starts only the missing ones)."""
        from airflow_provider_retell.verdict import StartBatch, next_step

        while isinstance(step := next_step(record, {}, {}), StartBatch):
            self._start(record, step)

    def drive(self, record: RunRecord, mode: Mode) -> BatchTestResult:
        """Take the run from wherever it stands to its result (raises ``NotYet`` in poke mode)."""
        from airflow_provider_retell.operations import list_runs
        from airflow_provider_retell.verdict import Done, ListRuns, Rerun, StartBatch, WaitFor, next_step

        if record.verdict is not None:  # a retry after the verdict: the same answer, nothing billed
            self.log.info(
                "This run already has its verdict (an earlier try ended after it): %s", record.batch_test_ids
            )
            return self.deliver(record.verdict)
        runs: dict[str, list[TestRun]] = {}
        while True:
            step = next_step(record, self.batches, runs, rerun_failed=self.policy.rerun_failed)
            if isinstance(step, StartBatch):
                self._start(record, step)
            elif isinstance(step, WaitFor):
                self._wait(record, step.batch_test_ids, mode)
            elif isinstance(step, ListRuns):
                for batch_test_id in step.batch_test_ids:
                    expected = self.batches[batch_test_id].total_count
                    make = partial(
                        list_runs, batch_test_id, retry=None, end=record.deadline, expected=expected
                    )
                    runs[batch_test_id] = self._read(record, mode, make)
            elif isinstance(step, Rerun):
                self._rerun(record, step.test_case_definition_ids, step.outcome)
            else:
                assert isinstance(step, Done)
                return self._finish(record, step.outcome, mode)

    def resume(self, event: BatchTestEvent) -> BatchTestResult:
        """Go on from the trigger's event; anything not understood has failed closed already."""
        from airflow_provider_retell.models import BatchTest, parse_response

        record = self.load()
        if record is None:  # no store (or it was cleared): the event names the batches
            from airflow_provider_retell.contracts import RunRecord

            record = RunRecord.for_batches(list(event.batch_test_ids), self.policy.timeout, self.max_tries())
        if event.status == "timeout":
            self.state.forget()
            raise RetellTimeoutError(event.message or self.timeout_message(event.batch_test_ids, []))
        if event.status == "error":
            if event.status_code is not None:
                path = f"/get-batch-test/{event.batch_test_id}"
                error = RetellPermanentError(
                    event.message or "", status_code=event.status_code, method="GET", path=path
                )
                raise self._permanent(error, event.batch_test_ids)
            raise RetellAPIError(f"while waiting for {', '.join(event.batch_test_ids)}: {event.message}")
        for summary in event.batch_tests:
            batch = parse_response(BatchTest, summary, method="GET", path="(trigger event)")
            if not batch.is_complete or batch.id not in event.batch_test_ids:
                raise RetellError(
                    f"Unexpected event from the Retell trigger: batch {batch.id} is {batch.status}"
                )
            self.batches[batch.id] = batch
        if missing := [b for b in event.batch_test_ids if b not in self.batches]:
            raise RetellError(f"Unexpected event from the Retell trigger: no complete batch for {missing}")
        return self.drive(record, "defer")

    # -- steps --------------------------------------------------------------------------------------

    def check_cost(self, cases: int, started: int) -> None:
        cap = self.policy.max_test_cases
        if cap is not None and started + cases > cap:
            raise RetellInputError(
                f"max_test_cases={cap}: starting {cases} more test cases would bring this run to "
                f"{started + cases}; nothing more was started"
            )

    def _start(self, record: RunRecord, step: Any) -> None:
        from airflow_provider_retell.models import parse_engine_input

        self.state.require_durable()
        if record.create_intent is None:
            self.check_cost(len(step.test_case_definition_ids), record.started_cases)
            if time.time() >= record.deadline:
                raise RetellTimeoutError(
                    f"The run's deadline passed before all of its batches could start; nothing more was "
                    f"started. {still_running_message(record.batch_test_ids) if record.batch_test_ids else ''}"
                )
        assert record.engine is not None
        batch = self.hook.create_batch_test(
            parse_engine_input(record.engine),
            step.test_case_definition_ids,
            intent_store=_IntentInRecord(self.state, record, step.round, step.index),
            end=record.deadline,
            patient=bool(record.batch_test_ids),  # once anything is billed, an outage only means "later"
        )
        ids = record.batch_test_ids
        ti = self.context["ti"]
        ti.xcom_push(key="batch_test_id", value=ids[0])
        ti.xcom_push(key="batch_test_ids", value=ids)
        self.log.info(
            "Started Retell batch test %s with %d test cases (%d of %d batches of this round)",
            batch.id,
            len(step.test_case_definition_ids),
            step.index + 1,
            len(record.rounds[step.round].batch_test_ids),
        )

    def _rerun(self, record: RunRecord, ids: list[str], outcome: Outcome) -> None:
        from airflow_provider_retell.contracts import Round
        from airflow_provider_retell.validation import chunked

        self.check_cost(len(ids), record.started_cases)
        number = len(record.rounds)
        self.log.info(
            "Rerun %d of %d: %d failed or errored test cases run again: %s",
            number,
            self.policy.rerun_failed,
            len(ids),
            ", ".join(r.name for r in outcome.failed[:20]),
        )
        chunks = chunked(ids)
        record.rounds.append(Round(test_case_definition_ids=chunks, batch_test_ids=[None] * len(chunks)))
        self.state.save(record)

    def _wait(self, record: RunRecord, ids: list[str], mode: Mode) -> None:
        """Until every batch in ``ids`` is complete: one look first, then block, defer or poke again."""
        from airflow_provider_retell.operations import TimedOut, poll_once, poll_until_complete
        from airflow_provider_retell.retry import OutagePolicy

        policy = OutagePolicy(self.policy.poll_interval)
        latest: dict[str, BatchTest] = {}
        error: RetellAPIError | None = None
        try:
            self.hook.run(poll_once(ids, self.batches, latest, end=record.deadline))
        except RetellAPIError as exc:
            if not exc.transient:
                raise self._permanent(exc, ids) from None
            error = exc
            self.log.warning("Reading batch test status failed (%s): will try again", exc)
        pending = [i for i in ids if i not in self.batches]
        if not pending:
            return
        if time.time() >= record.deadline:
            self.state.forget()
            raise RetellTimeoutError(self.timeout_message(ids, list(latest.values())))
        if latest and error is None:
            from airflow_provider_retell.operations import describe

            self.log.info("%s", describe([latest[i] for i in ids if i in latest]))
        if mode == "poke":
            raise NotYet(policy.delay(1 if error else 0, error))
        next_poll = time.time() + policy.delay(1 if error else 0, error)
        if mode == "defer":
            self._defer(record, pending, next_poll)
        try:
            operation = poll_until_complete(
                pending, policy, record.deadline, self.log, done=self.batches, first_poll_at=next_poll
            )
            self.hook.run(operation)
        except TimedOut as exc:
            self.state.forget()
            raise RetellTimeoutError(
                self.timeout_message(ids, list(exc.latest.values()), exc.error)
            ) from None
        except RetellAPIError as exc:
            raise self._permanent(exc, pending) from None

    def _defer(self, record: RunRecord, pending: list[str], first_poll_at: float) -> None:
        from airflow_provider_retell.triggers.batch_test import RetellBatchTestTrigger

        now = time.time()
        self.task.defer(
            trigger=RetellBatchTestTrigger(
                batch_test_ids=pending,
                retell_conn_id=self.policy.retell_conn_id,
                poll_interval=self.policy.poll_interval,
                end_time=record.deadline,
                first_poll_at=min(first_poll_at, record.deadline),
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=max(record.deadline - now, 0)) + DEFER_GRACE,
        )

    def _read(self, record: RunRecord, mode: Mode, make: Callable[[], Any]) -> Any:
        """A read while waiting: the outage policy (patient until the deadline; one look when poking)."""
        from airflow_provider_retell.operations import TimedOut, patiently
        from airflow_provider_retell.retry import OutagePolicy

        policy = OutagePolicy(self.policy.poll_interval)
        try:
            if mode == "poke":
                return self.hook.run(make())
            return self.hook.run(patiently(make, policy, record.deadline, self.log))
        except TimedOut as exc:
            self.state.forget()
            raise RetellTimeoutError(self.timeout_message(record.batch_test_ids, [], exc.error)) from None
        except RetellAPIError as exc:
            if mode == "poke" and exc.transient:
                self.log.warning("%s: will try again", exc)
                raise NotYet(policy.delay(1, exc)) from None
            raise self._permanent(exc, record.batch_test_ids) from None

    def _finish(self, record: RunRecord, outcome: Outcome, mode: Mode) -> BatchTestResult:
        """Compare with the baseline, build the result, write the report, keep the verdict, deliver."""
        agent_id = record.agent_id or self.policy.agent_id
        comparison = self._compare(record, outcome, mode) if self.policy.baseline else None
        result = build_result(outcome, self.policy.gate, agent_id=agent_id, comparison=comparison)
        if self.policy.report_path:
            from airflow_provider_retell.reports import junit_xml, write_report

            report = junit_xml(result, outcome.final_runs, outcome.flaky, agent_id)
            result["report_path"] = write_report(self.policy.report_path, report)
            self.log.info("JUnit report written to %s", result["report_path"])
        self.conclude(record, result)
        verdict = "passed" if result["gate_passed"] else "FAILED"
        self.log.info("%s complete: %s; gate %s", run_label(result), counts_line(result), verdict)
        for case in result["flaky_test_cases"]:
            self.log.info(
                "Flaky: %s [%s] %s, then passed on a rerun",
                case["name"],
                case["test_case_definition_id"],
                case["failed_status"],
            )
        changes = [("Regressed", c) for c in result["regressions"]] + [("Fixed", c) for c in result["fixed"]]
        for label, change in changes:
            self.log.info(
                "%s since the baseline: %s [%s]", label, change["name"], change["test_case_definition_id"]
            )
        if result["failed_test_cases"]:
            self.log.info("Failed test cases:\n%s", failed_cases_table(result["failed_test_cases"]))
        return self.deliver(result)

    def _compare(self, record: RunRecord, outcome: Outcome, mode: Mode) -> Comparison:
        """The baseline's verdicts, read with the patience of a wait, compared with this run's."""
        from airflow_provider_retell.baselines import batch_verdicts, compare, earlier_verdicts
        from airflow_provider_retell.models import parse_engine_input

        engine = parse_engine_input(outcome.batches[0].response_engine.model_dump(exclude_none=True))
        baseline, exclude = self.policy.baseline, set(record.batch_test_ids)
        if baseline == PREVIOUS:
            make = partial(earlier_verdicts, engine, exclude, self.policy.baseline_lookback, record.deadline)
        else:
            assert baseline is not None
            make = partial(batch_verdicts, baseline, record.deadline)
        try:
            verdicts, ids = self._read(record, mode, make)
        except RetellPermanentError as exc:
            raise RetellPermanentError(
                f"baseline={baseline!r}: {exc.message}",
                status_code=exc.status_code,
                method=exc.method,
                path=exc.path,
            ) from None
        return compare(outcome.final_runs, verdicts, ids)

    def deliver(self, result: BatchTestResult) -> BatchTestResult:
        """Return the result, or push it and raise when the gate said no (an ``all_done`` report task
        still reads the counts)."""
        if not result["gate_passed"]:
            self.context["ti"].xcom_push(key="return_value", value=result)
            raise RetellQualityGateError(gate_failure_message(result))
        self._emit_assets(result)
        return result

    def _emit_assets(self, result: BatchTestResult) -> None:
        """A green gate's summary on every outlet's event; a failed gate fails the task, so emits none.
        An ``AssetAlias`` outlet (a mapped gate) gets an event for ``retell://agent/<id>``."""
        outlets = list(getattr(self.task, "outlets", None) or [])
        if not outlets:
            return
        from airflow.sdk import Asset, AssetAlias

        events = self.context["outlet_events"]
        summary = asset_summary(result)
        for outlet in outlets:
            if isinstance(outlet, AssetAlias):
                engine = result["response_engine"]
                name = self.policy.agent_id or engine.get("llm_id") or engine.get("conversation_flow_id")
                kind = "agent" if self.policy.agent_id else "engine"
                events[outlet].add(Asset(f"retell://{kind}/{name}"), extra=summary)
            elif isinstance(outlet, Asset):
                events[outlet].extra = summary

    def after_deferral(self, resume: Callable[[], Any]) -> Any:
        """A deferral that Airflow timed out (no triggerer answered in time) fails like our own timeout."""
        from airflow.sdk.exceptions import AirflowSensorTimeout, TaskDeferralTimeout

        try:
            return resume()
        except (TaskDeferralTimeout, AirflowSensorTimeout) as exc:
            record = self.load()
            self.state.forget()
            raise RetellTimeoutError(
                self.timeout_message(record.batch_test_ids if record else [], [])
            ) from exc

    def killed(self) -> None:
        record = self.load()
        if record is not None and record.batch_test_ids:
            self.log.warning("Task killed. %s", still_running_message(record.batch_test_ids))

    # -- messages -----------------------------------------------------------------------------------

    def _permanent(self, exc: RetellAPIError, ids: list[str]) -> RetellAPIError:
        """Name the argument; a batch Retell does not know is forgotten, so a cleared task starts anew."""
        if not isinstance(exc, RetellPermanentError):
            return exc
        if exc.status_code == 404:
            self.state.forget()
        value = ids[0] if len(ids) == 1 else ids
        return RetellPermanentError(
            f"batch_test_id={value!r}: {exc.message}",
            status_code=exc.status_code,
            method=exc.method,
            path=exc.path,
        )

    def timeout_message(
        self, ids: list[str], latest: list[BatchTest], error: RetellAPIError | None = None
    ) -> str:
        from airflow_provider_retell.operations import describe

        progress = f" ({describe(latest)})" if latest else ""
        cause = f" The last read failed: {error}." if error else ""
        return (
            f"Timed out after {self.policy.timeout:.0f}s waiting for Retell{progress}.{cause} "
            f"{still_running_message(ids)}"
        )
