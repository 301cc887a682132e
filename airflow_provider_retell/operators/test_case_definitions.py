"""Test cases as code: make a response engine's test case definitions match YAML files in the repository."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from airflow_provider_retell.exceptions import RetellInputError
from airflow_provider_retell.links import RetellAgentLink
from airflow_provider_retell.validation import check_target, shown, templated

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_retell.definitions import SyncPlan
    from airflow_provider_retell.hooks.retell import RetellHook
    from airflow_provider_retell.models import TestableEngine, TestCaseDefinition


class RetellSyncTestCaseDefinitionsOperator(BaseOperator):
    """Sync a Retell response engine's test case definitions to YAML files, matched by ``name``.

    The files are validated before anything is sent; the engine's definitions are listed, and the
    plan (create; update of the fields that differ; delete with ``prune``) is logged as a table and
    applied unless ``dry_run``. Applying twice changes nothing, a sync stopped midway converges on
    the next run, and a create whose reply is lost is found by name, never sent twice. Returns
    ``{"created", "updated", "deleted", "unchanged"}`` (names) and ``test_case_definition_ids``
    (the synced set in file order; a dry run: those that exist today), also pushed under XCom key
    ``test_case_definition_ids`` for ``RetellBatchTestOperator``. Format: ``docs/definitions.md``.

    :param path: a YAML file or a folder of them; a relative path is resolved against the folder of
        the DAG file, an absolute one is used as it is.
    :param response_engine: ``{"type": "retell-llm", "llm_id": ...}`` or ``{"type":
        "conversation-flow", "conversation_flow_id": ...}``; definitions belong to the engine, not to a
        version, so a ``version`` is accepted and not used.
    :param agent_id: sync the definitions of this agent's response engine instead (exactly one of the two).
    :param agent_version: the agent version to resolve; latest when None.
    :param prune: delete the engine's definitions that no file names.
    :param dry_run: compute and log the plan only; nothing is written.
    :param retell_conn_id: the Retell connection (type ``retell``).
    :param kwargs: any other ``BaseOperator`` argument (``task_id``, ``retries``, ...).
    """

    # ``is_dry_run``, not ``dry_run``: BaseOperator has a method of that name.
    template_fields = ("path", "response_engine", "agent_id", "agent_version", "prune", "is_dry_run")
    template_fields_renderers = {"response_engine": "json"}
    operator_extra_links = (RetellAgentLink(),)
    ui_color = "#e8f0fe"

    def __init__(
        self,
        *,
        path: str | os.PathLike[str],
        response_engine: dict[str, Any] | None = None,
        agent_id: str | None = None,
        agent_version: int | None = None,
        prune: bool = False,
        dry_run: bool = False,
        retell_conn_id: str = "retell_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.path = path
        self.response_engine = response_engine
        self.agent_id = agent_id
        self.agent_version = agent_version
        self.prune = prune
        self.is_dry_run = dry_run
        self.retell_conn_id = retell_conn_id
        self._check_input(skip_templated=True)

    def _check_input(self, *, skip_templated: bool = False) -> None:
        """Each argument on its own, before any HTTP call (at DAG parse: only the literal ones)."""
        check_target(
            self.response_engine, self.agent_id, self.agent_version, None, skip_templated=skip_templated
        )
        path_ok = isinstance(self.path, (str, os.PathLike)) and bool(os.fspath(self.path).strip())
        for name, value, ok, kind in (
            ("path", self.path, path_ok, "a file or folder path"),
            ("prune", self.prune, isinstance(self.prune, bool), "True or False"),
            ("dry_run", self.is_dry_run, isinstance(self.is_dry_run, bool), "True or False"),
        ):
            if not ok and not (skip_templated and templated(value)):
                raise RetellInputError(f"{name} must be {kind}, got {shown(value)}")

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow_provider_retell.definitions import compute_plan, load_definitions
        from airflow_provider_retell.hooks.retell import RetellHook
        from airflow_provider_retell.models import engine_id

        self._check_input()
        specs = load_definitions(self.path, base_dir=self._base_dir())
        hook = RetellHook(retell_conn_id=self.retell_conn_id)
        engine = self._engine(hook)
        current = hook.list_test_case_definitions(engine)
        plan = compute_plan(specs, current, prune=self.prune)
        where = f"{engine.type} {engine_id(engine)}"
        self.log.info("Test case definitions of %s, synced from %s:\n%s", where, self.path, plan.table())
        if self.is_dry_run:
            self.log.info("dry_run=True: nothing was sent to Retell")
            ids = plan.existing_test_case_definition_ids()
        else:
            ids = self._apply(hook, engine, plan, current, context)
        context["ti"].xcom_push(key="test_case_definition_ids", value=ids)
        return {**plan.summary(), "test_case_definition_ids": ids}

    def _base_dir(self) -> str:
        """The folder of the DAG file: where a relative ``path`` starts."""
        fileloc = self.dag.fileloc if self.has_dag() else ""
        if not os.path.isabs(os.fspath(self.path)) and not os.path.isfile(fileloc):
            raise RetellInputError(
                f"path {os.fspath(self.path)!r} is relative, but the task has no DAG file to resolve it "
                "against: give an absolute path"
            )
        return os.path.dirname(os.path.abspath(fileloc)) if fileloc else os.sep

    def _engine(self, hook: RetellHook) -> TestableEngine:
        from airflow_provider_retell.models import parse_engine_input
        from airflow_provider_retell.planning import resolve_engine

        if self.response_engine is not None:
            return parse_engine_input(self.response_engine)
        assert isinstance(self.agent_id, str)  # checked: exactly one of the two
        return resolve_engine(hook, self.agent_id, self.agent_version)

    def _apply(
        self,
        hook: RetellHook,
        engine: TestableEngine,
        plan: SyncPlan,
        current: list[TestCaseDefinition],
        context: Context,
    ) -> list[str]:
        """Creates first and deletes last, so a sync stopped midway never leaves a case missing."""
        from airflow_provider_retell.definition_ops import TaskStateIntentStore, forget_landed

        intents = TaskStateIntentStore.of(context)
        forget_landed(intents, engine, current)  # an earlier try's create that the listing shows
        created: dict[str, str] = {}
        for item in plan.creates:
            definition = hook.create_test_case_definition(engine, item.body, intent_store=intents)
            created[item.name] = definition.test_case_definition_id
            self.log.info("Created %r: %s", item.name, definition.test_case_definition_id)
        for item in plan.updates:
            hook.update_test_case_definition(str(item.test_case_definition_id), item.body)
            self.log.info(
                "Updated %r (%s): %s", item.name, item.test_case_definition_id, ", ".join(item.changed)
            )
        for item in plan.deletes:
            hook.delete_test_case_definition(str(item.test_case_definition_id))
            self.log.info("Deleted %r (%s)", item.name, item.test_case_definition_id)
        return plan.test_case_definition_ids(created)
