"""The Markdown section for the side-by-side run: a table per N, issue 11's targets, the server's load."""

from __future__ import annotations

import datetime
import math
import os
import platform
from importlib.metadata import version
from pathlib import Path
from typing import Any

LABEL = {"retell": "this provider", "dbt": "dbt Cloud"}
#: Targets of issue 11 for this provider at N = 1,000 (detection: poll + 0.5 s).
TARGET_N = 1000
LAG_P99_MS, KIB_PER_TRIGGER, CONNECTIONS, CPU_RATIO = 20.0, 20.0, 20, 1.5

ROWS = (  # label, key, format, unit
    ("event-loop lag p50", "lag_p50_ms", ".2f", "ms"),
    ("event-loop lag p99", "lag_p99_ms", ".1f", "ms"),
    ("event-loop lag max", "lag_max_ms", ".0f", "ms"),
    ("detection latency p50", "detect_p50_s", ".2f", "s"),
    ("detection latency p99", "detect_p99_s", ".2f", "s"),
    ("TCP connections opened", "connections", ",d", ""),
    ("… of which closed after one request", "one_request", ",d", ""),
    ("requests served", "requests", ",d", ""),
    ("CPU per poll", "cpu_per_poll_ms", ".2f", "ms"),
    ("RSS per trigger", "kib_per_trigger", ".1f", "KiB"),
    ("errors", "error_count", "d", ""),
)

Results = dict[int, dict[str, dict[str, Any]]]


def _fmt(value: float | None, spec: str, unit: str = "") -> str:
    if value is None:
        return "n/a"
    if value == math.inf:  # a percentile that falls on triggers that never fired
        return "not fired"
    return f"{value:{spec}} {unit}".rstrip()


def _ratio(ours: float | None, theirs: float | None) -> str:
    if ours is None or theirs is None or theirs == 0 or math.inf in (ours, theirs):
        return "n/a"
    return f"{ours / theirs:.2f}x"


def machine() -> str:
    """Cores, CPU model, memory, Python, kernel and date: the figures mean nothing without them."""
    import psutil

    cpu = platform.machine()
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []:
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    return (
        f"{os.cpu_count()} cores ({cpu}), {psutil.virtual_memory().total / 2**30:.0f} GiB, "
        f"Python {platform.python_version()}, {platform.system()} {platform.release()}, "
        f"{datetime.date.today().isoformat()}"
    )


def table(n: int, pair: dict[str, dict[str, Any]]) -> list[str]:
    ours, theirs = pair["retell"], pair["dbt"]
    lines = [f"| N = {n:,} | {LABEL['retell']} | {LABEL['dbt']} | ratio |", "|---|---:|---:|---:|"]
    for label, key, spec, unit in ROWS:
        a, b = ours[key], theirs[key]
        lines.append(f"| {label} | {_fmt(a, spec, unit)} | {_fmt(b, spec, unit)} | {_ratio(a, b)} |")
    for side in pair:
        if pair[side]["errors"]:
            lines += ["", f"Errors, {LABEL[side]}: {pair[side]['errors']}"]
    return lines


def _at_most(value: float | None, limit: float | None) -> bool:
    return value is not None and limit is not None and value <= limit


def targets(pair: dict[str, dict[str, Any]], poll: float) -> list[tuple[str, str, bool]]:
    """(target, measured, met) for this provider, as issue 11 sets them."""
    ours, theirs = pair["retell"], pair["dbt"]
    rows = [
        (
            "event-loop lag p99 < 20 ms",
            _fmt(ours["lag_p99_ms"], ".1f", "ms"),
            ours["lag_p99_ms"] < LAG_P99_MS,
        ),
        (
            f"detection p99 <= poll + 0.5 s ({poll + 0.5:g} s)",
            _fmt(ours["detect_p99_s"], ".2f", "s"),
            _at_most(ours["detect_p99_s"], poll + 0.5),
        ),
        (
            f"<= {KIB_PER_TRIGGER:g} KiB per trigger",
            _fmt(ours["kib_per_trigger"], ".1f", "KiB"),
            _at_most(ours["kib_per_trigger"], KIB_PER_TRIGGER),
        ),
        (f"<= {CONNECTIONS} TCP connections", f"{ours['connections']:,}", ours["connections"] <= CONNECTIONS),
    ]
    for what, key, spec in (
        ("lag p99", "lag_p99_ms", ".1f"),
        ("detection p99", "detect_p99_s", ".2f"),
        ("memory per trigger", "kib_per_trigger", ".1f"),
        ("connections", "connections", ",d"),
    ):
        a, b = ours[key], theirs[key]
        ahead = a is not None and b is not None and a < b
        rows.append((f"ahead of dbt Cloud on {what}", f"{_fmt(a, spec)} vs {_fmt(b, spec)}", ahead))
    theirs_cpu = theirs["cpu_per_poll_ms"]
    rows += [
        (
            f"CPU per poll within {CPU_RATIO:g}x of dbt Cloud's",
            _ratio(ours["cpu_per_poll_ms"], theirs_cpu),
            _at_most(ours["cpu_per_poll_ms"], theirs_cpu * CPU_RATIO if theirs_cpu else None),
        ),
        ("no errors", str(ours["error_count"]), ours["error_count"] == 0),
    ]
    return rows


def findings(results: Results) -> list[str]:
    """What the figures say about connection reuse, worded from this run's own numbers."""
    n = max(results)
    lines = []
    for side, r in results[n].items():
        if not r["connections"]:
            continue
        per_conn = r["requests"] / r["connections"]
        once = r["one_request"] / r["connections"]
        lines.append(
            f"- {LABEL[side]} at N = {n:,}: {per_conn:.1f} requests per connection, {once:.0%} of its "
            f"{r['connections']:,} connections closed after one request, {r['peak_open']:,} open at most."
        )
    if results[n]["dbt"]["one_request"] == results[n]["dbt"]["connections"]:
        lines.append(
            "- dbt Cloud's hook opens an `aiohttp.ClientSession` per poll: one TLS handshake per request, "
            "by design, cheap per request but never reused."
        )
    return lines


def server_table(results: Results) -> list[str]:
    lines = [
        "| run | requests/s | CPU, mean / busiest second | loop lag p99 / max | peak open connections |",
        "|---|---:|---:|---:|---:|",
    ]
    for n, pair in results.items():
        for side, r in pair.items():
            s = r["server"]
            lines.append(
                f"| {LABEL[side]}, N = {n:,} | {r['requests'] / r['wall_s']:.0f} | "
                f"{s['cpu_share_mean']:.0%} / {s['cpu_share_busiest_second']:.0%} | "
                f"{s['loop_lag_p99_ms']:.0f} / {s['loop_lag_max_ms']:.0f} ms | {r['peak_open']:,} |"
            )
    return lines


def markdown(results: Results, poll: float, spread: float) -> str:
    lines = [
        "## Side by side with dbt Cloud: N triggers in one triggerer loop",
        "",
        "`benchmarks/side_by_side.py`: N `RetellBatchTestTrigger`s against N of dbt Cloud's",
        f"`DbtCloudRunJobTrigger` (apache-airflow-providers-dbt-cloud {version('apache-airflow-providers-dbt-cloud')}),",
        "each side alone in a fresh process with one asyncio loop, the triggers created and consumed as",
        "Airflow's `TriggerRunner` does (all in one pass, a greenback portal per task, logs at INFO to a",
        f"file). Same poll interval ({poll:g} s), same fake server (TLS on 127.0.0.1, a fresh process per",
        f"run), same completion times, spread uniformly over the {spread:g} s after the triggers start, so",
        "the load is heaviest at the start. One warm-up trigger runs first on a separate listener, so",
        "one-off costs (SSL context, provider discovery, lazy imports) and its connection stay out of",
        "the figures. The sides alternate order from one N to the next.",
        "",
        "- **lag**: how late a 10 ms ticker coroutine in the same loop wakes; every poll waits as long.",
        "- **detection**: time of the trigger's event minus the completion time of its batch or run.",
        "- **connections / requests**: counted by the fake server (TLS connections accepted, replies).",
        "- **CPU per poll**: the trigger process's CPU time over the run / requests served.",
        "- **RSS per trigger**: peak RSS during the run minus RSS just before the triggers, / N.",
        "",
    ]
    for n, pair in results.items():
        lines += [*table(n, pair), ""]
    if TARGET_N in results:
        lines += [
            f"Targets (issue 11) at N = {TARGET_N:,}, this provider:",
            "",
            "| target | measured | |",
            "|---|---:|---|",
            *[
                f"| {t} | {m} | {'met' if ok else '**missed**'} |"
                for t, m, ok in targets(results[TARGET_N], poll)
            ],
            "",
        ]
    lines += ["What the connection counts say:", "", *findings(results), ""]
    lines += [
        "The fake server's own load (`benchmarks/fake_api.py`: one process, uvloop and httptools, no",
        "framework). CPU is the share of one core while it served the run; the other core is the",
        "triggers'. A loop lag in milliseconds means a request never waited on the server for longer;",
        "listen-queue overflows would be listed under errors.",
        "",
        *server_table(results),
        "",
    ]
    return "\n".join(lines)
