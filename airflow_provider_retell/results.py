"""The quality gate and the result dict: pure functions, shared by the operator and the sensor."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from airflow_provider_retell.exceptions import RetellInputError

if TYPE_CHECKING:
    from airflow_provider_retell.models import BatchTest, TestRun

MAX_FAILED_CASES = 50
MAX_EXPLANATION_CHARS = 500
DASHBOARD_AGENT_URL = "https://dashboard.retellai.com/agents/{agent_id}"


def _bound(name: str, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise RetellInputError(f"{name} must be a non-negative int or None, got {value!r}")
    if value < 0:
        raise RetellInputError(f"{name} must be >= 0 (or None to switch it off), got {value}")
    return value


@dataclass(frozen=True)
class QualityGate:
    """Bounds a finished batch must meet; ``None`` switches a bound off."""

    max_failures: int | None = 0
    max_errors: int | None = 0
    min_pass_rate: float | None = None
    fail_on_empty: bool = True

    @classmethod
    def from_params(
        cls,
        *,
        max_failures: Any = 0,
        max_errors: Any = 0,
        min_pass_rate: Any = None,
        fail_on_empty: Any = True,
    ) -> QualityGate:
        """Validate rendered task arguments; each error names the argument."""
        rate = min_pass_rate
        if rate is not None:
            if isinstance(rate, bool) or not isinstance(rate, (int, float)) or math.isnan(rate):
                raise RetellInputError(
                    f"min_pass_rate must be a number between 0 and 1 or None, got {rate!r}"
                )
            if not 0 <= rate <= 1:
                raise RetellInputError(f"min_pass_rate must be between 0 and 1, got {rate}")
            rate = float(rate)
        if not isinstance(fail_on_empty, bool):
            raise RetellInputError(f"fail_on_empty must be True or False, got {fail_on_empty!r}")
        return cls(
            _bound("max_failures", max_failures), _bound("max_errors", max_errors), rate, fail_on_empty
        )

    def reasons(self, batch: BatchTest) -> list[str]:
        """Why the batch fails the gate ([] when it passes); with no cases only ``fail_on_empty`` decides."""
        if batch.total_count == 0:
            return ["the batch ran no test cases (fail_on_empty=True)"] if self.fail_on_empty else []
        reasons = []
        if self.max_failures is not None and batch.fail_count > self.max_failures:
            reasons.append(f"{batch.fail_count} failed, more than max_failures={self.max_failures}")
        if self.max_errors is not None and batch.error_count > self.max_errors:
            reasons.append(f"{batch.error_count} errored, more than max_errors={self.max_errors}")
        rate = batch.pass_count / batch.total_count
        if self.min_pass_rate is not None and rate < self.min_pass_rate:
            reasons.append(f"pass rate {rate:.1%} is below min_pass_rate={self.min_pass_rate:.1%}")
        return reasons


def _iso(ms: int | None) -> str | None:
    return None if ms is None else datetime.fromtimestamp(ms / 1000, tz=timezone.utc).isoformat()


def failed_case(run: TestRun) -> dict[str, Any]:
    explanation = run.result_explanation
    if explanation and len(explanation) > MAX_EXPLANATION_CHARS:
        explanation = explanation[: MAX_EXPLANATION_CHARS - 1] + "…"
    return {
        "test_case_job_id": run.test_case_job_id,
        "test_case_definition_id": run.test_case_definition_id,
        "name": run.name,
        "status": run.status,
        "result_explanation": explanation,
    }


def build_result(
    batch: BatchTest, runs: Sequence[TestRun], gate: QualityGate, agent_id: str | None = None
) -> dict[str, Any]:
    """Turn a finished batch (and its runs) into the small, JSON-only dict pushed to XCom."""
    reasons = gate.reasons(batch)
    return {
        "batch_test_id": batch.id,
        "status": batch.status,
        "response_engine": batch.response_engine.model_dump(
            mode="json", include={"type", "llm_id", "conversation_flow_id", "version"}
        ),
        "pass_count": batch.pass_count,
        "fail_count": batch.fail_count,
        "error_count": batch.error_count,
        "total_count": batch.total_count,
        "pass_rate": batch.pass_count / batch.total_count if batch.total_count else None,
        "gate_passed": not reasons,
        "gate_reasons": reasons,
        "failed_test_cases": [failed_case(run) for run in runs if run.is_failed][:MAX_FAILED_CASES],
        "created_at": _iso(batch.creation_timestamp),
        "completed_at": _iso(batch.user_modified_timestamp) if batch.is_complete else None,
        "url": DASHBOARD_AGENT_URL.format(agent_id=agent_id) if agent_id else None,
    }


def _one_line(value: Any) -> str:
    return " ".join(str(value or "").split())


def failed_cases_table(cases: Sequence[dict[str, Any]]) -> str:
    """A plain-text table (name, status, explanation) for the task log and the gate error."""
    if not cases:
        return "(no failed test cases)"
    rows = [("name", "status", "explanation")] + [
        (_one_line(c["name"]), _one_line(c["status"]), _one_line(c["result_explanation"])) for c in cases
    ]
    widths = [min(max(len(r[i]) for r in rows), 60) for i in range(2)]
    lines = [f"{r[0][:60]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]}" for r in rows]
    lines.insert(1, f"{'-' * widths[0]}  {'-' * widths[1]}  {'-' * 11}")
    return "\n".join(lines)


def gate_failure_message(result: dict[str, Any]) -> str:
    return (
        f"Retell batch test {result['batch_test_id']} failed the quality gate: "
        f"{'; '.join(result['gate_reasons'])}. "
        f"{result['pass_count']} passed, {result['fail_count']} failed, {result['error_count']} errored "
        f"of {result['total_count']}.\nFailed test cases:\n{failed_cases_table(result['failed_test_cases'])}"
    )
