"""A JUnit XML report of a run, for the test-report tools CI already shows (Jenkins, GitLab, GitHub).

One testsuite, one testcase per definition with its final verdict: Retell's ``fail`` is a
``<failure>``, ``error`` an ``<error>``, the message Retell's explanation; a flaky case passes, with
its earlier failure in ``system-out``. Properties carry the batch ids, engine, agent and regressions.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_provider_retell.contracts import BatchTestResult
    from airflow_provider_retell.models import TestRun


_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _text(value: Any) -> str:
    """Text XML 1.0 can carry: a control character from Retell must not make the report unreadable."""
    return _NOT_XML.sub("\ufffd", str(value))


def junit_xml(
    result: BatchTestResult,
    final_runs: dict[str, TestRun | None],
    flaky: Sequence[TestRun],
    agent_id: str | None,
) -> bytes:
    """The run as a JUnit XML document (UTF-8)."""
    engine = result["response_engine"]
    engine_id = str(engine.get("llm_id") or engine.get("conversation_flow_id") or "engine")
    earlier = {run.test_case_definition_id: run for run in flaky}
    runs = [run for run in final_runs.values() if run is not None]
    suite = ET.Element(
        "testsuite",
        name=f"retell.{engine_id}",
        tests=str(len(runs)),
        failures=str(sum(r.status == "fail" for r in runs)),
        errors=str(sum(r.status == "error" for r in runs)),
        skipped="0",
        timestamp=result["created_at"] or "",
    )
    properties = ET.SubElement(suite, "properties")
    regressed = [c["test_case_definition_id"] for c in result["regressions"]]
    for name, value in (
        ("batch_test_ids", ",".join(result["batch_test_ids"])),
        ("reruns", ",".join(result["reruns"])),
        ("response_engine", ", ".join(f"{k}={v}" for k, v in engine.items())),
        ("agent_id", agent_id or ""),
        ("gate_passed", str(result["gate_passed"]).lower()),
        ("regressions", ",".join(regressed)),
        ("baseline_batch_test_ids", ",".join(result["baseline_batch_test_ids"])),
    ):
        ET.SubElement(properties, "property", name=name, value=_text(value))
    for run in runs:
        name = _text(f"{run.name} [{run.test_case_definition_id}]")
        case = ET.SubElement(suite, "testcase", name=name, classname=f"retell.{engine_id}")
        if run.is_failed:
            explanation = _text(run.result_explanation or run.status)
            tag = "failure" if run.status == "fail" else "error"
            ET.SubElement(case, tag, message=explanation, type=run.status).text = explanation
        if (before := earlier.get(run.test_case_definition_id)) is not None:
            why = _text(before.result_explanation or "")
            out = ET.SubElement(case, "system-out")
            out.text = f"Flaky: run {before.test_case_job_id} was {before.status} before it passed: {why}"
    return ET.tostring(suite, encoding="utf-8", xml_declaration=True)


def write_report(path: str, content: bytes) -> str:
    """Write through Airflow's ObjectStoragePath (local paths, file:///, and any scheme a provider adds)."""
    from airflow.sdk import ObjectStoragePath

    target = ObjectStoragePath(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("wb") as handle:
        handle.write(content)
    return path
