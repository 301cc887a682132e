"""Regressions against earlier runs: what got worse (and better) since the baseline.

``baseline="previous"`` compares each case with its most recent earlier verdict on the same engine:
the engine's earlier complete batches are read newest first, this run's own excluded, up to
``baseline_lookback`` batches. ``list-batch-tests`` without a version lists only the engine's
latest version, so a run on version N looks at N, then N-1, and so on. ``baseline="<batch id>"``
compares with that one batch. A case that passed there and fails or errors now is a regression; one
that failed there and passes now is fixed; one with no earlier verdict is new, never a regression.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from airflow_provider_retell.exceptions import RetellInputError
from airflow_provider_retell.models import BatchTest, TestableEngine, engine_query
from airflow_provider_retell.operations import Operation, get_batch, list_runs, paginate

if TYPE_CHECKING:
    from airflow_provider_retell.models import TestRun

#: Engine versions looked through, newest first, before the look-back gives up.
MAX_VERSIONS = 20


@dataclass(frozen=True)
class Comparison:
    baseline_batch_test_ids: list[str]
    regressions: list[TestRun] = field(default_factory=list)  # passed there, fails or errors now
    fixed: list[TestRun] = field(default_factory=list)  # failed or errored there, passes now
    new: list[TestRun] = field(default_factory=list)  # no earlier verdict


def compare(
    current: Mapping[str, TestRun | None], earlier: Mapping[str, TestRun], baseline_batch_test_ids: list[str]
) -> Comparison:
    """Pure: ``current`` holds each case's final run (every run of the run is read before a verdict)."""
    comparison = Comparison(baseline_batch_test_ids)
    for case, run in current.items():
        if run is None:
            continue
        before = earlier.get(case)
        if before is None:
            comparison.new.append(run)
        elif before.status == "pass" and run.is_failed:
            comparison.regressions.append(run)
        elif before.is_failed and run.status == "pass":
            comparison.fixed.append(run)
    return comparison


def _collect(runs: list[TestRun], verdicts: dict[str, TestRun]) -> None:
    """The newest batch is read first: the first finished verdict of a case is its latest."""
    for run in runs:
        if run.is_finished:
            verdicts.setdefault(run.test_case_definition_id, run)


def earlier_verdicts(
    engine: TestableEngine, exclude: set[str], lookback: int, end: float
) -> Operation[tuple[dict[str, TestRun], list[str]]]:
    """The latest earlier verdict of each case, and the batches it came from (newest first)."""
    verdicts: dict[str, TestRun] = {}
    examined: list[str] = []
    top = engine.version
    versions: list[int | None] = [None] if top is None else list(range(top, max(top - MAX_VERSIONS, -1), -1))
    for version in versions:
        query = engine_query(engine.model_copy(update={"version": version}))
        # one page of up to 1000 batches, sorted here: the listing's order is not documented
        listed = yield from paginate(
            "/v2/list-batch-tests", BatchTest, query, end=end, keep_reading=lambda _: False
        )
        for batch in sorted(listed, key=lambda b: b.creation_timestamp, reverse=True):
            if batch.id in exclude or batch.id in examined or not batch.is_complete:
                continue
            _collect((yield from list_runs(batch.id, end=end, expected=batch.total_count)), verdicts)
            examined.append(batch.id)
            if len(examined) >= lookback:
                return verdicts, examined
    return verdicts, examined


def batch_verdicts(batch_test_id: str, end: float) -> Operation[tuple[dict[str, TestRun], list[str]]]:
    """The verdicts of one given batch (it must be complete: an unfinished one is no baseline)."""
    batch = yield from get_batch(batch_test_id, end=end)
    if not batch.is_complete:
        raise RetellInputError(f"baseline={batch_test_id!r} is not complete yet ({batch.progress()})")
    verdicts: dict[str, TestRun] = {}
    _collect((yield from list_runs(batch_test_id, end=end, expected=batch.total_count)), verdicts)
    return verdicts, [batch_test_id]
