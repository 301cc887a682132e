"""The pure verdict step: given the run's record and what is known of its batches, what comes next.

A run is one or more rounds of batches: the first runs the whole suite (split by 200), each
rerun round runs again the cases that failed or errored. ``next_step`` returns the one thing the
caller must do next (start a batch, wait, list runs, start a rerun round) or the outcome. It does
no I/O, so the operator, the sensor and every resumption drive the same decisions.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from airflow_provider_retell.contracts import RunRecord
    from airflow_provider_retell.models import BatchTest, TestRun


@dataclass(frozen=True)
class StartBatch:
    round: int
    index: int
    test_case_definition_ids: list[str]


@dataclass(frozen=True)
class WaitFor:
    batch_test_ids: list[str]


@dataclass(frozen=True)
class ListRuns:
    batch_test_ids: list[str]


@dataclass(frozen=True)
class Rerun:
    test_case_definition_ids: list[str]
    outcome: Outcome  # the run as it stands before the rerun


@dataclass(frozen=True)
class Outcome:
    """The run's verdict per case: counts are final (a rerun case counted once, by its last run)."""

    batches: list[BatchTest]
    reruns: list[str]
    pass_count: int
    fail_count: int
    error_count: int
    total_count: int
    problems: list[str]  # reasons the counts cannot be trusted: the gate fails closed on them
    failed: list[TestRun]  # the last run of each case that still fails or errors
    flaky: list[TestRun]  # the first failing run of each case that passed later
    final_runs: dict[str, TestRun | None] = field(default_factory=dict)  # None: passed, run not listed

    @property
    def failing_ids(self) -> list[str]:
        return [run.test_case_definition_id for run in self.failed]


@dataclass(frozen=True)
class Done:
    outcome: Outcome


Step = StartBatch | WaitFor | ListRuns | Rerun | Done


def next_step(
    record: RunRecord,
    batches: Mapping[str, BatchTest],
    runs: Mapping[str, Sequence[TestRun]],
    *,
    rerun_failed: int = 0,
) -> Step:
    """``batches``: the complete batches known so far; ``runs``: the runs listed so far, by batch.

    Every batch's runs are read before a verdict: counts alone are never trusted (a batch could
    report all passed while a run failed, or fewer cases than it was started with)."""
    last = record.rounds[-1]
    for index, batch_test_id in enumerate(last.batch_test_ids):
        if batch_test_id is None:
            return StartBatch(len(record.rounds) - 1, index, list(last.test_case_definition_ids[index]))
    ids = record.batch_test_ids
    if pending := [b for b in ids if b not in batches]:
        return WaitFor(pending)
    if unlisted := [b for b in ids if b not in runs]:
        return ListRuns(unlisted)
    outcome = judge(record, batches, runs)
    if outcome.failed and not outcome.problems and len(record.rounds) - 1 < rerun_failed:
        return Rerun(outcome.failing_ids, outcome)
    return Done(outcome)


def judge(
    record: RunRecord, batches: Mapping[str, BatchTest], runs: Mapping[str, Sequence[TestRun]]
) -> Outcome:
    """Merge every round into final per-case verdicts, and say what does not add up."""
    first = [batches[b] for b in record.rounds[0].batch_test_ids if b is not None]
    counts = Counter(
        {
            "pass": sum(b.pass_count for b in first),
            "fail": sum(b.fail_count for b in first),
            "error": sum(b.error_count for b in first),
        }
    )
    problems: list[str] = []
    final: dict[str, TestRun | None] = {}
    first_failure: dict[str, TestRun] = {}
    flaky: list[TestRun] = []
    for number, round_ in enumerate(record.rounds):
        for asked, batch_test_id in zip(round_.test_case_definition_ids, round_.batch_test_ids, strict=True):
            assert batch_test_id is not None
            batch = batches[batch_test_id]
            problems += batch.count_problems()
            listed = runs[batch_test_id]
            problems += _disagreements(batch, listed, asked)
            now: dict[str, TestRun | None] = {r.test_case_definition_id: r for r in listed}
            for case, run in now.items():
                if number > 0:  # a rerun replaces the case's earlier verdict in the counts
                    before = final.get(case)
                    counts[_status(before)] -= 1
                    counts[_status(run)] += 1
                    if before is not None and before.is_failed and _status(run) == "pass":
                        flaky.append(first_failure.get(case, before))
                if run is not None and run.is_failed:
                    first_failure.setdefault(case, run)
                final[case] = run
    return Outcome(
        batches=[batches[b] for b in record.batch_test_ids],
        reruns=[b for r in record.rounds[1:] for b in r.batch_test_ids if b is not None],
        pass_count=counts["pass"],
        fail_count=counts["fail"],
        error_count=counts["error"],
        total_count=sum(b.total_count for b in first),
        problems=problems,
        failed=[run for run in final.values() if run is not None and run.is_failed],
        flaky=flaky,
        final_runs=final,
    )


def _status(run: TestRun | None) -> str:
    return "pass" if run is None else run.status


def _disagreements(batch: BatchTest, listed: Sequence[TestRun], asked: Sequence[str]) -> list[str]:
    """A complete batch whose runs contradict its counts, or that ran other cases, is not trusted."""
    seen = Counter(r.status for r in listed)
    problems = []
    if (seen["pass"], seen["fail"], seen["error"], len(listed)) != (
        batch.pass_count,
        batch.fail_count,
        batch.error_count,
        batch.total_count,
    ):
        problems.append(
            f"batch test {batch.id}: its runs ({seen['pass']} passed, {seen['fail']} failed, "
            f"{seen['error']} errored of {len(listed)}) disagree with its counts"
        )
    if asked and (
        batch.total_count != len(asked) or {r.test_case_definition_id for r in listed} != set(asked)
    ):
        problems.append(
            f"batch test {batch.id} ran other test cases than the {len(asked)} it was started with "
            f"({batch.total_count} reported, {len(listed)} listed)"
        )
    if len({r.test_case_definition_id for r in listed}) != len(listed):
        problems.append(f"batch test {batch.id} lists a test case more than once")
    return problems
