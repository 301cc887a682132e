"""When each fake batch test or dbt run completes, carried in its id.

The trigger process picks the schedule once it is warmed up; putting each completion time in the id
lets the fake server answer without any shared state or start-up handshake.
"""

from __future__ import annotations

#: dbt run ids are ints: completion time in ms, times this, plus the index.
_DBT_SLOTS = 100_000


def schedule(t0: float, n: int, spread: float) -> list[float]:
    """Completion times spread uniformly over ``(t0, t0 + spread]``, the same for both sides."""
    return [t0 + spread * (i + 1) / n for i in range(n)]


def retell_id(index: int, completes_at: float) -> str:
    return f"tcbj_bench_{index:05d}_{round(completes_at * 1000)}"


def dbt_run_id(index: int, completes_at: float) -> int:
    return round(completes_at * 1000) * _DBT_SLOTS + index


def completion_of_retell_id(batch_id: str) -> float | None:
    ms = batch_id.rpartition("_")[2]
    return int(ms) / 1000 if ms.isdigit() else None


def completion_of_dbt_run(run_id: str) -> float | None:
    return int(run_id) // _DBT_SLOTS / 1000 if run_id.isdigit() else None
