"""`make airflow-ui` / `make airflow-ui-stop`: a local Airflow with the example DAGs and the emulator.

``start`` launches the bundled Retell emulator and the four Airflow components (api-server,
scheduler, dag-processor, triggerer) on 127.0.0.1, each in its own process group with its output in
a log file, creates the ``retell_default`` connection to the emulator, waits until Airflow is
healthy, prints the URL, the login and how to stop, and returns (the processes keep running).
``stop`` stops exactly the processes ``start`` recorded (by PID and start time, so a reused PID is
never signalled). ``status`` says whether they run.

Everything lives in ``.airflow-ui/`` (gitignored): the Airflow home (SQLite, logs), the PID file,
the emulator's and each component's log. A new ``start`` begins from an empty database.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.e2e.components import (  # noqa: E402 - after the sys.path line above
    AIRFLOW_BIN,
    AirflowApi,
    AirflowStack,
    ComponentError,
    airflow_env,
    free_port,
    tail,
    wait_for,
)

STATE = Path(os.environ.get("AIRFLOW_UI_STATE", ROOT / ".airflow-ui"))
PIDS = STATE / "pids.json"
USER = "admin"
DEFAULT_PORT = 8080
#: 100x faster than Retell: the 8-case agent_support batch takes ~1 s, so a run finishes at its
#: first poll; raise it (e.g. AIRFLOW_UI_TIME_SCALE=0.2) to watch a task sit in "deferred".
TIME_SCALE = float(os.environ.get("AIRFLOW_UI_TIME_SCALE", "0.01"))
COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
#: The browser tests point this at a copy of one example DAG with a short poll interval.
DAGS_FOLDER = Path(os.environ.get("AIRFLOW_UI_DAGS_FOLDER", ROOT / "example_dags"))


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (/proc/PID/stat field 22), or None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def _ours(entry: dict[str, Any]) -> bool:
    """Whether the recorded process is still the one we started (same PID, same start time)."""
    return _start_time(int(entry["pid"])) == entry["started"]


def _group_alive(pid: int) -> bool:
    try:
        os.killpg(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def _running() -> list[dict[str, Any]]:
    if not PIDS.exists():
        return []
    entries = json.loads(PIDS.read_text())["processes"]
    return [e for e in entries if _ours(e)]


def _record(processes: list[dict[str, Any]], info: dict[str, Any]) -> None:
    PIDS.write_text(json.dumps({"processes": processes, **info}, indent=2) + "\n")


def _entry(name: str, pid: int) -> dict[str, Any]:
    return {"name": name, "pid": pid, "started": _start_time(pid)}


def stop(quiet: bool = False) -> int:
    if not PIDS.exists():
        if not quiet:
            print("Nothing to stop: no .airflow-ui/pids.json (was `make airflow-ui` started here?)")
        return 0
    entries = json.loads(PIDS.read_text())["processes"]
    live = [e for e in entries if _ours(e)]
    # Each recorded process leads its own process group (start_new_session): signalling the group
    # also stops what it forked (gunicorn/uvicorn workers, task runners, the trigger runner).
    for entry in live:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(int(entry["pid"]), signal.SIGTERM)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and any(_group_alive(int(e["pid"])) for e in live):
        time.sleep(0.3)
    for entry in live:
        if _group_alive(int(entry["pid"])):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(int(entry["pid"]), signal.SIGKILL)
    PIDS.unlink()
    if not quiet:
        names = ", ".join(e["name"] for e in live) or "none were still running"
        print(f"Stopped {names}. State kept in {STATE} (logs); `make airflow-ui` starts afresh.")
    return 0


def _start_emulator(api_key: str) -> tuple[subprocess.Popen[bytes], str]:
    out, err = STATE / "emulator.url", STATE / "emulator.log"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    command = [sys.executable, "-m", "airflow_provider_retell.emulator", "--host", "127.0.0.1", "--port", "0"]
    command += ["--api-key", api_key, "--time-scale", repr(TIME_SCALE), "--log-level", "warning"]
    with open(out, "wb") as stdout, open(err, "wb") as stderr:
        process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr, env=env, start_new_session=True
        )
    url = wait_for(
        "the emulator to print its URL",
        lambda: out.read_text().strip().partition("\n")[0] or None,
        30,
        interval=0.2,
        extra=lambda: tail(err),
    )
    return process, url


def start() -> int:
    if running := _running():
        info = json.loads(PIDS.read_text())
        print(f"Already running ({', '.join(e['name'] for e in running)}): {info['url']}")
        passwords = Path(info["home"]) / "passwords.json"
        if passwords.exists():
            print(f"Login: {info['user']} / {json.loads(passwords.read_text())[info['user']]}")
        print("Stop it with `make airflow-ui-stop` first to start afresh.")
        return 0
    stop(quiet=True)  # a half-dead earlier start
    home = STATE / "home"
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    port = int(os.environ.get("AIRFLOW_UI_PORT", "0")) or _preferred_port()
    url = f"http://127.0.0.1:{port}"
    password = secrets.token_urlsafe(9)
    passwords_file = home / "passwords.json"
    passwords_file.write_text(json.dumps({USER: password}) + "\n")
    passwords_file.chmod(0o600)
    api_key = "local-ui-" + secrets.token_hex(8)
    processes: list[dict[str, Any]] = []
    started = time.monotonic()
    print(f"Starting the Retell emulator and Airflow (api-server on {url}); state in {STATE} ...")
    emulator, emulator_url = _start_emulator(api_key)
    processes.append(_entry("emulator", emulator.pid))
    # The emulator's throw-away key is recorded for the browser tests (the file is gitignored).
    info = {"url": url, "emulator": emulator_url, "api_key": api_key, "user": USER, "home": str(home)}
    _record(processes, info)
    env = airflow_env(
        home,
        DAGS_FOLDER,
        port,
        {
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{USER}:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords_file),
            "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "10",
        },
    )
    _write_env_file(env)
    stack = AirflowStack(home, env)
    try:
        stack.migrate()
        for command in COMPONENTS:
            # --skip-serve-logs: the log servers would listen on all interfaces; the api-server reads
            # the task logs from the shared local folder.
            args = ["--skip-serve-logs"] if command in ("scheduler", "triggerer") else []
            component = stack.start(command, *args)
            processes.append(_entry(command, component.pid))
            _record(processes, info)
        api = AirflowApi(url)
        try:
            wait_for("Airflow to be healthy", api.healthy, 180, stack=stack)
            # Through the REST API rather than `airflow connections add`: no extra Python start-up.
            api.login(USER, password)
            conn = {"connection_id": "retell_default", "conn_type": "retell", "host": emulator_url}
            api.request("POST", "/connections", ok=(201,), json={**conn, "password": api_key})
        finally:
            api.close()
    except (ComponentError, httpx.HTTPError, OSError) as exc:
        print(f"Airflow did not start: {exc}\n{stack.diagnostics()}", file=sys.stderr)
        stop(quiet=True)
        return 1
    print(
        f"""
Airflow {_airflow_version()} is up after {time.monotonic() - started:.0f}s, with the DAGs in {DAGS_FOLDER}:

  URL:      {url}
  Login:    {USER} / {password}
  Retell:   the bundled emulator at {emulator_url} (connection retell_default)

Try: Dags -> retell_ui_trigger -> Trigger (agent_support passes, agent_booking fails the gate);
     Admin -> Connections -> Add Connection -> Retell AI for the connection form.
CLI: source {STATE / "env.sh"} && airflow connections test retell_default
     (on Airflow 3.3.2 the Test icon in the connections list answers "Bad Request" for any
     connection without a port: apache/airflow#73298, fixed upstream, not yet released)
Logs: {STATE}/*.log and {home}/logs
Stop: make airflow-ui-stop
"""
    )
    return 0


def _write_env_file(env: dict[str, str]) -> None:
    """``.airflow-ui/env.sh``: the settings the components run with, for the ``airflow`` CLI."""
    lines = [f"export PATH={shlex.quote(str(Path(AIRFLOW_BIN).parent))}:$PATH"]
    lines += [f"export {k}={shlex.quote(v)}" for k, v in sorted(env.items()) if k.startswith("AIRFLOW")]
    path = STATE / "env.sh"
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o600)  # it holds the JWT and API secret keys


def _preferred_port() -> int:
    """8080 when it is free, else any free port."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", DEFAULT_PORT))
        except OSError:
            return free_port()
    return DEFAULT_PORT


def _airflow_version() -> str:
    from importlib.metadata import version

    return version("apache-airflow")


def status() -> int:
    running = _running()
    if not running:
        print("Not running.")
        return 1
    info = json.loads(PIDS.read_text())
    print(f"Running at {info['url']}: " + ", ".join(f"{e['name']} ({e['pid']})" for e in running))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=("start", "stop", "status"))
    args = parser.parse_args()
    STATE.mkdir(parents=True, exist_ok=True)
    return {"start": start, "stop": stop, "status": status}[args.command]()


if __name__ == "__main__":
    sys.exit(main())
