"""The quality gate: the bounds a finished run must meet, and the wait arguments a DAG parse checks.

Pure and cheap to import (no HTTP stack, models or XML): the operator and the sensor import it at
module level, so a DAG file pays for it and nothing more (``tests/unit/test_parse_imports.py``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple

from airflow_provider_retell.exceptions import RetellInputError
from airflow_provider_retell.validation import check_baseline, check_report_path, finite, shown, templated

if TYPE_CHECKING:
    from airflow_provider_retell.baselines import Comparison
    from airflow_provider_retell.verdict import Outcome

GATE_PARAMS = ("max_failures", "max_errors", "min_pass_rate", "fail_on_empty", "max_regressions")
#: Also only meaningful where a wait happens: what the run is compared with, and where it is reported.
REPORT_PARAMS = ("baseline", "baseline_lookback", "report_path")


def _bound(name: str, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise RetellInputError(f"{name} must be a non-negative int or None, got {shown(value)}")
    if value < 0:
        raise RetellInputError(f"{name} must be >= 0 (or None to switch it off), got {value}")
    return value


class QualityGate(NamedTuple):
    """Bounds a finished run must meet; ``None`` switches a bound off.

    A NamedTuple, not a dataclass: it is made when a DAG file imports the operator, and a frozen
    dataclass costs ~1 ms of that parse, a NamedTuple a fraction of it.
    """

    max_failures: int | None = 0
    max_errors: int | None = 0
    min_pass_rate: float | None = None
    fail_on_empty: bool = True
    max_regressions: int | None = 0  # only with a baseline

    @classmethod
    def from_params(
        cls,
        *,
        max_failures: Any = 0,
        max_errors: Any = 0,
        min_pass_rate: Any = None,
        fail_on_empty: Any = True,
        max_regressions: Any = 0,
    ) -> QualityGate:
        """Validate rendered task arguments; each error names the argument."""
        rate = min_pass_rate
        if rate is not None:
            if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not finite(rate):
                raise RetellInputError(
                    f"min_pass_rate must be a number between 0 and 1 or None, got {shown(rate)}"
                )
            if not 0 <= rate <= 1:
                raise RetellInputError(f"min_pass_rate must be between 0 and 1, got {rate}")
            rate = float(rate)
        if not isinstance(fail_on_empty, bool):
            raise RetellInputError(f"fail_on_empty must be True or False, got {shown(fail_on_empty)}")
        return cls(
            _bound("max_failures", max_failures),
            _bound("max_errors", max_errors),
            rate,
            fail_on_empty,
            _bound("max_regressions", max_regressions),
        )

    def reasons(self, outcome: Outcome, comparison: Comparison | None = None) -> list[str]:
        """Why the run fails the gate ([] when it passes). Counts that cannot be trusted fail it whatever
        the bounds; with no cases only ``fail_on_empty`` decides; regressions count with a baseline."""
        if outcome.problems:
            return list(outcome.problems)
        regressed = len(comparison.regressions) if comparison is not None else 0
        regression_reason = (
            [f"{regressed} regressed since the baseline, more than max_regressions={self.max_regressions}"]
            if comparison is not None
            and self.max_regressions is not None
            and regressed > self.max_regressions
            else []
        )
        total, failed, errored = outcome.total_count, outcome.fail_count, outcome.error_count
        if total == 0:
            return ["the run has no test cases (fail_on_empty=True)"] if self.fail_on_empty else []
        reasons = regression_reason
        if self.max_failures is not None and failed > self.max_failures:
            reasons.append(f"{failed} failed, more than max_failures={self.max_failures}")
        if self.max_errors is not None and errored > self.max_errors:
            reasons.append(f"{errored} errored, more than max_errors={self.max_errors}")
        rate = outcome.pass_count / total
        if self.min_pass_rate is not None and rate < self.min_pass_rate:
            reasons.append(f"pass rate {rate:.1%} is below min_pass_rate={self.min_pass_rate:.1%}")
        return reasons


def gate_from(task: Any, *, literals_only: bool = False) -> QualityGate:
    """The task's gate, validated; at construction only the values already known (not templated)."""
    params = {name: getattr(task, name) for name in GATE_PARAMS}
    if literals_only:
        params = {name: value for name, value in params.items() if not templated(value)}
    return QualityGate.from_params(**params)


def check_literals(task: Any) -> None:
    """At DAG parse: the gate, baseline and report arguments already known (not templated) are checked."""
    gate_from(task, literals_only=True)
    if not templated(task.baseline):
        check_baseline(task.baseline, task.baseline_lookback)
    if not templated(task.report_path):
        check_report_path(task.report_path)
