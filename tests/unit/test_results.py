"""results.py: gate validation, gate verdicts, the result dict and the failure message."""

from __future__ import annotations

import json
import math
from datetime import datetime
from typing import Any

import pytest
from _retell_helpers import FLOW_ENGINE, LLM_ENGINE, batch_json, run_json

from airflow_provider_retell.contracts import BatchTestResult
from airflow_provider_retell.exceptions import RetellInputError
from airflow_provider_retell.gate import QualityGate
from airflow_provider_retell.models import BatchTest
from airflow_provider_retell.models import TestRun as RunModel
from airflow_provider_retell.results import (
    MAX_EXPLANATION_CHARS,
    MAX_FAILED_CASES,
    MAX_RESULT_BYTES,
    build_result,
    failed_cases_table,
    gate_failure_message,
)
from airflow_provider_retell.verdict import Outcome


def make_batch(*args: Any, **kw: Any) -> BatchTest:
    return BatchTest.model_validate(batch_json(*args, **kw))


def make_run(*args: Any, **kw: Any) -> RunModel:
    return RunModel.model_validate(run_json(*args, **kw))


def outcome(batch: BatchTest, runs: list[RunModel] | tuple = (), **fields: Any) -> Outcome:
    """A one-batch run as the verdict step would judge it (counts taken from the batch)."""
    values: dict[str, Any] = {
        "batches": [batch],
        "reruns": [],
        "pass_count": batch.pass_count,
        "fail_count": batch.fail_count,
        "error_count": batch.error_count,
        "total_count": batch.total_count,
        "problems": batch.count_problems(),
        "failed": [r for r in runs if r.is_failed],
        "flaky": [],
    }
    return Outcome(**{**values, **fields})


def result_of(
    batch: BatchTest,
    runs: list[RunModel] | tuple = (),
    gate: QualityGate | None = None,
    agent_id: str | None = None,
) -> BatchTestResult:
    return build_result(outcome(batch, runs), gate or QualityGate(), agent_id=agent_id)


# -- QualityGate.from_params ----------------------------------------------------------------------


def test_from_params_defaults() -> None:
    gate = QualityGate.from_params()
    assert gate == QualityGate(max_failures=0, max_errors=0, min_pass_rate=None, fail_on_empty=True)
    assert gate == QualityGate()


def test_from_params_accepts_valid_values() -> None:
    gate = QualityGate.from_params(max_failures=None, max_errors=3, min_pass_rate=1, fail_on_empty=False)
    assert gate == QualityGate(None, 3, 1.0, False)
    assert isinstance(gate.min_pass_rate, float)
    assert gate != QualityGate()
    assert QualityGate.from_params(min_pass_rate=0).min_pass_rate == 0.0
    assert QualityGate.from_params(min_pass_rate=0.85).min_pass_rate == 0.85
    assert QualityGate.from_params(max_regressions=2).max_regressions == 2
    assert QualityGate.from_params(max_regressions=None).max_regressions is None


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"max_failures": -1}, "max_failures"),
        ({"max_errors": -5}, "max_errors"),
        ({"max_failures": 1.5}, "max_failures"),
        ({"max_failures": "1"}, "max_failures"),
        ({"max_errors": "0"}, "max_errors"),
        ({"max_failures": True}, "max_failures"),
        ({"max_errors": False}, "max_errors"),
        ({"max_regressions": -1}, "max_regressions"),
        ({"max_regressions": "2"}, "max_regressions"),
        ({"max_failures": float("nan")}, "max_failures"),
        ({"min_pass_rate": -0.01}, "min_pass_rate"),
        ({"min_pass_rate": 1.01}, "min_pass_rate"),
        ({"min_pass_rate": 90}, "min_pass_rate"),
        ({"min_pass_rate": float("nan")}, "min_pass_rate"),
        ({"min_pass_rate": float("inf")}, "min_pass_rate"),
        ({"min_pass_rate": "0.9"}, "min_pass_rate"),
        ({"min_pass_rate": True}, "min_pass_rate"),
        ({"min_pass_rate": [0.9]}, "min_pass_rate"),
        ({"fail_on_empty": "false"}, "fail_on_empty"),
        ({"fail_on_empty": 0}, "fail_on_empty"),
        ({"fail_on_empty": None}, "fail_on_empty"),
    ],
    ids=repr,
)
def test_from_params_rejects_bad_values_naming_the_argument(kwargs: dict, argument: str) -> None:
    with pytest.raises(RetellInputError, match=argument) as info:
        QualityGate.from_params(**kwargs)
    assert isinstance(info.value, ValueError)


# -- QualityGate.reasons --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("gate", "counts", "expected"),
    [
        # max_failures on: at the bound passes, above fails; None switches it off.
        (QualityGate(max_failures=2, max_errors=None), (8, 2, 0), []),
        (QualityGate(max_failures=2, max_errors=None), (7, 3, 0), ["3 failed, more than max_failures=2"]),
        (QualityGate(max_failures=None, max_errors=None), (0, 10, 0), []),
        # max_errors likewise.
        (QualityGate(max_failures=None, max_errors=1), (9, 0, 1), []),
        (QualityGate(max_failures=None, max_errors=1), (8, 0, 2), ["2 errored, more than max_errors=1"]),
        (QualityGate(max_failures=None, max_errors=None), (0, 0, 10), []),
        # min_pass_rate: equal to the bound passes, just below fails.
        (QualityGate(None, None, min_pass_rate=0.8), (8, 2, 0), []),
        (
            QualityGate(None, None, min_pass_rate=0.8),
            (7, 3, 0),
            ["pass rate 70.0% is below min_pass_rate=80.0%"],
        ),
        (QualityGate(None, None, min_pass_rate=1.0), (10, 0, 0), []),
        (QualityGate(None, None, min_pass_rate=0.0), (0, 5, 5), []),
        (QualityGate(None, None, min_pass_rate=None), (0, 5, 5), []),
        # defaults: any failure or error fails.
        (QualityGate(), (10, 0, 0), []),
        (QualityGate(), (9, 1, 0), ["1 failed, more than max_failures=0"]),
        (QualityGate(), (9, 0, 1), ["1 errored, more than max_errors=0"]),
        # every bound at once, in a fixed order.
        (
            QualityGate(max_failures=0, max_errors=0, min_pass_rate=0.9),
            (6, 2, 2),
            [
                "2 failed, more than max_failures=0",
                "2 errored, more than max_errors=0",
                "pass rate 60.0% is below min_pass_rate=90.0%",
            ],
        ),
    ],
)
def test_reasons(gate: QualityGate, counts: tuple[int, int, int], expected: list[str]) -> None:
    passed, failed, errored = counts
    assert gate.reasons(outcome(make_batch(passed=passed, failed=failed, errored=errored))) == expected


def test_pass_rate_boundary_with_float_rounding() -> None:
    # 7/10 == 0.7 exactly as floats compare; equal to the bound must pass.
    assert QualityGate(None, None, 0.7).reasons(outcome(make_batch(passed=7, failed=3))) == []
    # 2/3 against 0.66: above, passes; against 0.67: below, fails.
    assert QualityGate(None, None, 0.66).reasons(outcome(make_batch(passed=2, failed=1))) == []
    assert QualityGate(None, None, 0.67).reasons(outcome(make_batch(passed=2, failed=1))) != []


@pytest.mark.parametrize(
    "gate",
    [
        QualityGate(),
        QualityGate(max_failures=None, max_errors=None, min_pass_rate=None),
        QualityGate(max_failures=5, max_errors=5, min_pass_rate=0.0),
        QualityGate(max_failures=0, max_errors=0, min_pass_rate=1.0),
    ],
)
def test_empty_batch_only_fail_on_empty_decides(gate: QualityGate) -> None:
    empty = make_batch(passed=0, total=0)
    failing = QualityGate(gate.max_failures, gate.max_errors, gate.min_pass_rate, fail_on_empty=True)
    passing = QualityGate(gate.max_failures, gate.max_errors, gate.min_pass_rate, fail_on_empty=False)
    reasons = failing.reasons(outcome(empty))
    assert len(reasons) == 1
    assert "fail_on_empty" in reasons[0]
    assert passing.reasons(outcome(empty)) == []


# -- build_result ---------------------------------------------------------------------------------

RESULT_KEYS = set(BatchTestResult.__required_keys__)


def test_build_result_exact_dict() -> None:
    batch = make_batch(
        batch_id="tcbj_42",
        passed=1,
        failed=1,
        errored=1,
        created_ms=1_700_000_000_123,
        modified_ms=1_700_000_090_000,
        extra_field="ignored",
    )
    runs = [
        make_run("job_p", "pass", name="Happy path", explanation="fine"),
        make_run("job_f", "fail", definition_id="def_f", name="Refund", explanation="did not refund"),
        make_run("job_e", "error", definition_id="def_e", explanation=None),
    ]
    result = result_of(batch, runs, QualityGate(), agent_id="agent_support")
    assert result == {
        "batch_test_id": "tcbj_42",
        "status": "complete",
        "response_engine": LLM_ENGINE,
        "pass_count": 1,
        "fail_count": 1,
        "error_count": 1,
        "total_count": 3,
        "pass_rate": 1 / 3,
        "gate_passed": False,
        "gate_reasons": ["1 failed, more than max_failures=0", "1 errored, more than max_errors=0"],
        "failed_test_cases": [
            {
                "test_case_job_id": "job_f",
                "test_case_definition_id": "def_f",
                "name": "Refund",
                "status": "fail",
                "result_explanation": "did not refund",
            },
            {
                "test_case_job_id": "job_e",
                "test_case_definition_id": "def_e",
                "name": "def_e",
                "status": "error",
                "result_explanation": None,
            },
        ],
        "batch_test_ids": ["tcbj_42"],
        "reruns": [],
        "flaky_test_cases": [],
        "regressions": [],
        "fixed": [],
        "new_test_cases": [],
        "baseline_batch_test_ids": [],
        "report_path": None,
        "created_at": "2023-11-14T22:13:20.123000+00:00",
        "completed_at": "2023-11-14T22:14:50+00:00",
        "url": "https://dashboard.retellai.com/agents/agent_support",
        "truncated": False,
    }
    assert json.loads(json.dumps(result)) == result


def test_build_result_passing_gate_and_conversation_flow_engine() -> None:
    batch = make_batch(engine={**FLOW_ENGINE, "version": 4, "unknown": "x"}, passed=8)
    result = result_of(batch, [], QualityGate())
    assert set(result) == RESULT_KEYS
    assert result["gate_passed"] is True
    assert result["gate_reasons"] == []
    assert result["pass_rate"] == 1.0
    assert result["response_engine"] == {**FLOW_ENGINE, "version": 4}
    assert result["url"] is None
    assert result["failed_test_cases"] == []


def test_pass_rate_is_unrounded() -> None:
    result = result_of(make_batch(passed=2, failed=1), [], QualityGate(None, None))
    assert result["pass_rate"] == 2 / 3
    assert result["pass_rate"] != round(2 / 3, 2)


@pytest.mark.parametrize("fail_on_empty", [True, False])
def test_empty_batch_result(fail_on_empty: bool) -> None:
    result = result_of(make_batch(passed=0, total=0), [], QualityGate(fail_on_empty=fail_on_empty))
    assert result["pass_rate"] is None
    assert result["total_count"] == 0
    assert result["gate_passed"] is (not fail_on_empty)


def test_timestamps_are_iso_8601_utc() -> None:
    result = result_of(make_batch(created_ms=0, modified_ms=86_400_000), [], QualityGate())
    assert result["created_at"] == "1970-01-01T00:00:00+00:00"
    assert result["completed_at"] == "1970-01-02T00:00:00+00:00"
    for key in ("created_at", "completed_at"):
        parsed = datetime.fromisoformat(result[key])
        assert parsed.utcoffset() is not None
        assert parsed.utcoffset().total_seconds() == 0


def test_completed_at_none_when_unknown() -> None:
    no_modified = result_of(make_batch(modified_ms=None), [], QualityGate())
    assert no_modified["completed_at"] is None


def test_failed_test_cases_only_fail_and_error_at_most_50() -> None:
    runs = [
        make_run(f"job_{i:03}", ["pass", "fail", "error", "pending", "in_progress"][i % 5])
        for i in range(200)
    ]
    batch = make_batch(passed=40, failed=40, errored=40, total=200)
    cases = result_of(batch, runs, QualityGate())["failed_test_cases"]
    assert len(cases) == MAX_FAILED_CASES == 50
    assert {c["status"] for c in cases} == {"fail", "error"}
    # In run order, the first 50 failed ones.
    expected = [r.test_case_job_id for r in runs if r.status in ("fail", "error")][:50]
    assert [c["test_case_job_id"] for c in cases] == expected


def test_explanation_is_truncated_to_500_chars() -> None:
    long_text = "x" * 2000
    exact = "y" * MAX_EXPLANATION_CHARS
    runs = [make_run("job_1", "fail", explanation=long_text), make_run("job_2", "fail", explanation=exact)]
    cases = result_of(make_batch(passed=0, failed=2), runs, QualityGate())["failed_test_cases"]
    assert len(cases[0]["result_explanation"]) == MAX_EXPLANATION_CHARS == 500
    assert cases[0]["result_explanation"].startswith("x" * 400)
    assert cases[1]["result_explanation"] == exact


def test_result_has_no_transcript() -> None:
    run = make_run("job_1", "fail", explanation="bad", transcript_snapshot=[{"content": "SECRET-TRANSCRIPT"}])
    result = result_of(make_batch(passed=0, failed=1), [run], QualityGate())
    assert "SECRET-TRANSCRIPT" not in json.dumps(result)


# -- table and message ----------------------------------------------------------------------------


def test_failed_cases_table_formatting() -> None:
    cases = [
        {"name": "Refund request", "status": "fail", "result_explanation": "did not\n  offer a refund"},
        {"name": "N" * 80, "status": "error", "result_explanation": None},
    ]
    lines = failed_cases_table(cases).splitlines()
    assert len(lines) == 4
    assert lines[0].split() == ["name", "status", "explanation"]
    assert set(lines[1].replace(" ", "")) == {"-"}
    assert lines[2].startswith("Refund request")
    assert "fail" in lines[2]
    assert lines[2].endswith("did not offer a refund")  # whitespace collapsed to one line
    assert lines[3].startswith("N" * 60 + "  ")  # names are cut at 60 chars
    assert "N" * 61 not in lines[3]
    assert lines[3].rstrip().endswith("error")
    # columns line up
    assert lines[2].index("fail") == lines[3].index("error") == lines[0].index("status")


def test_failed_cases_table_empty() -> None:
    assert failed_cases_table([]) == "(no failed test cases)"


def test_gate_failure_message_contains_counts_reasons_and_cases() -> None:
    runs = [
        make_run("job_f", "fail", name="Refund", explanation="did not refund"),
        make_run("job_e", "error", name="Transfer", explanation="tool timed out"),
    ]
    result = result_of(make_batch("tcbj_7", passed=8, failed=1, errored=1), runs, QualityGate())
    message = gate_failure_message(result)
    assert "tcbj_7" in message
    assert "1 failed, more than max_failures=0" in message
    assert "1 errored, more than max_errors=0" in message
    assert "8 passed, 1 failed, 1 errored of 10" in message
    for text in ("Refund", "did not refund", "Transfer", "tool timed out"):
        assert text in message
    assert failed_cases_table(result["failed_test_cases"]) in message


def test_gate_params_nan_and_inf_bounds_do_not_slip_through() -> None:
    for value in (math.nan, math.inf, -math.inf):
        with pytest.raises(RetellInputError, match="max_errors"):
            QualityGate.from_params(max_errors=value)


# -- bounds: the result stays small whatever Retell sends -----------------------------------------


@pytest.mark.parametrize("char", ["x", "é", "\u2603", "\U0001f600", "\x00"])
def test_the_result_stays_within_its_size_bound(char: str) -> None:
    runs = [
        make_run(f"job_{i}", "fail", definition_id=f"def_{i}", name=char * 5000, explanation=char * 90_000)
        for i in range(200)
    ]
    flaky = runs[:120]
    huge = outcome(make_batch(passed=0, failed=200, total=200), runs, flaky=flaky)
    result = build_result(huge, QualityGate())
    size = len(json.dumps(result).encode())
    assert size <= MAX_RESULT_BYTES
    assert result["truncated"] is True
    assert result["failed_test_cases"]  # cut, not emptied without need
    assert all(
        len(c["name"]) <= 200 and len(c["result_explanation"] or "") <= 500
        for c in result["failed_test_cases"]
    )
    assert result["fail_count"] == 200  # the counts are never cut


def test_a_normal_result_is_not_marked_truncated() -> None:
    runs = [make_run(f"job_{i}", "fail", definition_id=f"def_{i}") for i in range(10)]
    result = result_of(make_batch(passed=0, failed=10), runs)
    assert result["truncated"] is False
    assert len(result["failed_test_cases"]) == 10


@pytest.mark.parametrize(
    ("passed", "failed", "errored", "total"), [(0, 0, 0, 5), (1, 0, 0, 5), (7, 0, 0, 5), (-1, 0, 0, -1)]
)
def test_counts_that_do_not_add_up_fail_every_gate(
    passed: int, failed: int, errored: int, total: int
) -> None:
    lenient = QualityGate(max_failures=None, max_errors=None, min_pass_rate=None, fail_on_empty=False)
    result = result_of(make_batch(passed=passed, failed=failed, errored=errored, total=total), gate=lenient)
    assert result["gate_passed"] is False
    assert (
        f"{passed} passed + {failed} failed + {errored} errored != {total} total" in result["gate_reasons"][0]
    )


def test_many_problems_are_capped_in_the_reasons() -> None:
    problems = [f"batch test tcbj_{i} reports counts that do not add up" for i in range(100)]
    result = build_result(outcome(make_batch(), problems=problems), QualityGate())
    assert len(result["gate_reasons"]) == 20
    assert result["gate_reasons"][-1] == "and 81 more reasons"


def test_the_readme_shows_every_key_of_the_result() -> None:
    """The keys are defined once (the TypedDict); the README's example must not drift from it."""
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    example = readme.split("### The result", 1)[1].split("It is pushed", 1)[0]
    assert {key for key in RESULT_KEYS if f'"{key}":' not in example} == set()
