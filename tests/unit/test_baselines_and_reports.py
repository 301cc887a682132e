"""Regressions against a baseline (pure, and the look-back driven step by step) and the JUnit report."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
import time_machine
import xmlschema
from _drive import NOW, Driver
from _retell_helpers import LLM_ENGINE, batch_json, page, run_json

from airflow_provider_retell.baselines import batch_verdicts, compare, earlier_verdicts
from airflow_provider_retell.exceptions import RetellInputError
from airflow_provider_retell.gate import QualityGate
from airflow_provider_retell.models import BatchTest, parse_engine_input
from airflow_provider_retell.models import TestRun as RunModel
from airflow_provider_retell.operations import Call
from airflow_provider_retell.reports import junit_xml, write_report
from airflow_provider_retell.results import asset_summary, build_result
from airflow_provider_retell.validation import check_baseline, check_report_path
from airflow_provider_retell.verdict import Outcome

SCHEMA = xmlschema.XMLSchema(str(Path(__file__).resolve().parents[1] / "data" / "junit.xsd"))


def run(case: str, status: str, **kw: Any) -> RunModel:
    return RunModel.model_validate(run_json(f"tcj_{case}_{status}", status, definition_id=case, **kw))


# -- compare ---------------------------------------------------------------------------------------


def test_compare_names_regressions_fixes_and_new_cases() -> None:
    current = {
        "a": run("a", "fail"),
        "b": run("b", "pass"),
        "c": run("c", "fail"),
        "d": run("d", "error"),
        "e": run("e", "pass"),
    }
    earlier = {"a": run("a", "pass"), "b": run("b", "fail"), "c": run("c", "fail"), "d": run("d", "pass")}
    comparison = compare(current, earlier, ["tcbj_old"])
    assert [r.test_case_definition_id for r in comparison.regressions] == ["a", "d"]
    assert [r.test_case_definition_id for r in comparison.fixed] == ["b"]
    assert [r.test_case_definition_id for r in comparison.new] == ["e"]  # new: never a regression
    assert comparison.baseline_batch_test_ids == ["tcbj_old"]


def test_the_gate_counts_regressions_only_with_a_baseline() -> None:
    batch = BatchTest.model_validate(batch_json(passed=1, failed=1))
    outcome = Outcome([batch], [], 1, 1, 0, 2, [], [run("a", "fail")], [])
    lenient = QualityGate(max_failures=None, max_errors=None)
    regressed = compare({"a": run("a", "fail")}, {"a": run("a", "pass")}, ["tcbj_old"])
    steady = compare({"a": run("a", "fail")}, {"a": run("a", "fail")}, ["tcbj_old"])
    assert lenient.reasons(outcome) == []
    assert lenient.reasons(outcome, steady) == []  # "no new failures": an old failure is fine
    assert lenient.reasons(outcome, regressed) == [
        "1 regressed since the baseline, more than max_regressions=0"
    ]
    assert QualityGate(None, None, max_regressions=1).reasons(outcome, regressed) == []
    result = build_result(outcome, lenient, comparison=regressed)
    assert [c["test_case_definition_id"] for c in result["regressions"]] == ["a"]
    assert result["baseline_batch_test_ids"] == ["tcbj_old"]
    assert asset_summary(result)["regressions"] == ["a"]


@pytest.mark.parametrize(
    ("baseline", "lookback"),
    [("tcbj x", 20), ("../x", 20), (3, 20), ("previous", 0), ("previous", 201)],
)
def test_bad_baselines_are_refused(baseline: Any, lookback: Any) -> None:
    with pytest.raises(RetellInputError, match="baseline"):
        check_baseline(baseline, lookback)


# -- the look-back --------------------------------------------------------------------------------


class History:
    """An engine's earlier batches by version; each batch's runs give every case one status."""

    def __init__(self, batches: dict[int, list[tuple[str, dict[str, str], int]]]) -> None:
        self.batches = batches  # version -> [(batch id, {case: status}, created ms)]

    def __call__(self, call: Call) -> Any:
        if call.path == "/v2/list-batch-tests":
            version = int(call.params["version"])
            items = [
                batch_json(
                    b, engine={**LLM_ENGINE, "version": version}, passed=len(cases), created_ms=created
                )
                for b, cases, created in self.batches.get(version, [])
            ]
            return page(items)
        batch_id = call.path.rsplit("/", 1)[1]
        for listed in self.batches.values():
            for b, cases, _ in listed:
                if b == batch_id:
                    return page([run_json(f"tcj_{b}_{c}", s, definition_id=c) for c, s in cases.items()])
        raise AssertionError(call)


@pytest.fixture
def clock() -> Any:
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


def test_previous_takes_each_cases_latest_verdict_version_by_version(clock: Any) -> None:
    history = History(
        {
            2: [
                ("tcbj_ours", {"a": "fail"}, 300),
                ("tcbj_v2_new", {"a": "pass"}, 200),
                ("tcbj_v2_old", {"a": "fail", "b": "fail"}, 100),
            ],
            1: [("tcbj_v1", {"b": "pass", "c": "error"}, 50)],
        }
    )
    driver = Driver(history, clock)
    engine = parse_engine_input(LLM_ENGINE)  # version 2
    verdicts, examined = driver.run(earlier_verdicts(engine, {"tcbj_ours"}, lookback=20, end=NOW + 60))
    assert examined == ["tcbj_v2_new", "tcbj_v2_old", "tcbj_v1"]  # newest first, our own excluded
    assert {case: r.status for case, r in verdicts.items()} == {"a": "pass", "b": "fail", "c": "error"}
    assert [c.params["version"] for c in driver.calls if c.path == "/v2/list-batch-tests"] == [2, 1, 0]


def test_the_look_back_stops_at_its_bound(clock: Any) -> None:
    history = History({2: [(f"tcbj_{i}", {"a": "pass"}, 1000 - i) for i in range(30)]})
    driver = Driver(history, clock)
    _, examined = driver.run(
        earlier_verdicts(parse_engine_input(LLM_ENGINE), set(), lookback=5, end=NOW + 60)
    )
    assert examined == [f"tcbj_{i}" for i in range(5)]
    assert len([c for c in driver.calls if c.path.startswith("/v2/list-test-runs/")]) == 5


def test_a_given_batch_must_be_complete(clock: Any) -> None:
    def respond(call: Call) -> Any:
        return batch_json("tcbj_base", status="in_progress", passed=0, total=3)

    with pytest.raises(RetellInputError, match="not complete"):
        Driver(respond, clock).run(batch_verdicts("tcbj_base", NOW + 60))


# -- the JUnit report --------------------------------------------------------------------------------


def report(final: dict[str, RunModel | None], flaky: list[RunModel], **result: Any) -> ET.Element:
    base = {
        "response_engine": LLM_ENGINE,
        "created_at": "2026-12-01T00:00:00+00:00",
        "batch_test_ids": ["tcbj_1", "tcbj_2"],
        "reruns": ["tcbj_2"],
        "gate_passed": False,
        "regressions": [{"test_case_definition_id": "tcd_b"}],
        "baseline_batch_test_ids": ["tcbj_0"],
    }
    content = junit_xml({**base, **result}, final, flaky, "agent_x")  # type: ignore[arg-type]
    SCHEMA.validate(content.decode())
    return ET.fromstring(content)


def test_a_report_has_one_testcase_per_definition_and_validates() -> None:
    final = {
        "tcd_a": run("tcd_a", "pass", name="Greets"),
        "tcd_b": run("tcd_b", "fail", name="Refunds", explanation="no refund offered"),
        "tcd_c": run("tcd_c", "error", name="Greets", explanation="tool mock broke"),
        "tcd_d": run("tcd_d", "pass", name="Transfers"),
    }
    flaky = [run("tcd_d", "fail", explanation="timed out first")]
    suite = report(final, flaky)
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("4", "1", "1")
    cases = {c.get("name"): c for c in suite.iter("testcase")}
    assert set(cases) == {
        "Greets [tcd_a]",
        "Refunds [tcd_b]",
        "Greets [tcd_c]",
        "Transfers [tcd_d]",
    }  # names need not be unique
    assert cases["Refunds [tcd_b]"].find("failure").get("message") == "no refund offered"
    assert cases["Greets [tcd_c]"].find("error").get("message") == "tool mock broke"
    assert cases["Greets [tcd_a]"].find("failure") is None
    flaky_case = cases["Transfers [tcd_d]"]
    assert flaky_case.find("failure") is None  # a flaky case passes...
    assert "timed out first" in flaky_case.find("system-out").text  # ...with its earlier failure kept
    properties = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert properties["batch_test_ids"] == "tcbj_1,tcbj_2"
    assert properties["regressions"] == "tcd_b"
    assert properties["agent_id"] == "agent_x"
    assert "llm_id=llm_1" in properties["response_engine"]


def test_a_passing_report_and_text_xml_cannot_carry_still_validate() -> None:
    final = {"tcd_a": run("tcd_a", "pass", name="Null\x00byte \x1b[31m", explanation="x")}
    suite = report(final, [], gate_passed=True, regressions=[])
    assert suite.get("failures") == "0"
    assert "\x00" not in ET.tostring(suite, encoding="unicode")


@pytest.mark.parametrize("path", ["/tmp/r.xml", "file:///tmp/r.xml", "s3://bucket/reports/r.xml", None])
def test_report_paths_that_are_accepted(path: str | None) -> None:
    assert check_report_path(path) == path


@pytest.mark.parametrize(
    "path", ["reports/r.xml", "file://host/tmp/r.xml", "file://localhost/x", "s3://bucket", "", 7]
)
def test_report_paths_that_would_land_somewhere_unexpected_are_refused(path: Any) -> None:
    with pytest.raises(RetellInputError, match="report_path"):
        check_report_path(path)


def test_write_report_creates_the_folder(tmp_path: Path) -> None:
    target = tmp_path / "deep" / "run_1.xml"
    assert write_report(str(target), b"<testsuite/>") == str(target)
    assert target.read_bytes() == b"<testsuite/>"
    assert write_report(f"file://{tmp_path}/other.xml", b"<x/>").startswith("file://")
    assert (tmp_path / "other.xml").read_bytes() == b"<x/>"
