"""Run an example DAG through Airflow's ``dag.test()``: shared by ``make demo`` and the end-to-end tests.

Set AIRFLOW_HOME, AIRFLOW__CORE__DAGS_FOLDER and the Retell connection before calling anything here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow.models.dagrun import DagRun
    from airflow.sdk import DAG


def load_dags(dags_folder: str) -> dict[str, DAG]:
    """Parse the folder, fail on any import error, and store the DAGs so ``dag.test()`` can run them."""
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import DagBag, sync_bag_to_db

    bag = DagBag(dag_folder=dags_folder)
    if bag.import_errors:
        raise RuntimeError(f"DAG import errors: {bag.import_errors}")
    DagBundlesManager().sync_bundles_to_db()
    sync_bag_to_db(bag, "dags-folder", None)
    return dict(bag.dags)


def sync_dag(dag: DAG) -> DAG:
    """Store a DAG built in code (not in the dags folder) so ``dag.test()`` can run it."""
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import DagBag, sync_bag_to_db

    bag = DagBag(collect_dags=False)
    bag.bag_dag(dag)
    DagBundlesManager().sync_bundles_to_db()
    sync_bag_to_db(bag, "dags-folder", None)
    return dag


def run_dag(dag: DAG, *, conf: dict[str, Any] | None = None, poll_interval: float | None = None) -> DagRun:
    """``dag.test()``, deferrals included (the trigger runs in-process).

    ``poll_interval`` shortens every Retell wait: the examples poll every 30-60 s, which the emulator
    (running a hundred times faster than Retell) does not need.
    """
    if poll_interval is not None:
        for task in dag.tasks:
            if hasattr(task, "poke_interval"):
                task.poke_interval = poll_interval
            elif hasattr(task, "poll_interval"):
                task.poll_interval = poll_interval
    return dag.test(run_conf=conf)


def rerun_task(dag: DAG, run: DagRun, task_id: str) -> Any:
    """Clear one task instance of a finished run and run it again in that same run (the UI's "Clear").

    ``dag.test()`` cannot do this: given an existing logical date it deletes the run and starts a new
    one. This takes the path ``dag.test()`` takes for each task (deferrals run in-process).
    """
    from airflow.models.taskinstance import TaskInstance, clear_task_instances
    from airflow.sdk.definitions.dag import _run_task
    from airflow.utils.session import create_session
    from airflow.utils.state import TaskInstanceState
    from sqlalchemy import select

    def fetch(session: Any) -> TaskInstance:
        return session.scalars(
            select(TaskInstance).where(
                TaskInstance.dag_id == run.dag_id,
                TaskInstance.run_id == run.run_id,
                TaskInstance.task_id == task_id,
            )
        ).one()

    with create_session() as session:
        clear_task_instances([fetch(session)], session, dag_run_state=False)
    with create_session() as session:
        ti = fetch(session)
        ti.try_number += 1
        ti.state = TaskInstanceState.SCHEDULED
        session.commit()
        _run_task(ti=ti, task=dag.task_dict[task_id], run_triggerer=True)
    return task_instance(run, task_id)


def xcom(run: DagRun, task_id: str, key: str = "return_value", map_index: int | None = None) -> Any:
    """What a task of ``run`` pushed under ``key`` (None when nothing was pushed)."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        query = XComModel.get_many(
            run_id=run.run_id, dag_ids=run.dag_id, task_ids=task_id, key=key, map_indexes=map_index
        )
        row = session.scalars(query).first()
        return XComModel.deserialize_value(row) if row is not None else None


def task_states(run: DagRun) -> dict[str, str | None]:
    return {ti.task_id: ti.state for ti in run.get_task_instances()}


def task_instance(run: DagRun, task_id: str, map_index: int = -1) -> Any:
    """The task instance of ``run`` (state, try_number, ...), read fresh from the database."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        ti = session.scalars(
            select(TaskInstance).where(
                TaskInstance.dag_id == run.dag_id,
                TaskInstance.run_id == run.run_id,
                TaskInstance.task_id == task_id,
                TaskInstance.map_index == map_index,
            )
        ).one()
        session.expunge(ti)
        return ti
