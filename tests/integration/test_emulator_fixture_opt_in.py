"""The emulator's pytest fixtures load only where a project asks for them (one line in conftest.py)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

USER_TEST = textwrap.dedent(
    """
    def test_against_the_emulator(retell_emulator):
        with retell_emulator.client() as client:
            assert client.get("/list-agents").status_code == 200
        assert retell_emulator.count("GET", "/list-agents") == 1
    """
)


def _pytest(project: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(project)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=project,
        check=False,
    )


def test_a_project_without_the_line_does_not_load_the_plugin(tmp_path: Path) -> None:
    (tmp_path / "test_user.py").write_text(USER_TEST)
    proc = _pytest(tmp_path)
    assert proc.returncode != 0
    assert "fixture 'retell_emulator' not found" in proc.stdout


def test_the_documented_line_gives_the_fixture(tmp_path: Path) -> None:
    (tmp_path / "conftest.py").write_text(
        'pytest_plugins = ["airflow_provider_retell.emulator.pytest_plugin"]\n'
    )
    (tmp_path / "test_user.py").write_text(USER_TEST)
    proc = _pytest(tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 passed" in proc.stdout
