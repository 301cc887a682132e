"""Build the wheel, install it into a clean venv, and check what a user gets.

Checks: the provider registers through its entry point (Airflow lists it), the wheel carries
``py.typed``, the emulator and its default seed, ships no tests or scripts, and the installed
emulator starts and answers a create.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import venv
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHECK = r"""
import importlib.metadata as md, json, subprocess, sys, urllib.request
from pathlib import Path
import airflow_provider_retell as pkg
eps = [e for e in md.entry_points(group="apache_airflow_provider") if e.value.startswith("airflow_provider_retell")]
assert len(eps) == 1, eps
info = eps[0].load()()
assert info["package-name"] == "airflow-provider-retell", info
assert info["connection-types"][0]["connection-type"] == "retell"
root = Path(pkg.__file__).parent
for rel in ("py.typed", "emulator/default_seed.yaml", "emulator/__main__.py", "emulator/pytest_plugin.py"):
    assert (root / rel).is_file(), rel
proc = subprocess.Popen([sys.executable, "-m", "airflow_provider_retell.emulator", "--port", "0",
                         "--api-key", "wheel-check"], stdout=subprocess.PIPE, text=True)
try:
    url = proc.stdout.readline().strip()
    assert url.startswith("http://127.0.0.1:"), url
    body = json.dumps({"response_engine": {"type": "conversation-flow", "conversation_flow_id": "cf_support"},
                       "test_case_definition_ids": ["tcd_support_01"]}).encode()
    req = urllib.request.Request(url + "/create-batch-test", data=body, method="POST",
                                 headers={"Authorization": "Bearer wheel-check", "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status == 201, resp.status
        assert json.load(resp)["total_count"] == 1
finally:
    proc.terminate(); proc.wait(10)
print("installed package OK:", info["package-name"], info["versions"][0])
"""


def run(*cmd: str | Path, **kw: object) -> subprocess.CompletedProcess[str]:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    return subprocess.run([str(c) for c in cmd], check=True, text=True, **kw)  # type: ignore[call-overload]


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="retell-wheel-check-") as tmp:
        tmpdir = Path(tmp)
        run(
            sys.executable,
            "-m",
            "build",
            "--wheel",
            "--outdir",
            tmpdir / "dist",
            ROOT,
            stdout=subprocess.DEVNULL,
        )
        wheel = next((tmpdir / "dist").glob("airflow_provider_retell-*.whl"))
        names = zipfile.ZipFile(wheel).namelist()
        stray = [n for n in names if n.split("/")[0] in ("tests", "scripts", "benchmarks", "example_dags")]
        assert not stray, f"wheel ships non-package files: {stray[:5]}"
        venv.create(tmpdir / "venv", with_pip=True)
        py = tmpdir / "venv" / "bin" / "python"
        run(py, "-m", "pip", "install", "-q", "-c", ROOT / "constraints.txt", wheel)
        run(py, "-c", CHECK, cwd=tmpdir)
        env = {**os.environ, "AIRFLOW_HOME": str(tmpdir / "airflow_home")}
        listed = run(
            py, "-m", "airflow", "providers", "list", "--output", "json", env=env, capture_output=True
        )
        providers = {p["package_name"] for p in json.loads(listed.stdout[listed.stdout.index("[") :])}
        assert "airflow-provider-retell" in providers, providers
        print(f"wheel OK: {wheel.name} ({len(names)} files), registered with Airflow")


if __name__ == "__main__":
    main()
