"""This provider's trigger against dbt Cloud's, N at a time in one loop, on the same fake server.

For each N and side: a fresh fake server process (``fake_api.py``) and a fresh trigger process
(``triggerer_load.py``), one after the other, never both sides in one loop; the order of the sides
alternates from one N to the next so drift in machine load does not always favour the same side.
Both sides get the same poll interval and the same completion schedule.

Quick single-N run while iterating (prints the table, does not touch the docs):
    .venv/bin/python benchmarks/side_by_side.py --n 1000
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trigger_report import LABEL, Results, machine, markdown

HERE = Path(__file__).resolve().parent
SIDES = ("retell", "dbt")
NS = (100, 300, 1000)


@dataclass(frozen=True)
class Certs:
    """A throw-away CA made at start: the clients trust it through ``SSL_CERT_FILE``, nothing else."""

    ca: str
    server: str

    @classmethod
    def make(cls, folder: Path) -> Certs:
        import trustme

        ca = trustme.CA()
        cert = ca.issue_cert("127.0.0.1", "localhost")
        ca.cert_pem.write_to_path(str(folder / "ca.pem"))
        cert.private_key_and_cert_chain_pem.write_to_path(str(folder / "server.pem"))
        return cls(ca=str(folder / "ca.pem"), server=str(folder / "server.pem"))


def _listen_overflows() -> int:
    """Kernel count of connections dropped because a listen queue was full (should stay 0)."""
    lines = Path("/proc/net/netstat").read_text().splitlines()
    for names, values in zip(lines[::2], lines[1::2], strict=False):
        if names.startswith("TcpExt:"):
            row = dict(zip(names.split()[1:], values.split()[1:], strict=True))
            return int(row.get("ListenOverflows", 0)) + int(row.get("ListenDrops", 0))
    return 0


def _env(ports: dict[str, int], certs: Certs, home: str) -> dict[str, str]:
    def retell(port: int) -> str:
        return json.dumps({"conn_type": "retell", "host": f"https://127.0.0.1:{port}", "password": "key"})

    def dbt(port: int) -> str:  # dbt Cloud's hook puts the host in https://{host}/api/v2/...
        return json.dumps(
            {"conn_type": "dbt_cloud", "host": f"127.0.0.1:{port}", "login": "42", "password": "t"}
        )

    return {
        **os.environ,
        "AIRFLOW_HOME": home,
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "SSL_CERT_FILE": certs.ca,
        "AIRFLOW_CONN_RETELL_DEFAULT": retell(ports["measured"]),
        "AIRFLOW_CONN_RETELL_WARMUP": retell(ports["warmup"]),
        "AIRFLOW_CONN_DBT_CLOUD_DEFAULT": dbt(ports["measured"]),
        "AIRFLOW_CONN_DBT_CLOUD_WARMUP": dbt(ports["warmup"]),
    }


def run_one(side: str, n: int, poll: float, spread: float, certs: Certs, workdir: Path) -> dict[str, Any]:
    """One side at one N: fresh server, fresh trigger process; returns the merged figures."""
    budget = spread + 2 * poll + 60  # imports, warm-up, the window and its grace: stops by itself
    serve = [
        sys.executable,
        str(HERE / "fake_api.py"),
        "--cert",
        certs.server,
        "--max-seconds",
        str(budget + 30),
    ]
    server = subprocess.Popen(
        serve,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        assert server.stdin is not None
        ports = json.loads(server.stdout.readline())["ports"]
        overflows = _listen_overflows()
        log, figures = workdir / f"{side}-{n}.log", workdir / f"{side}-{n}.json"
        load = [sys.executable, str(HERE / "triggerer_load.py"), "--side", side, "--n", str(n)]
        with log.open("w") as output:
            out = subprocess.run(
                [*load, "--poll", str(poll), "--spread", str(spread), "--out", str(figures)],
                env=_env(ports, certs, str(workdir / "airflow-home")),
                stdout=output,
                stderr=subprocess.STDOUT,
                timeout=budget,
                check=False,
            )
        if out.returncode != 0:
            tail = log.read_text()[-2000:]
            raise RuntimeError(f"{side} N={n} failed ({out.returncode}):\n{tail}")
        client = json.loads(figures.read_text())
        overflows = _listen_overflows() - overflows
        server.stdin.close()
        stats = json.loads(server.stdout.readline())
        server.wait(timeout=30)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    measured = stats["measured"]
    requests = measured["requests"][side]
    errors = dict(client["errors"])
    if measured["errors"]:
        errors["server non-200 replies"] = measured["errors"]
    if overflows:
        errors["listen queue overflows"] = overflows
    return {
        **client,
        "connections": measured["accepted"],
        "peak_open": measured["peak_open"],
        "one_request": measured["one_request"],
        "requests": requests,
        "cpu_per_poll_ms": client["cpu_s"] / requests * 1000 if requests else None,
        "kib_per_trigger": client["rss_delta_kib"] / n,
        "errors": errors,
        "error_count": sum(errors.values()),
        "server": stats["load"],
        "log_lines": sum(1 for _ in log.open()),  # the triggers' own logging is part of their cost
    }


def run_all(ns: tuple[int, ...], poll: float, spread: float) -> Results:
    results: Results = {}
    with tempfile.TemporaryDirectory(prefix="retell-side-by-side-") as tmp:
        workdir = Path(tmp)
        certs = Certs.make(workdir)
        for k, n in enumerate(ns):
            runs = {}
            for side in SIDES if k % 2 == 0 else SIDES[::-1]:
                print(f"side by side: {LABEL[side]}, N = {n:,} ...", file=sys.stderr, flush=True)
                runs[side] = run_one(side, n, poll, spread, certs, workdir)
            results[n] = {side: runs[side] for side in SIDES}
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, action="append", help=f"triggers per loop, repeatable; default {NS}")
    parser.add_argument("--poll", type=float, default=2.0, help="poll interval of both sides, seconds")
    parser.add_argument("--spread", type=float, default=30.0, help="completions spread over these seconds")
    parser.add_argument("--json", action="store_true", help="print the raw figures too")
    args = parser.parse_args()
    results = run_all(tuple(args.n or NS), args.poll, args.spread)
    if args.json:
        print(json.dumps(results, indent=1))
    print(f"Machine: {machine()}\n")
    print(markdown(results, args.poll, args.spread))


if __name__ == "__main__":
    main()
