"""Every Python sample of README.md and docs/*.md runs, against the emulator (see samples.py).

A sample is written to a file and run as a script (imports, DAG definition and all), with
``retell_default`` pointing at the emulator and ``CHAT_WEBHOOK_URL`` at a local catcher. Each DAG it
defines is then run with ``dag.test()`` (polls shortened: the emulator runs 100x faster than Retell)
and must end ``success``, or what its marker says. The files of a ``group`` (a conftest, a test
module, a DAG file) are written to one folder and run with pytest in a subprocess, as a user would.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import runpy
import shutil
import subprocess
import sys
import threading
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.docs.samples import ROOT, Sample, samples

pytestmark = pytest.mark.e2e

ALL = samples()
SINGLE = [s for s in ALL if not s.skipped and "group" not in s.options]
GROUPS: dict[str, list[Sample]] = defaultdict(list)
for _sample in ALL:
    if "group" in _sample.options and not _sample.skipped:
        GROUPS[f"{_sample.source.name}:{_sample.options['group']}"].append(_sample)

#: Seconds between polls in a sample's run (the samples say 30-60 s, as for the real Retell).
POLL = 0.2


class _Catcher(http.server.BaseHTTPRequestHandler):
    messages: list[Any]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        self.server.messages.append(json.loads(body or b"null"))  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("content-length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def chat_webhook(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Any]]:
    """A chat webhook on loopback that keeps what it is sent."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Catcher)
    server.messages = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("CHAT_WEBHOOK_URL", f"http://127.0.0.1:{server.server_address[1]}/hook")
    try:
        yield server.messages  # type: ignore[attr-defined]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def _fast(dag: Any) -> None:
    """Shorten every Retell wait of the DAG, mapped tasks included."""
    for task in dag.tasks:
        partial = getattr(task, "partial_kwargs", None)
        for name in ("poke_interval", "poll_interval"):
            if isinstance(partial, dict) and name in partial:
                partial[name] = POLL
            elif partial is None and hasattr(task, name):
                setattr(task, name, POLL)


def _dags(namespace: dict[str, Any]) -> list[Any]:
    from airflow.sdk import DAG

    found: dict[str, Any] = {}
    for value in namespace.values():
        if isinstance(value, DAG):
            found.setdefault(value.dag_id, value)
    return list(found.values())


def test_samples_found():
    """The harness sees the docs' samples, and skips only a few fragments."""
    assert len(ALL) >= 25
    skipped = [s.id for s in ALL if s.skipped]
    assert len(skipped) <= len(ALL) // 5, skipped


@pytest.fixture
def no_leftover_asset_events(airflow_db) -> Iterator[None]:
    """A sample's Asset events are removed after it, so tests sharing the database never see them."""
    from airflow.models.asset import AssetEvent
    from airflow.utils.session import create_session
    from sqlalchemy import delete, func, select

    with create_session() as session:
        before = session.scalar(select(func.max(AssetEvent.id))) or 0
    yield
    with create_session() as session:
        session.execute(delete(AssetEvent).where(AssetEvent.id > before))


@pytest.mark.parametrize("sample", SINGLE, ids=[s.id for s in SINGLE])
@pytest.mark.usefixtures("no_leftover_asset_events")
def test_sample_runs(sample: Sample, airflow_db, retell_conn, chat_webhook, tmp_path, monkeypatch):
    from scripts.dagrun import sync_dag

    if "pool" in sample.options:  # the pool the sample's bash line creates
        from airflow.models.pool import Pool

        name, _, slots = sample.options["pool"].partition(":")
        Pool.create_or_update_pool(name, int(slots), "docs sample", include_deferred=False)
    if "copy" in sample.options:  # files the sample reads, next to it
        source = ROOT / sample.options["copy"]
        shutil.copytree(source, tmp_path / source.name)
    path = tmp_path / sample.options.get("file", "sample.py")
    path.write_text(sample.code, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    namespace = runpy.run_path(str(path), run_name="docs_sample")

    expected = sample.options.get("expect", "success")
    for dag in _dags(namespace):
        _fast(dag)
        run = sync_dag(dag).test()
        assert run.state == expected, f"{sample.id}: DAG {dag.dag_id} ended {run.state}"
    if "chat" in sample.options:
        assert len(chat_webhook) == int(sample.options["chat"]), chat_webhook
    if "writes" in sample.options:  # a report the sample writes (to an absolute path): there, then gone
        written = Path(sample.options["writes"])
        assert list(written.rglob("*.xml")), f"{sample.id}: no report under {written}"
        shutil.rmtree(written)
        with contextlib.suppress(OSError):
            written.parent.rmdir()


def _start_project(group: str, folder: Path) -> subprocess.Popen[bytes]:
    """Write the group's files to ``folder`` and start pytest there, as the user would run it."""
    for sample in GROUPS[group]:
        path = folder / sample.options["file"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(sample.code, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "PYTEST"))}
    env["PYTHONPATH"] = str(ROOT)
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    output = (folder / "pytest-output.txt").open("wb")
    return subprocess.Popen(command, cwd=folder, env=env, stdout=output, stderr=subprocess.STDOUT)


@pytest.fixture(scope="module", autouse=True)
def projects(request: pytest.FixtureRequest, tmp_path_factory) -> Iterator[dict[str, Any]]:
    """The selected projects start with this module's first test and run alongside the others
    (they spend most of their time starting Airflow and waiting on polls)."""
    selected = [
        item.callspec.params["group"]
        for item in request.session.items
        if item.originalname == "test_sample_project_passes_its_tests"
    ]
    started = {}
    for group in selected:
        folder = tmp_path_factory.mktemp("project")
        started[group] = (_start_project(group, folder), folder)
    yield started
    for process, _ in started.values():
        if process.poll() is None:
            process.kill()
        process.wait()


@pytest.mark.slow
@pytest.mark.parametrize("group", list(GROUPS), ids=list(GROUPS))
def test_sample_project_passes_its_tests(group: str, projects):
    """The files of a group, as a user's project: its tests pass under pytest."""
    process, folder = projects[group]
    returncode = process.wait(timeout=300)
    output = (folder / "pytest-output.txt").read_text(encoding="utf-8", errors="replace")
    assert returncode == 0, output[-8000:]
    assert " passed" in output
