"""A real ``airflow triggerer`` under load: N mapped deferrable sensors waiting at once.

Starts the real components (``api-server``, ``scheduler``, ``dag-processor``, ``triggerer``) on
127.0.0.1 with SQLite and the LocalExecutor, as ``tests/e2e/components.py`` does, and the Retell
emulator. The bench creates N one-case batches in the emulator up front and holds every one
``in_progress`` (an emulator ``patch`` fault on ``GET /get-batch-test/*``), then triggers one run of
a DAG whose ``RetellBatchTestSensor`` (``deferrable=True``) is mapped over the N ids. Every mapped
task starts on a worker, polls once and defers; once all N wait in the triggerer, they are held
for ``--hold`` seconds, then released (the fault is cleared: the next poll of each batch reads
``complete``), and every task resumes on a worker once, lists its batch's runs and pushes its result.

What it reports is the triggerer's own view, read from its log and the metadata database:

- "Triggerer's async thread was blocked" warnings (Airflow's watchdog, threshold
  ``[triggerer] blocked_main_thread_warning_threshold``, 0.2 s) in the triggerer's log, and how many
  came while trigger rows existed (the machine's load average is sampled too: a starved process
  trips the watchdog by itself);
- its capacity (``[triggerer] capacity``) and the most trigger rows assigned to it at once;
- its heartbeat: the ``job`` row's ``latest_heartbeat``, sampled, and the largest age seen;
- every wait resumed exactly once: task instances in ``success`` at try 1, no trigger rows left,
  one trigger row per task ever made, every batch polled until a ``complete`` reply, its runs
  listed exactly once (``execute_complete`` ran once), and each task's result in XCom;
- the triggerer processes' CPU and peak RSS, polls per batch, and detection (release to the first
  ``complete`` reply of each batch) and resume (release to the task's end) latencies.

Bounded: ``--budget`` seconds in all (it stops the components and reports what it saw when that
runs out), loopback only, every process it starts is stopped by its own process group id.

    .venv/bin/python benchmarks/real_triggerer.py --n 200 --out /tmp/real.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import re
import signal
import sqlite3
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DAG_ID = "retell_bench_real_triggerer"
TASK_ID = "wait"
#: One passing case of the emulator's default seed (agent_support's conversation flow).
ENGINE = {"type": "conversation-flow", "conversation_flow_id": "cf_support"}
CASE = "tcd_support_01"
BLOCKED = "Triggerer's async thread was blocked"
HOLD_FAULT = {"status": "in_progress", "pass_count": 0, "fail_count": 0, "error_count": 0}

DAG_FILE = '''\
"""Written by benchmarks/real_triggerer.py: a deferrable sensor mapped over the run's batch ids."""

from datetime import datetime

from airflow.sdk import DAG, task

from airflow_provider_retell.sensors.batch_test import RetellBatchTestSensor

with DAG(
    dag_id="{dag_id}",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_tasks={parallelism},
):

    @task
    def batch_ids(**context):
        return list(context["dag_run"].conf["batch_test_ids"])

    RetellBatchTestSensor.partial(
        task_id="{task_id}", deferrable=True, poke_interval={poll}, timeout={timeout}
    ).expand(batch_test_id=batch_ids())
'''


def _utc(text: str | None) -> float | None:
    """An Airflow timestamp column read from SQLite (UTC) as epoch seconds."""
    if not text:
        return None
    text = text.replace("T", " ").split("+")[0]
    fmt = "%Y-%m-%d %H:%M:%S.%f" if "." in text else "%Y-%m-%d %H:%M:%S"
    return datetime.strptime(text, fmt).replace(tzinfo=timezone.utc).timestamp()


class Db:
    """Short read-only queries on the components' SQLite file: a reader never holds a lock for long."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def query(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        for attempt in range(20):
            try:
                with contextlib.closing(
                    sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=2.0)
                ) as db:
                    return db.execute(sql, args).fetchall()
            except sqlite3.OperationalError:  # locked by a writer: try again shortly
                time.sleep(0.05 * (attempt + 1))
        raise RuntimeError(f"the metadata database stayed locked: {sql}")


class Sampler:
    """What the bench watches every couple of seconds, from the database and /proc."""

    def __init__(self, db: Db, triggerer_pid: int) -> None:
        self.db = db
        self.triggerer = psutil.Process(triggerer_pid)
        self.samples: list[dict[str, Any]] = []
        self.cpu_seen: dict[int, float] = {}
        self.trigger_ids: set[int] = set()  # every trigger row seen: SQLite may reuse ids once deleted

    def _processes(self) -> list[psutil.Process]:
        with contextlib.suppress(psutil.Error):
            return [self.triggerer, *self.triggerer.children(recursive=True)]
        return []

    def sample(self, run_id: str) -> dict[str, Any]:
        states = dict(
            self.db.query(
                "SELECT state, COUNT(*) FROM task_instance WHERE dag_id = ? AND run_id = ? AND task_id = ? "
                "GROUP BY state",
                DAG_ID,
                run_id,
                TASK_ID,
            )
        )
        rows = self.db.query("SELECT id, triggerer_id FROM trigger")
        self.trigger_ids.update(row[0] for row in rows)
        by_job: dict[Any, int] = {}
        for _, job in rows:
            by_job[job] = by_job.get(job, 0) + 1
        triggers = list(by_job.items())
        jobs = self.db.query(
            "SELECT id, state, latest_heartbeat FROM job WHERE job_type = 'TriggererJob' ORDER BY id DESC LIMIT 1"
        )
        rss = 0
        for proc in self._processes():
            with contextlib.suppress(psutil.Error):
                rss += proc.memory_info().rss
                times = proc.cpu_times()
                self.cpu_seen[proc.pid] = times.user + times.system
        now = time.time()
        heartbeat = _utc(jobs[0][2]) if jobs else None
        sample = {
            "t": now,
            "states": {str(k): v for k, v in states.items()},
            "triggers": sum(c for _, c in triggers),
            "triggers_by_job": {str(k): c for k, c in triggers},
            "job_id": jobs[0][0] if jobs else None,
            "job_state": jobs[0][1] if jobs else None,
            "heartbeat_age": None if heartbeat is None else now - heartbeat,
            "rss": rss,
            "load1": os.getloadavg()[0],
            "cpu": sum(self.cpu_seen.values()),
        }
        self.samples.append(sample)
        return sample


def _create_batches(emulator: Any, n: int) -> list[str]:
    with emulator.client() as client:
        ids = []
        for _ in range(n):
            reply = client.post(
                "/create-batch-test", json={"response_engine": ENGINE, "test_case_definition_ids": [CASE]}
            )
            reply.raise_for_status()
            ids.append(reply.json()["test_case_batch_job_id"])
    return ids


def _log_time(line: str) -> float | None:
    """The epoch time at the start of a triggerer log line (``2026-12-01T05:51:08.184813Z ...``)."""
    stamp = line.split(" ", 1)[0].rstrip("Z")
    return _utc(stamp) if re.fullmatch(r"\d{4}-\d\d-\d\dT[\d:.]+", stamp) else None


def _triggers_at(when: float | None, samples: list[dict[str, Any]]) -> int:
    """Trigger rows in the last sample before ``when`` (-1 if unknown)."""
    before = [s for s in samples if when is not None and s["t"] <= when]
    return before[-1]["triggers"] if before else -1


def _config(env: dict[str, str]) -> dict[str, Any]:
    """The triggerer's settings as the components see them (one interpreter, not one CLI per key)."""
    import subprocess

    keys = (
        "capacity",
        "job_heartbeat_sec",
        "triggerer_health_check_threshold",
        "blocked_main_thread_warning_threshold",
    )
    code = (
        "import json; from airflow.configuration import conf; "
        f"print(json.dumps({{k: conf.get('triggerer', k) for k in {keys!r}}}))"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    return json.loads(out.stdout.strip().splitlines()[-1]) if out.returncode == 0 else dict.fromkeys(keys)


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(int(q * len(ordered)), len(ordered) - 1)]


def run(
    n: int, poll: float, hold: float, budget: float, parallelism: int, logs: Path | None = None
) -> dict[str, Any]:
    from airflow_provider_retell.emulator.pytest_plugin import start_emulator
    from tests.e2e.components import AirflowApi, AirflowStack, airflow_env, free_port, wait_for

    started = time.monotonic()
    end = started + budget

    def left(reserve: float = 0.0) -> float:
        return max(end - time.monotonic() - reserve, 1.0)

    figures: dict[str, Any] = {"n": n, "poll": poll, "hold": hold, "parallelism": parallelism, "errors": []}
    phases: dict[str, float] = {}
    with (
        tempfile.TemporaryDirectory(prefix="retell-real-triggerer-") as tmp,
        start_emulator(time_scale=0) as emu,
    ):
        home, dags = Path(tmp) / "home", Path(tmp) / "dags"
        home.mkdir()
        dags.mkdir()
        timeout = int(budget) + 600  # the sensors' own deadline: never the limit here
        (dags / f"{DAG_ID}.py").write_text(
            DAG_FILE.format(
                dag_id=DAG_ID, task_id=TASK_ID, poll=poll, timeout=timeout, parallelism=parallelism
            )
        )
        port = free_port()
        env = airflow_env(
            home,
            dags,
            port,
            {
                "AIRFLOW_CONN_RETELL_DEFAULT": emu.connection_json(),
                "AIRFLOW__CORE__PARALLELISM": str(parallelism),
                "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": str(parallelism),
                "AIRFLOW__CORE__MAX_MAP_LENGTH": str(max(n, 1024)),
                "AIRFLOW__SCHEDULER__MAX_TIS_PER_QUERY": str(max(parallelism, 16)),
                "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            },
        )
        stack = AirflowStack(home, env)
        api = AirflowApi(f"http://127.0.0.1:{port}")
        db = Db(home / "airflow.db")
        try:
            ids = _create_batches(emu, n)
            emu.add_fault("GET", "/get-batch-test/*", "patch", times=10**9, json=HOLD_FAULT)
            stack.migrate()
            stack.start("api-server")
            stack.start("scheduler", "--skip-serve-logs")
            stack.start("dag-processor")
            triggerer = stack.start("triggerer", "--skip-serve-logs")
            wait_for("the components to be healthy", api.healthy, min(150.0, left()), stack=stack)
            api.login()
            wait_for(
                f"the dag-processor to serialize {DAG_ID}",
                lambda: api.get(f"/dags/{DAG_ID}", ok=(200, 404)).get("dag_id") == DAG_ID,
                min(90.0, left()),
                stack=stack,
            )
            phases["healthy"] = time.monotonic() - started
            api.request("PATCH", f"/dags/{DAG_ID}", json={"is_paused": False})
            run_id = api.request(
                "POST",
                f"/dags/{DAG_ID}/dagRuns",
                json={"logical_date": None, "conf": {"batch_test_ids": ids}},
            )["dag_run_id"]
            triggered = time.monotonic()
            sampler = Sampler(db, triggerer.pid)
            released_at: float | None = None
            all_deferred_at: float | None = None
            reserve = 25.0  # left for the final reads and the shutdown
            while time.monotonic() < end - reserve:
                stack.check_running()
                s = sampler.sample(run_id)
                states = s["states"]
                if released_at is None:
                    if states.get("deferred", 0) == n and all_deferred_at is None:
                        all_deferred_at = time.monotonic()
                        print(
                            f"real triggerer: all {n} deferred after {all_deferred_at - triggered:.0f}s",
                            file=sys.stderr,
                        )
                    early = sum(states.get(k, 0) for k in ("success", "failed", "up_for_retry"))
                    if early:
                        figures["errors"].append(f"{early} tasks finished before the release: {states}")
                        break
                    if all_deferred_at is not None and time.monotonic() - all_deferred_at >= hold:
                        emu.clear_faults()
                        released_at = time.time()
                        phases["released"] = time.monotonic() - started
                        print("real triggerer: released", file=sys.stderr)
                elif sum(states.values()) == n and states.get("success", 0) + states.get("failed", 0) == n:
                    break
                time.sleep(2.0)
            else:
                figures["errors"].append(
                    f"the {budget:.0f} s budget ran out: {sampler.samples[-1]['states']}"
                )
            phases["finished"] = time.monotonic() - started
            figures["phases_s"] = {
                "start_up": phases.get("healthy"),
                "ramp": None if all_deferred_at is None else all_deferred_at - triggered,
                "resume": None if released_at is None else phases["finished"] - phases["released"],
                "total": phases["finished"],
            }
            final = sampler.sample(run_id)
            figures.update(_collect(db, run_id, ids, emu, released_at, sampler, final, home, env))
        except Exception as exc:  # reported, never hidden: the figures say what failed
            figures["errors"].append(f"{type(exc).__name__}: {str(exc)[:3000]}")
        finally:
            api.close()
            stack.stop_all()
            if logs is not None:  # the components' logs, for a look after the run
                logs.mkdir(parents=True, exist_ok=True)
                for path in home.glob("*.log"):
                    (logs / path.name).write_bytes(path.read_bytes())
    figures["wall_s"] = time.monotonic() - started
    return figures


def _collect(
    db: Db,
    run_id: str,
    ids: list[str],
    emu: Any,
    released_at: float | None,
    sampler: Sampler,
    final: dict[str, Any],
    home: Path,
    env: dict[str, str],
) -> dict[str, Any]:
    n = len(ids)
    tis = db.query(
        "SELECT map_index, state, try_number, next_method, trigger_id, end_date FROM task_instance "
        "WHERE dag_id = ? AND run_id = ? AND task_id = ?",
        DAG_ID,
        run_id,
        TASK_ID,
    )
    results = db.query(
        "SELECT map_index, value FROM xcom WHERE dag_id = ? AND run_id = ? AND task_id = ? AND key = 'return_value'",
        DAG_ID,
        run_id,
        TASK_ID,
    )
    by_index = {}
    for index, value in results:
        with contextlib.suppress(ValueError, TypeError):
            by_index[index] = json.loads(value)
    result_ids = {i: (r or {}).get("batch_test_id") for i, r in by_index.items() if isinstance(r, dict)}
    triggers_left = db.query("SELECT COUNT(*) FROM trigger")[0][0]
    requests = emu.requests()
    polls: dict[str, list[dict[str, Any]]] = {i: [] for i in ids}
    listings: dict[str, int] = dict.fromkeys(ids, 0)
    for r in requests:
        path = r["path"]
        if path.startswith("/get-batch-test/") and path.rsplit("/", 1)[1] in polls:
            polls[path.rsplit("/", 1)[1]].append(r)
        elif path.startswith("/v2/list-test-runs/") and path.rsplit("/", 1)[1] in listings:
            listings[path.rsplit("/", 1)[1]] += 1
    complete_reads = {
        i: [r for r in p if r["fault"] is None and r["status"] == 200] for i, p in polls.items()
    }
    detections = [
        min(r["timestamp"] for r in reads) - released_at
        for reads in complete_reads.values()
        if reads and released_at is not None
    ]
    ends = [_utc(row[5]) for row in tis if row[5]]
    resumes = [e - released_at for e in ends if e is not None and released_at is not None]
    held = [len([r for r in p if r["fault"] is not None]) for p in polls.values()]

    log_path = home / "triggerer.log"
    log = log_path.read_text(encoding="utf-8", errors="replace") if log_path.exists() else ""
    blocked = [line for line in log.splitlines() if BLOCKED in line]
    blocked_s = [float(m) for line in blocked for m in re.findall(r"blocked for ([0-9.]+) seconds", line)]
    with_triggers = sum(1 for line in blocked if _triggers_at(_log_time(line), sampler.samples) > 0)
    running_lines = [int(m) for m in re.findall(r"(\d+) triggers currently running", log)]

    samples = [s for s in sampler.samples if s["job_id"] is not None]
    ages = [s["heartbeat_age"] for s in samples if s["heartbeat_age"] is not None]
    load = [s for s in samples if s["triggers"] > 0]
    cpu_window = (
        (load[-1]["cpu"] - load[0]["cpu"]) / (load[-1]["t"] - load[0]["t"]) if len(load) > 1 else None
    )

    settings = _config(env)
    return {
        "task_states": dict(final["states"]),
        "success_try_1": sum(1 for t in tis if t[1] == "success" and t[2] == 1),
        "left_deferred_or_waiting": sum(1 for t in tis if t[3] is not None or t[4] is not None),
        "triggers_left": triggers_left,
        "triggers_made": len(sampler.trigger_ids),
        "results_in_xcom": sum(1 for t in tis if result_ids.get(t[0]) == ids[t[0]] if 0 <= t[0] < n),
        "polled_until_complete": sum(1 for reads in complete_reads.values() if reads),
        "listed_once": sum(1 for c in listings.values() if c == 1),
        "listed_more": sum(1 for c in listings.values() if c > 1),
        "held_polls_per_batch_median": statistics.median(held) if held else None,
        "held_polls_total": sum(held),
        "detect_p50_s": _percentile(detections, 0.5),
        "detect_p99_s": _percentile(detections, 0.99),
        "detect_max_s": max(detections, default=None),
        "resume_p50_s": _percentile(resumes, 0.5),
        "resume_max_s": max(resumes, default=None),
        "blocked_warnings": len(blocked),
        "blocked_with_triggers": with_triggers,
        "blocked_max_s": max(blocked_s, default=None),
        "load1_median": statistics.median(s["load1"] for s in samples) if samples else None,
        "blocked_examples": blocked[:3],
        "running_log_lines": running_lines,
        "capacity": settings["capacity"],
        "heartbeat_sec": settings["job_heartbeat_sec"],
        "health_threshold": settings["triggerer_health_check_threshold"],
        "blocked_threshold": settings["blocked_main_thread_warning_threshold"],
        "peak_triggers_assigned": max(
            (max(s["triggers_by_job"].values(), default=0) for s in samples), default=0
        ),
        "heartbeat_age_max_s": max(ages, default=None),
        "heartbeat_age_median_s": statistics.median(ages) if ages else None,
        "job_state_end": samples[-1]["job_state"] if samples else None,
        "triggerer_cpu_share": cpu_window,
        "triggerer_rss_peak_mib": max((s["rss"] for s in samples), default=0) / 2**20,
        "triggerer_rss_start_mib": samples[0]["rss"] / 2**20 if samples else None,
        "samples": len(samples),
        "series": [
            {k: s[k] for k in ("t", "states", "triggers", "heartbeat_age", "rss", "cpu", "load1")}
            for s in samples
        ],
        "released_at": released_at,
    }


def markdown(f: dict[str, Any]) -> str:
    """The docs section for one run's figures (``f`` may hold only ``n`` and ``errors`` if it failed)."""
    n = f["n"]

    def num(key: str, spec: str = ".1f", unit: str = "") -> str:
        value = f.get(key)
        return "n/a" if value is None else f"{value:{spec}}{unit}"

    phases = f.get("phases_s") or {}

    def phase(key: str) -> str:
        value = phases.get(key)
        return "n/a" if value is None else f"{value:.0f} s"

    threshold = float(f.get("health_threshold") or 30)
    signals = [
        (
            '"Triggerer\'s async thread was blocked" warnings in its log',
            f"{num('blocked_warnings', 'd')}, {num('blocked_with_triggers', 'd')} of them while triggers ran; "
            f"longest {num('blocked_max_s', '.2f', ' s')} (threshold {f.get('blocked_threshold')} s)",
            f.get("blocked_warnings") == 0,
        ),
        (
            "capacity / most trigger rows assigned to it at once",
            f"{f.get('capacity')} / {num('peak_triggers_assigned', 'd')}",
            f.get("peak_triggers_assigned") == n,
        ),
        (
            f"heartbeat: largest / median age of `job.latest_heartbeat` seen (every "
            f"{f.get('heartbeat_sec')} s; unhealthy after {f.get('health_threshold')} s)",
            f"{num('heartbeat_age_max_s', '.1f', ' s')} / {num('heartbeat_age_median_s', '.1f', ' s')}",
            (f.get("heartbeat_age_max_s") or math.inf) < threshold,
        ),
        (
            "task instances in success, at try 1",
            f"{num('success_try_1', 'd')} / {n}",
            f.get("success_try_1") == n,
        ),
        (
            "trigger rows seen / left at the end",
            f"{num('triggers_made', 'd')} / {num('triggers_left', 'd')}",
            f.get("triggers_made") == n and f.get("triggers_left") == 0,
        ),
        (
            "batches polled until a `complete` reply",
            f"{num('polled_until_complete', 'd')} / {n}",
            f.get("polled_until_complete") == n,
        ),
        (
            "batches whose runs were listed exactly once (`execute_complete` ran once)",
            f"{num('listed_once', 'd')} / {n}",
            f.get("listed_once") == n,
        ),
        (
            "results in XCom, each for its own batch",
            f"{num('results_in_xcom', 'd')} / {n}",
            f.get("results_in_xcom") == n,
        ),
    ]
    running = ", ".join(map(str, f.get("running_log_lines") or [])) or "none"
    lines = [
        "## A real triggerer under load",
        "",
        "`benchmarks/real_triggerer.py`: the real `api-server`, `scheduler`, `dag-processor` and `triggerer`",
        f"(SQLite, LocalExecutor, parallelism {f.get('parallelism', 'n/a')}, loopback) and the bundled Retell",
        f"emulator. One DAG run maps a `RetellBatchTestSensor(deferrable=True, poke_interval={f.get('poll', 0):g})`",
        f"over **{n:,} batch ids**: every mapped task starts on a worker, polls once and defers. The emulator",
        "holds every batch `in_progress` (a `patch` fault on its status reply) until all of them wait in the",
        f"triggerer, then {f.get('hold', 0):g} s more; then it lets them complete, and every task resumes on a",
        "worker once. The signals are the triggerer's own, read from its log and the metadata database.",
        "",
        "| signal | measured | ok |",
        "|---|---:|---|",
        *[f"| {a} | {b} | {'yes' if ok else '**no**'} |" for a, b, ok in signals],
        "",
        "| | |",
        "|---|---:|",
        f"| wall time, in all | {num('wall_s', '.0f', ' s')} |",
        f"| machine load average (1 min, median of samples; 2 cores) | {num('load1_median', '.1f')} |",
        f"| start-up (migrate, four components healthy, DAG parsed) | {phase('start_up')} |",
        f"| ramp: run triggered to all {n:,} deferred (the first worker start of each task) | {phase('ramp')} |",
        f"| release to every task done (the second worker start of each task) | {phase('resume')} |",
        f"| polls while held, per batch (median) / in all | {num('held_polls_per_batch_median', '.0f')} / {num('held_polls_total', ',d')} |",
        f"| detection: release to the first `complete` reply, p50 / p99 / max | {num('detect_p50_s', '.2f', ' s')} / {num('detect_p99_s', '.2f', ' s')} / {num('detect_max_s', '.2f', ' s')} |",
        f"| release to task end, p50 / max | {num('resume_p50_s', '.0f', ' s')} / {num('resume_max_s', '.0f', ' s')} |",
        f"| triggerer process CPU while triggers existed (share of one core) | {num('triggerer_cpu_share', '.0%')} |",
        f"| triggerer process RSS, at start / peak | {num('triggerer_rss_start_mib', '.0f', ' MiB')} / {num('triggerer_rss_peak_mib', '.0f', ' MiB')} |",
        f'| its "N triggers currently running" log lines (once a minute) | {running} |',
        "",
    ]
    if f.get("errors"):
        lines += ["Errors: " + "; ".join(f["errors"]), ""]
    if f.get("blocked_examples"):
        lines += [
            "Blocked warnings, first lines:",
            "",
            *[f"    {b[:300]}" for b in f["blocked_examples"]],
            "",
        ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200, help="mapped sensors (batches) in the run")
    parser.add_argument("--poll", type=float, default=5.0, help="the sensors' poke_interval, seconds")
    parser.add_argument("--hold", type=float, default=30.0, help="seconds all N wait together before release")
    parser.add_argument("--budget", type=float, default=420.0, help="seconds in all; stops by itself")
    parser.add_argument("--parallelism", type=int, default=16, help="[core] parallelism (worker processes)")
    parser.add_argument("--out", help="write the figures here, as JSON")
    parser.add_argument("--logs", type=Path, help="copy the components' logs into this folder")
    args = parser.parse_args()
    # SIGTERM (run.py's last resort) unwinds like an error, so the components are stopped by PID.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    figures = run(args.n, args.poll, args.hold, args.budget, args.parallelism, args.logs)
    if args.out:
        Path(args.out).write_text(json.dumps(figures, indent=1))
    print(markdown(figures))


if __name__ == "__main__":
    main()
