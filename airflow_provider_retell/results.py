"""The result dict: pure functions, shared by the operator and the sensor."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, cast

from airflow_provider_retell.gate import QualityGate
from airflow_provider_retell.links import DASHBOARD_AGENT_URL

if TYPE_CHECKING:
    from airflow_provider_retell.baselines import Comparison
    from airflow_provider_retell.contracts import BatchTestResult, CaseChange, FailedTestCase, FlakyTestCase
    from airflow_provider_retell.models import TestRun
    from airflow_provider_retell.verdict import Outcome

MAX_FAILED_CASES = 50
MAX_NAME_CHARS = 200
MAX_EXPLANATION_CHARS = 500
MAX_GATE_REASONS = 20
#: The result dict's JSON never exceeds this, whatever Retell sends (lists are cut, ``truncated``).
MAX_RESULT_BYTES = 64 * 1024


def _iso(ms: int | None) -> str | None:
    return None if ms is None else datetime.fromtimestamp(ms / 1000, tz=timezone.utc).isoformat()


def _cut(text: str | None, limit: int) -> str | None:
    return text if text is None or len(text) <= limit else text[: limit - 1] + "…"


def failed_case(run: TestRun) -> FailedTestCase:
    return {
        "test_case_job_id": run.test_case_job_id,
        "test_case_definition_id": run.test_case_definition_id,
        "name": _cut(run.name, MAX_NAME_CHARS) or "",
        "status": run.status,
        "result_explanation": _cut(run.result_explanation, MAX_EXPLANATION_CHARS),
    }


def flaky_case(run: TestRun) -> FlakyTestCase:
    return {
        "test_case_definition_id": run.test_case_definition_id,
        "name": _cut(run.name, MAX_NAME_CHARS) or "",
        "failed_status": run.status,
        "result_explanation": _cut(run.result_explanation, MAX_EXPLANATION_CHARS),
    }


def case_change(run: TestRun) -> CaseChange:
    return {
        "test_case_definition_id": run.test_case_definition_id,
        "name": _cut(run.name, MAX_NAME_CHARS) or "",
        "status": run.status,
        "result_explanation": _cut(run.result_explanation, MAX_EXPLANATION_CHARS),
    }


def build_result(
    outcome: Outcome,
    gate: QualityGate,
    agent_id: str | None = None,
    comparison: Comparison | None = None,
    report_path: str | None = None,
) -> BatchTestResult:
    """Turn a finished run into the small, JSON-only dict pushed to XCom."""
    reasons = gate.reasons(outcome, comparison)
    changes = (comparison.regressions, comparison.fixed, comparison.new) if comparison else ()
    if len(reasons) > MAX_GATE_REASONS:
        reasons = [
            *reasons[: MAX_GATE_REASONS - 1],
            f"and {len(reasons) - MAX_GATE_REASONS + 1} more reasons",
        ]
    first = outcome.batches[0]
    completed = [b.user_modified_timestamp for b in outcome.batches if b.user_modified_timestamp is not None]
    result: BatchTestResult = {
        "batch_test_id": first.id,
        "batch_test_ids": [b.id for b in outcome.batches],
        "status": "complete",
        "response_engine": first.response_engine.model_dump(
            mode="json", include={"type", "llm_id", "conversation_flow_id", "version"}
        ),
        "pass_count": outcome.pass_count,
        "fail_count": outcome.fail_count,
        "error_count": outcome.error_count,
        "total_count": outcome.total_count,
        "pass_rate": outcome.pass_count / outcome.total_count if outcome.total_count > 0 else None,
        "gate_passed": not reasons,
        "gate_reasons": [_cut(r, 1000) or "" for r in reasons],
        "failed_test_cases": [failed_case(run) for run in outcome.failed[:MAX_FAILED_CASES]],
        "reruns": list(outcome.reruns),
        "flaky_test_cases": [flaky_case(run) for run in outcome.flaky[:MAX_FAILED_CASES]],
        "regressions": [
            case_change(r) for r in (comparison.regressions if comparison else [])[:MAX_FAILED_CASES]
        ],
        "fixed": [case_change(r) for r in (comparison.fixed if comparison else [])[:MAX_FAILED_CASES]],
        "new_test_cases": [case_change(r) for r in (comparison.new if comparison else [])[:MAX_FAILED_CASES]],
        "baseline_batch_test_ids": list(comparison.baseline_batch_test_ids if comparison else []),
        "report_path": report_path,
        "created_at": _iso(min(b.creation_timestamp for b in outcome.batches)),
        "completed_at": _iso(max(completed)) if completed else None,
        "url": DASHBOARD_AGENT_URL.format(agent_id=agent_id) if agent_id else None,
        "truncated": any(
            len(items) > MAX_FAILED_CASES for items in (outcome.failed, outcome.flaky, *changes)
        ),
    }
    return fit(result)


#: Lists that give way, longest first, when the result would pass its size bound.
_TRIMMABLE = (
    "failed_test_cases",
    "flaky_test_cases",
    "regressions",
    "fixed",
    "new_test_cases",
    "baseline_batch_test_ids",
    "reruns",
)


def fit(result: BatchTestResult, limit: int = MAX_RESULT_BYTES) -> BatchTestResult:
    """Cut the case lists until the JSON fits ``limit`` bytes; ``truncated`` says it happened."""
    data: dict[str, Any] = dict(result)
    while len(json.dumps(data).encode()) > limit:
        lists = [k for k in _TRIMMABLE if data.get(k)]
        if not lists:
            raise ValueError(
                "the result exceeds its size bound with every list empty"
            )  # unreachable by design
        longest = max(lists, key=lambda k: len(json.dumps(data[k])))
        data[longest] = data[longest][: len(data[longest]) // 2]
        data["truncated"] = True
    return cast("BatchTestResult", data)


def _one_line(value: Any) -> str:
    return " ".join(str(value or "").split())


def failed_cases_table(cases: Sequence[FailedTestCase]) -> str:
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


def run_label(result: BatchTestResult) -> str:
    ids = result["batch_test_ids"]
    if len(ids) == 1:
        return f"Retell batch test {ids[0]}"
    return f"Retell run of {len(ids)} batch tests ({', '.join(ids[:5])}{', …' if len(ids) > 5 else ''})"


def counts_line(result: BatchTestResult) -> str:
    return (
        f"{result['pass_count']} passed, {result['fail_count']} failed, {result['error_count']} errored "
        f"of {result['total_count']}"
    )


def gate_failure_message(result: BatchTestResult) -> str:
    return (
        f"{run_label(result)} failed the quality gate: {'; '.join(result['gate_reasons'])}. "
        f"{counts_line(result)}.\nFailed test cases:\n{failed_cases_table(result['failed_test_cases'])}"
    )


def asset_summary(result: BatchTestResult) -> dict[str, Any]:
    """What an Asset event's ``extra`` carries for a downstream DAG: small, JSON, no case texts."""
    return {
        "batch_test_ids": result["batch_test_ids"],
        "response_engine": result["response_engine"],
        "pass_count": result["pass_count"],
        "fail_count": result["fail_count"],
        "error_count": result["error_count"],
        "total_count": result["total_count"],
        "pass_rate": result["pass_rate"],
        "regressions": [c["test_case_definition_id"] for c in result["regressions"]],
        "completed_at": result["completed_at"],
    }
