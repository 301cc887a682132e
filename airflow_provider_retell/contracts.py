"""The typed contracts between the parts: the result dict, the trigger event and the run's record.

``BatchTestResult`` is the one definition of what the operator and the sensor return (the docs
and the tests read its keys from here). The trigger event and the ``task_state_store`` record are
validated on the way in and fail closed: a payload that is not understood is an error, never a
guess. Both carry a schema version, and the previous release's shapes are still read.
"""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal, TypedDict

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    computed_field,
    field_validator,
    model_validator,
)

from airflow_provider_retell.exceptions import RetellError
from airflow_provider_retell.validation import ID_PATTERN

RetellId = Annotated[str, Field(pattern=f"^{ID_PATTERN}$")]


class FailedTestCase(TypedDict):
    """A case whose final run failed or errored (its last run, after any reruns)."""

    test_case_job_id: str
    test_case_definition_id: str
    name: str
    status: str  # "fail" | "error"
    result_explanation: str | None


class FlakyTestCase(TypedDict):
    """A case that failed or errored, then passed on a rerun: it counts as passed."""

    test_case_definition_id: str
    name: str
    failed_status: str  # the status of its first failing run: "fail" | "error"
    result_explanation: str | None  # why that run failed


class CaseChange(TypedDict):
    """A case whose verdict differs from the baseline's (or that has none there)."""

    test_case_definition_id: str
    name: str
    status: str  # its final status in this run
    result_explanation: str | None


class BatchTestResult(TypedDict):
    """What a finished run returns (the sensor's and the waiting operator's ``return_value``).

    Small and JSON-only (at most ``MAX_RESULT_BYTES``, never a transcript), pushed before a failed
    gate raises so an ``all_done`` report still reads the counts. Counts are the cases' final
    verdicts: summed over every batch of the run, a rerun case counted once, by its last run.
    """

    batch_test_id: str  # the run's first batch
    batch_test_ids: list[str]  # every batch of the run, reruns included, in the order they started
    status: str  # "complete"
    response_engine: dict[str, Any]
    pass_count: int
    fail_count: int
    error_count: int
    total_count: int
    pass_rate: float | None  # pass/total, unrounded; None when total is 0
    gate_passed: bool
    gate_reasons: list[str]  # [] when the gate passed
    failed_test_cases: list[FailedTestCase]  # at most 50, text cut; see ``truncated``
    reruns: list[str]  # batches that reran failed cases (rerun_failed)
    flaky_test_cases: list[FlakyTestCase]  # failed, then passed on a rerun
    regressions: list[CaseChange]  # passed in the baseline, fails or errors now ([] without a baseline)
    fixed: list[CaseChange]  # failed or errored in the baseline, passes now
    new_test_cases: list[CaseChange]  # no verdict in the baseline: never a regression
    baseline_batch_test_ids: list[str]  # the batches the baseline came from ([] without one)
    report_path: str | None  # the JUnit XML report written for this run (report_path)
    created_at: str | None  # ISO-8601, the earliest batch's creation
    completed_at: str | None  # ISO-8601, the latest batch's completion
    url: str | None  # the agent's dashboard page when the agent is known
    truncated: bool  # a list above was cut to keep the result within its size bound


# -- trigger event ---------------------------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


class BatchTestEvent(_Strict):
    """What ``RetellBatchTestTrigger`` fires once: every batch complete, the deadline passed, or an error.

    Payload: ``{"status", "batch_test_id" (the first), "batch_test_ids", "batch_tests": [summary],
    "batch_test": summary of the first (as the previous release sent it), "message", "status_code"}``.
    """

    status: Literal["complete", "timeout", "error"]
    batch_test_id: RetellId
    batch_test_ids: list[RetellId] = Field(default_factory=list, max_length=1000)
    batch_tests: list[dict[str, Any]] = Field(default_factory=list, max_length=1000)
    batch_test: dict[str, Any] | None = None
    message: str | None = Field(default=None, max_length=2000)
    status_code: int | None = None

    @field_validator("message", mode="before")
    @classmethod
    def _cut(cls, value: Any) -> Any:
        """A long message (the previous release did not cut them) is shortened, not refused."""
        return value[:1999] + "…" if isinstance(value, str) and len(value) > 2000 else value

    @model_validator(mode="after")
    def _complete(self) -> BatchTestEvent:
        if not self.batch_test_ids:  # the previous release's single-batch payload
            object.__setattr__(self, "batch_test_ids", [self.batch_test_id])
        if not self.batch_tests and self.batch_test is not None:
            object.__setattr__(self, "batch_tests", [self.batch_test])
        if self.batch_test_ids[0] != self.batch_test_id:
            raise ValueError("batch_test_id must be the first of batch_test_ids")
        return self

    def to_payload(self) -> dict[str, Any]:
        payload = self.model_dump(mode="json", exclude_none=True)
        if self.batch_tests:
            payload["batch_test"] = self.batch_tests[0]
        return payload

    @classmethod
    def from_payload(cls, payload: Any) -> BatchTestEvent:
        """Validate what the triggerer handed back; anything not understood fails the task."""
        try:
            return cls.model_validate(payload)
        except ValidationError as exc:
            raise RetellError(
                f"Unexpected event from the Retell trigger: {_short(payload)} ({_problems(exc)})"
            ) from None


# -- the run's record in task_state_store -----------------------------------------------------------

#: Version of the record and of the trigger's kwargs; the previous release's (1) is still read.
SCHEMA_VERSION = 2


class Round(_Strict):
    """One round of batches: the first (the whole suite, split by 200) or a rerun of failed cases."""

    model_config = ConfigDict(extra="forbid", frozen=False, defer_build=True)

    test_case_definition_ids: list[list[RetellId]]  # per batch; [] where unknown (a sensor's batches)
    batch_test_ids: list[RetellId | None]  # None until that batch is started


class RunRecord(_Strict):
    """What one task judges, kept across tries, reschedules and deferrals: fixed on the first try
    (the plan of batches is never recomputed), cleared once the run has a verdict."""

    model_config = ConfigDict(extra="forbid", frozen=False, defer_build=True)

    version: Literal[2] = 2
    deadline: float
    engine: dict[str, Any] | None = None
    agent_id: str | None = None
    rounds: list[Round]
    create_intent: dict[str, Any] | None = None
    #: The task's max_tries when the run began: Airflow raises it when a task is cleared by hand,
    #: never on a retry, so a change means "a person asked for a new run".
    max_tries: int | None = None
    #: What the run returned (the result, or the batch ids of an operator that does not wait), kept
    #: so a retry after the verdict (a lost XCom push, a dead worker) returns it instead of billing anew.
    verdict: Any = None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def phase(self) -> Literal["creating", "waiting"]:
        """Stored for people reading the record: waiting once every batch of the last round exists."""
        last = self.rounds[-1]
        return "creating" if self.create_intent or None in last.batch_test_ids else "waiting"

    @property
    def batch_test_ids(self) -> list[str]:
        return [b for r in self.rounds for b in r.batch_test_ids if b is not None]

    @property
    def started_cases(self) -> int:
        """Test cases billed so far (and about to be, for a batch being created)."""
        return sum(
            len(ids)
            for r in self.rounds
            for ids, batch in zip(r.test_case_definition_ids, r.batch_test_ids, strict=True)
            if batch is not None
        )

    @classmethod
    def for_batches(
        cls, batch_test_ids: list[str], timeout: float, max_tries: int | None = None
    ) -> RunRecord:
        """A run of batches someone else started (the sensor's)."""
        round_ = Round(
            test_case_definition_ids=[[] for _ in batch_test_ids], batch_test_ids=list(batch_test_ids)
        )
        return cls(deadline=time.time() + timeout, rounds=[round_], max_tries=max_tries)

    @classmethod
    def from_store(cls, value: Any, timeout: float) -> RunRecord | None:
        """Read the stored record, upgrading the previous release's ``{"batch_test_id", "deadline"}``."""
        if value is None:
            return None
        try:
            if isinstance(value, dict) and "version" not in value and "batch_test_id" in value:
                upgraded = cls.for_batches([value["batch_test_id"]], timeout)
                if isinstance(value.get("deadline"), (int, float)):
                    upgraded.deadline = float(value["deadline"])
                return upgraded
            fields = {k: v for k, v in value.items() if k != "phase"} if isinstance(value, dict) else value
            return cls.model_validate(fields)
        except ValidationError as exc:
            raise RetellError(
                f"The task's stored Retell run record is not understood ({_problems(exc)}); not starting or "
                "adopting anything. Delete the task's state (key 'retell_batch_test') to start afresh."
            ) from None

    def to_store(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def _short(value: Any, limit: int = 300) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _problems(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(map(str, e['loc'])) or '<payload>'}: {e['msg']}" for e in exc.errors()[:3])
