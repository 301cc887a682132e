"""Start and stop the real Airflow components (api-server, scheduler, dag-processor, triggerer).

Used by ``test_real_components.py``, ``scripts/airflow_ui.py`` (``make airflow-ui``) and, through
it, the browser tests. Every component runs in its own process group
(``start_new_session=True``) with its output in a log file, so a test can kill one component
with everything it forked, and teardown never signals a process it did not start: the group
leader is only reaped (``wait``) after its group has been signalled, so its PID, which is also
the group id, cannot have been reused by then.

Authentication: with ``[core] simple_auth_manager_all_admins = True`` the api-server's
``SimpleAllAdminMiddleware`` adds an admin bearer token to every request, so the REST API needs no
token. :class:`AirflowApi` still fetches one from ``GET /auth/token`` (the all-admins token
endpoint; 403 when the mode is off) and sends it, so the calls also work behind a stricter set-up.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import httpx

AIRFLOW_BIN = str(Path(sys.executable).with_name("airflow"))
STOP_TIMEOUT = 20.0
T = TypeVar("T")


class ComponentError(AssertionError):
    """A component did not start or a bounded wait ran out (the message carries the log tails)."""


def free_port() -> int:
    """A TCP port that is free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def airflow_env(
    home: Path, dags_folder: Path, api_port: int, extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The environment for every component: a private AIRFLOW_HOME, SQLite, LocalExecutor, loopback.

    Airflow settings inherited from the test process (its session AIRFLOW_HOME, dags folder, log
    folder, connections) are dropped, so the components never touch the in-process test database.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    base_url = f"http://127.0.0.1:{api_port}"
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": "4",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{base_url}/execution/",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(api_port),
            "AIRFLOW__API__BASE_URL": base_url,
            "AIRFLOW__API__WORKERS": "1",
            # One secret for every process: the scheduler signs the task tokens the api-server checks.
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),  # 64 bytes: HS512 wants >= 64
            "AIRFLOW__API__SECRET_KEY": secrets.token_hex(32),
            "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
            "NO_PROXY": "127.0.0.1,localhost",
            "no_proxy": "127.0.0.1,localhost",
        }
    )
    env.update(extra or {})
    return env


def tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        return f"<cannot read {path}: {exc}>"
    return "\n".join(text.splitlines()[-lines:])


class Component:
    """One long-running ``airflow <command>`` process, leader of its own process group."""

    def __init__(self, name: str, args: list[str], env: Mapping[str, str], log_path: Path) -> None:
        self.name = name
        self.args = args
        self.env = dict(env)
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Component:
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [AIRFLOW_BIN, *self.args],
                env=self.env,
                cwd=str(self.log_path.parent),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None, f"{self.name} was never started"
        return self.process.pid

    def exited(self) -> bool:
        """Whether the leader has exited, without reaping it (its PID stays reserved)."""
        if self.process is None or self.process.returncode is not None:
            return True
        info = os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        return info is not None

    def _group_alive(self) -> bool:
        try:
            os.killpg(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:  # pragma: no cover - cannot happen for our own children
            return False
        return True

    def _signal_group(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, sig)

    def kill(self) -> None:
        """SIGKILL the whole process group at once (a crash: no clean-up code runs), then reap."""
        if self.process is None or self.process.returncode is not None:
            return
        self._signal_group(signal.SIGKILL)
        self.process.wait(STOP_TIMEOUT)

    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """SIGTERM the group, wait, then SIGKILL what is left; reap the leader last."""
        stop_components([self], timeout)

    def log_tail(self, lines: int = 40) -> str:
        return f"--- {self.name} ({self.log_path}) ---\n{tail(self.log_path, lines)}"


class AirflowStack:
    """The components sharing one AIRFLOW_HOME; ``stop_all()`` stops every one ever started."""

    def __init__(self, home: Path, env: Mapping[str, str]) -> None:
        self.home = home
        self.env = dict(env)
        self.components: list[Component] = []
        self._counts: dict[str, int] = {}

    def migrate(self, timeout: float = 180.0) -> None:
        log_path = self.home / "db-migrate.log"
        with open(log_path, "wb") as log:
            result = subprocess.run(
                [AIRFLOW_BIN, "db", "migrate"],
                env=self.env,
                cwd=str(self.home),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                timeout=timeout,
                check=False,
            )
        if result.returncode != 0:
            raise ComponentError(f"airflow db migrate failed ({result.returncode}):\n{tail(log_path)}")

    def start(self, command: str, *args: str) -> Component:
        n = self._counts[command] = self._counts.get(command, 0) + 1
        name = command if n == 1 else f"{command}-{n}"
        component = Component(name, [command, *args], self.env, self.home / f"{name}.log")
        self.components.append(component)
        return component.start()

    def check_running(self) -> None:
        """Fail at once, with its log, if a component that should be running has died."""
        for component in self.components:
            if component.running() and component.exited():
                raise ComponentError(f"{component.name} exited unexpectedly\n{self.diagnostics()}")

    def stop_all(self, timeout: float = STOP_TIMEOUT) -> None:
        stop_components(self.components, timeout)

    def diagnostics(self, lines: int = 40) -> str:
        return "\n".join(c.log_tail(lines) for c in self.components)


def _listening_inodes() -> dict[str, tuple[str, int]]:
    """Socket inode -> (address, port) of every listening TCP socket (IPv4 and IPv6) on the machine."""
    listening: dict[str, tuple[str, int]] = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table, encoding="ascii") as f:
            for line in f.read().splitlines()[1:]:
                fields = line.split()
                if fields[3] != "0A":  # TCP_LISTEN
                    continue
                address_hex, port_hex = fields[1].split(":")
                raw = bytes.fromhex(address_hex)
                # /proc shows each 32-bit word in host (little-endian) order.
                words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
                family = socket.AF_INET if len(raw) == 4 else socket.AF_INET6
                listening[fields[9]] = (socket.inet_ntop(family, words), int(port_hex, 16))
    return listening


def listening_sockets(components: list[Component]) -> dict[str, list[tuple[str, int]]]:
    """The TCP addresses that processes of the running components' groups listen on (Linux only)."""
    groups = {c.pid: c.name for c in components if c.running()}
    listening = _listening_inodes()
    found: dict[str, list[tuple[str, int]]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            name = groups.get(os.getpgid(int(entry)))
            if name is None:
                continue
            for fd in os.listdir(f"/proc/{entry}/fd"):
                target = os.readlink(f"/proc/{entry}/fd/{fd}")
                if target.startswith("socket:[") and target[8:-1] in listening:
                    found.setdefault(name, []).append(listening[target[8:-1]])
        except OSError:  # the process exited meanwhile
            continue
    return found


def stop_components(components: list[Component], timeout: float = STOP_TIMEOUT) -> None:
    """Stop several components at once: SIGTERM every group, wait, SIGKILL what is left, reap.

    Each leader is reaped only after its group got the final SIGKILL, so no signal can reach a
    process that merely reused one of our PIDs.
    """
    running = [c for c in components if c.running()]
    for component in running:
        component._signal_group(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not all(c.exited() for c in running):
        time.sleep(0.2)
    # Give the leaders' children a moment to follow them, then kill whatever is left.
    grace = min(deadline, time.monotonic() + 3.0)
    while time.monotonic() < grace and any(c._group_alive() for c in running):
        time.sleep(0.2)
    for component in running:
        component._signal_group(signal.SIGKILL)
    for component in running:
        assert component.process is not None
        component.process.wait(STOP_TIMEOUT)


def wait_for(
    what: str,
    probe: Callable[[], T | None],
    timeout: float,
    *,
    interval: float = 1.0,
    stack: AirflowStack | None = None,
    extra: Callable[[], str] | None = None,
) -> T:
    """Call ``probe`` until it returns something other than None/False; fail with the logs after ``timeout``."""
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        if stack is not None:
            stack.check_running()
        try:
            value = probe()
        except (httpx.HTTPError, OSError) as exc:
            value, last_error = None, exc
        if value is not None and value is not False:
            return value
        if time.monotonic() >= deadline:
            details = [f"timed out after {timeout:.0f}s waiting for {what}"]
            if last_error is not None:
                details.append(f"last error: {last_error!r}")
            if extra is not None:
                details.append(extra())
            if stack is not None:
                details.append(stack.diagnostics())
            raise ComponentError("\n".join(details))
        time.sleep(interval)


class AirflowApi:
    """A thin client for the public REST API (``/api/v2``) of the api-server."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self._client = httpx.Client(base_url=base_url, timeout=15.0, trust_env=False)
        self._token: str | None = None

    def close(self) -> None:
        self._client.close()

    def healthy(self) -> dict[str, Any] | None:
        response = self._client.get("/api/v2/monitor/health")
        if response.status_code != 200:
            return None
        body = response.json()
        parts = ("metadatabase", "scheduler", "triggerer", "dag_processor")
        ok = all((body.get(part) or {}).get("status") == "healthy" for part in parts)
        return body if ok else None

    def login(self, username: str | None = None, password: str | None = None) -> None:
        """A bearer token: the all-admins ``GET /auth/token``, or a user's ``POST /auth/token``."""
        if username is None:
            response = self._client.get("/auth/token")
        else:
            response = self._client.post("/auth/token", json={"username": username, "password": password})
        response.raise_for_status()
        self._token = response.json()["access_token"]
        self._client.headers["Authorization"] = f"Bearer {self._token}"

    def request(self, method: str, path: str, *, ok: tuple[int, ...] = (200,), **kwargs: Any) -> Any:
        response = self._client.request(method, f"/api/v2{path}", **kwargs)
        if response.status_code not in ok:
            raise ComponentError(f"{method} /api/v2{path}: {response.status_code} {response.text[:2000]}")
        return response.json() if response.content else None

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.request("GET", path, **kwargs)
