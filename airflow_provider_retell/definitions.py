"""Test cases as code: Retell test case definitions kept in YAML files, and the plan that syncs them.

Reading and validating the files and computing the plan are pure (no network), so a sync can be
judged, logged and tested before anything is sent. The operator that talks to Retell lists the
engine's definitions, calls :func:`compute_plan` and sends the bodies that the plan holds.

Not imported at DAG parse time: the operator imports it when its task runs, and PyYAML is imported
inside the loader. File format and plan rules: ``docs/definitions.md``.
"""

from __future__ import annotations

import argparse
import difflib
import itertools
import json
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, PrivateAttr, TypeAdapter, ValidationError

from airflow_provider_retell.exceptions import RetellInputError

#: The shipped JSON Schema of a test case file (regenerate: ``python -m airflow_provider_retell.definitions --write-schema``).
SCHEMA_PATH = Path(__file__).parent / "schemas" / "test_case_definitions.schema.json"
#: What a folder's files must end with to be read (a file given by name is read whatever its suffix).
FILE_SUFFIXES = (".yaml", ".yml")
#: The fields a file may set besides ``name``, in the order that bodies, diffs and the table use.
SYNCED_FIELDS = ("user_prompt", "metrics", "dynamic_variables", "tool_mocks", "llm_model")
#: The empty value that clears each optional field (``llm_model`` has none: Retell always has a model).
EMPTY_VALUES: dict[str, Any] = {"dynamic_variables": {}, "tool_mocks": []}
_MAX_PROBLEMS_SHOWN = 25
#: Bounds on what a sync reads: test case files are small, and a path pointed at the wrong folder, or
#: a YAML alias bomb, must fail fast instead of filling memory.
MAX_FILES = 1_000
MAX_FILE_BYTES = 1024 * 1024
MAX_NODES_PER_FILE = 100_000  # YAML nodes as expanded: an alias counts every time it is used

Action = Literal["create", "update", "unchanged", "delete", "keep"]


@dataclass(frozen=True)
class SpecSource:
    """Where an entry was read: ``entry`` counts from 1 in its file; ``line`` is its first line."""

    file: str
    entry: int
    line: int | None = None

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: entry {self.entry}"


class DefinitionSpec(BaseModel):
    """One test case as written in a file; ``name`` is its identity on the response engine.

    An optional field left out of the file is not in ``model_fields_set``: the sync leaves Retell's
    value alone instead of resetting it to a default.
    """

    # strict: YAML turns `3`, `yes` and `2024-01-01` into non-strings; Retell wants strings, so say so.
    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        frozen=True,
        defer_build=True,
        title="Retell test case definition",
        json_schema_extra={
            "description": "One test case. A field left out is left alone in Retell; to clear it, give its empty value."
        },
    )

    name: str = Field(
        min_length=1,
        pattern=r"\S",
        description="The test case's identity: unique per response engine, matched exactly.",
    )
    user_prompt: str = Field(
        min_length=1, description="What the simulated user is told: who they are and what they want."
    )
    metrics: list[Annotated[str, Field(min_length=1)]] = Field(
        min_length=1, description="The criteria the conversation is scored on, in order."
    )
    dynamic_variables: dict[str, str] = Field(
        default_factory=dict,
        description="Values for the agent's {{variables}}, all strings. Left out: Retell's are kept; {} clears them.",
    )
    tool_mocks: list[dict[str, JsonValue]] = Field(
        default_factory=list,
        description="Mocked tool calls, sent to Retell as written. Left out: Retell's are kept; [] clears them.",
    )
    # default_factory (not default="") keeps a bogus default out of the JSON Schema.
    llm_model: str = Field(
        default_factory=str,
        min_length=1,
        description="The LLM that runs the simulation, as Retell names it (a plain string: the list changes often). "
        "Left out: Retell's is kept.",
    )

    _source: SpecSource | None = PrivateAttr(default=None)

    @property
    def source(self) -> SpecSource | None:
        """Where the entry was read (None for a spec built in code)."""
        return self._source

    @property
    def set_fields(self) -> tuple[str, ...]:
        """The synced fields this entry gives, in :data:`SYNCED_FIELDS` order."""
        return tuple(f for f in SYNCED_FIELDS if f in self.model_fields_set)

    def create_body(self) -> dict[str, Any]:
        """The create request body without ``response_engine``: name and every field the file sets."""
        body: dict[str, Any] = {"name": self.name}
        body.update(self.model_dump(mode="json", include=set(self.set_fields)))
        return body

    def describe(self) -> str:
        """``file:line: entry N 'name'`` for messages; just the name for a spec built in code."""
        return f"{self._source} {self.name!r}" if self._source else repr(self.name)


class DefinitionFile(BaseModel):
    """The mapping form of a file; a file may also be the bare list of entries."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        defer_build=True,
        title="Retell test case file",
        json_schema_extra={"description": "A mapping with one key, test_cases."},
    )

    test_cases: list[DefinitionSpec]


# ----------------------------------------------------------------------------------------- loading
def definition_files(path: str | os.PathLike[str], *, base_dir: str | os.PathLike[str]) -> list[Path]:
    """The files ``path`` names, in read order; a relative ``path`` is taken from ``base_dir``.

    A folder is read recursively: its ``*.yaml`` / ``*.yml`` files, sorted by their path inside the
    folder (folder by folder), skipping names that start with ``.``. Symlinked sub-folders are not
    followed.
    """
    if isinstance(path, (str, os.PathLike)) and os.fspath(path).strip():
        resolved = Path(path)
    else:
        raise RetellInputError(f"path must be a file or folder path, got {path!r}")
    if not resolved.is_absolute():
        resolved = Path(base_dir) / resolved
    if resolved.is_file():
        return [resolved]
    if not resolved.is_dir():
        raise RetellInputError(f"path {os.fspath(path)!r} does not exist (looked for {resolved})")
    found: list[tuple[tuple[str, ...], Path]] = []
    for folder, subfolders, names in os.walk(resolved):
        subfolders[:] = [d for d in subfolders if not d.startswith(".")]
        for name in names:
            file = Path(folder) / name
            if not name.startswith(".") and file.suffix.lower() in FILE_SUFFIXES and file.is_file():
                found.append((file.relative_to(resolved).parts, file))
                if len(found) > MAX_FILES:
                    raise RetellInputError(
                        f"path {os.fspath(path)!r} holds more than {MAX_FILES:,} .yaml/.yml files ({resolved}): "
                        "point it at the test case folder"
                    )
    if not found:
        raise RetellInputError(
            f"path {os.fspath(path)!r} is a folder with no .yaml or .yml files ({resolved}); "
            "put one test case file or more in it"
        )
    return [file for _, file in sorted(found)]


def load_definitions(
    path: str | os.PathLike[str], *, base_dir: str | os.PathLike[str]
) -> list[DefinitionSpec]:
    """Read and validate every test case under ``path``, in file order, before anything is sent.

    All problems of all files are raised together as one ``RetellInputError``, one line each,
    naming the file and line, the entry (number and name) and the field.
    """
    import yaml  # here, not at module level: DAG parsing must not pay for it

    specs: list[DefinitionSpec] = []
    problems: list[str] = []
    named: list[tuple[str, str]] = []
    files = definition_files(path, base_dir=base_dir)
    for file in files:
        problems += _load_file(file, yaml, specs, named)
    problems += _duplicate_name_problems(named)
    if problems:
        shown = problems[:_MAX_PROBLEMS_SHOWN]
        if len(problems) > len(shown):
            shown.append(f"... and {len(problems) - len(shown)} more")
        raise RetellInputError(
            f"path {os.fspath(path)!r}: {len(problems)} problem(s) in the test case files:\n  "
            + "\n  ".join(shown)
        )
    if not specs:
        # Never an empty set: with prune, an emptied file would delete every definition of the engine.
        raise RetellInputError(
            f"path {os.fspath(path)!r}: the files hold no test cases ({len(files)} file(s) read)"
        )
    return specs


def _load_file(file: Path, yaml: Any, specs: list[DefinitionSpec], named: list[tuple[str, str]]) -> list[str]:
    """Append the file's valid entries to ``specs`` and every named entry to ``named``; return its problems."""
    try:
        with file.open("rb") as stream:
            raw = stream.read(MAX_FILE_BYTES + 1)
        if len(raw) > MAX_FILE_BYTES:
            return [f"{file}: larger than {MAX_FILE_BYTES:,} bytes; split it into several files"]
        text = raw.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return [f"{file}: cannot be read as UTF-8 text ({exc})"]
    # Composing first keeps the nodes, so every error can name its line.
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
        duplicates = _duplicate_key_problems(file, root)
        if duplicates:
            return duplicates
        data = loader.construct_document(root) if root is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{file}:{mark.line + 1}" if mark else str(file)
        return [f"{where}: not valid YAML: {exc.problem or exc.context}"]
    except yaml.YAMLError as exc:
        return [f"{file}: not valid YAML: {exc}"]
    except RecursionError:
        return [f"{file}: nested too deeply to read (lists or mappings inside one another)"]
    finally:
        loader.dispose()

    entries_node = root
    if isinstance(data, dict):
        unknown = sorted(str(k) for k in data if k != "test_cases")
        if unknown or not isinstance(data.get("test_cases"), list):
            extra = f" (unknown: {', '.join(unknown)})" if unknown else ""
            return [f"{file}: a mapping file has one key, test_cases, holding a list{extra}"]
        entries_node = next(v for k, v in root.value if k.value == "test_cases")
        data = data["test_cases"]
    elif not isinstance(data, list):
        shape = "empty" if data is None else f"a {type(data).__name__}"
        return [f"{file}: must be a list of test cases, or a mapping with a test_cases list; it is {shape}"]

    problems: list[tuple[int, str]] = []
    for index, raw in enumerate(data):
        node = entries_node.value[index]
        source = SpecSource(str(file), index + 1, node.start_mark.line + 1)
        name = raw.get("name") if isinstance(raw, dict) else None
        entry = f"entry {index + 1}" + (f" {name!r}" if isinstance(name, str) and name else "")
        if isinstance(name, str) and name:
            named.append((name, f"{source} {name!r}"))
        if not isinstance(raw, dict):
            problems.append(
                (source.line or 0, f"{source}: must be a mapping of fields, got {type(raw).__name__}")
            )
            continue
        try:
            spec = DefinitionSpec.model_validate(raw)
        except ValidationError as exc:
            for error in exc.errors():
                line = _node_at(node, error["loc"]).start_mark.line + 1
                problems.append((line, f"{file}:{line}: {entry}: {_explain(error)}"))
            continue
        spec._source = source
        specs.append(spec)
    return [message for _, message in sorted(problems, key=lambda p: p[0])]


def _duplicate_key_problems(file: Path, root: Any) -> list[str]:
    """A key given twice in one mapping: YAML keeps the last one silently, which would hide a typo.

    The walk counts nodes as they expand (an alias every time it is used) and stops past
    :data:`MAX_NODES_PER_FILE`: an alias bomb is refused here, before anything builds it.
    """
    found: list[tuple[int, str]] = []
    stack = [root] if root is not None else []
    checked: set[int] = set()
    for visits in itertools.count(1):
        if not stack:
            break
        if visits > MAX_NODES_PER_FILE:
            return [
                f"{file}: expands to more than {MAX_NODES_PER_FILE:,} YAML nodes (aliases included); too big"
            ]
        node = stack.pop()
        if node.id == "mapping":
            if id(node) not in checked:  # an alias of a mapping already checked is only counted
                seen: set[str] = set()
                for key, _ in node.value:
                    if key.id == "scalar" and key.tag != "tag:yaml.org,2002:merge":
                        if key.value in seen:
                            found.append((key.start_mark.line + 1, f"key {key.value!r} is given twice"))
                        seen.add(key.value)
            stack.extend(value for _, value in node.value)
        elif node.id == "sequence":
            stack.extend(node.value)
        checked.add(id(node))
    return [f"{file}:{line}: {message}" for line, message in sorted(found)]


def _node_at(node: Any, loc: Sequence[int | str]) -> Any:
    """The deepest YAML node on a pydantic error's ``loc`` (a key, when it ends at one): the error's line."""
    for depth, part in enumerate(loc, 1):
        if node.id == "sequence" and isinstance(part, int) and 0 <= part < len(node.value):
            node = node.value[part]
        elif node.id == "mapping":
            pairs = [(k, v) for k, v in node.value if k.id == "scalar" and k.value == part]
            if not pairs:
                break
            node = pairs[0][0] if depth == len(loc) else pairs[0][1]
        else:
            break
    return node


def _explain(error: Mapping[str, Any]) -> str:
    """One pydantic error as a sentence that names the field."""
    loc = list(error["loc"])
    field_name = str(loc[0]) if loc else ""
    kind = error["type"]
    if kind == "extra_forbidden":
        close = difflib.get_close_matches(field_name, list(DefinitionSpec.model_fields), n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        return f"unknown field {field_name!r}: {hint}the fields are {', '.join(DefinitionSpec.model_fields)}"
    if kind == "missing":
        return f"field {field_name!r} is required"
    value = error.get("input")
    if value is None and len(loc) == 1:
        empty = EMPTY_VALUES.get(field_name)
        clear = f", or give {json.dumps(empty)} to clear it" if empty is not None else ""
        return f"field {field_name!r} is null: leave it out to keep Retell's value{clear}"
    what = "a key of " if loc[-1] == "[key]" else ""
    if what:
        loc = loc[:-2]  # pydantic puts the bad key itself before the marker
    path = str(loc[0]) + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc[1:])
    hint = ""
    if isinstance(value, (bool, int, float, date)):
        # YAML reads unquoted 3, yes and 2024-01-01 as numbers, booleans and dates.
        hint = f" (YAML read it as {type(value).__name__} {value}: put it in quotes)"
    return f"{what}field {path!r}: {error['msg']}{hint}"


def _duplicate_name_problems(named: Sequence[tuple[str, str]]) -> list[str]:
    """``named``: (name, where) of each entry, invalid ones too, so one run reports every problem."""
    first: dict[str, str] = {}
    problems = []
    for name, where in named:
        if name in first:
            problems.append(
                f"name {name!r} is used by two test cases: {first[name]} and {where}; "
                "names are the identity on the engine"
            )
        else:
            first[name] = where
    return problems


# ----------------------------------------------------------------------------------------- bodies
#: Stand-ins for the required fields when only the fields an update changes are checked.
_FILLER: dict[str, Any] = {"name": "-", "user_prompt": "-", "metrics": ["-"]}


def parse_definition(value: Any, *, argument: str = "definition") -> DefinitionSpec:
    """A test case given in code (the hook's create), checked like a file's entry; errors name the field."""
    if isinstance(value, DefinitionSpec):
        return value
    if not isinstance(value, Mapping):
        raise RetellInputError(f"{argument} must be a dict of test case fields, got {type(value).__name__}")
    try:
        return DefinitionSpec.model_validate(dict(value))
    except ValidationError as exc:
        raise RetellInputError(f"{argument}: " + "; ".join(_explain(e) for e in exc.errors())) from None


def parse_changes(value: Any, *, argument: str = "changes") -> dict[str, Any]:
    """An update's fields (``name`` and the synced fields), checked like a file's; JSON-ready."""
    if not isinstance(value, Mapping) or not value:
        raise RetellInputError(f"{argument} must be a non-empty dict of test case fields, got {value!r:.80}")
    spec = parse_definition({**_FILLER, **value}, argument=argument)
    return spec.model_dump(mode="json", include=set(value))


# ----------------------------------------------------------------------------------------- planning
@dataclass(frozen=True)
class PlanItem:
    """One line of a plan. ``body`` is the request body for a create or an update, else empty.

    A create's body has no ``response_engine``: the caller adds it (to a copy).
    """

    action: Action
    name: str
    test_case_definition_id: str | None = None
    changed: tuple[str, ...] = ()
    body: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SyncPlan:
    """What a sync would do: the file's test cases in file order, then Retell's others by name."""

    items: tuple[PlanItem, ...]
    prune: bool

    def _with(self, action: Action) -> tuple[PlanItem, ...]:
        return tuple(i for i in self.items if i.action == action)

    @property
    def creates(self) -> tuple[PlanItem, ...]:
        return self._with("create")

    @property
    def updates(self) -> tuple[PlanItem, ...]:
        return self._with("update")

    @property
    def deletes(self) -> tuple[PlanItem, ...]:
        return self._with("delete")

    @property
    def unchanged(self) -> tuple[PlanItem, ...]:
        return self._with("unchanged")

    @property
    def kept(self) -> tuple[PlanItem, ...]:
        """Retell's definitions that no file names, left alone because ``prune`` is off."""
        return self._with("keep")

    @property
    def has_changes(self) -> bool:
        """Whether applying the plan sends any write."""
        return any(i.action in ("create", "update", "delete") for i in self.items)

    def summary(self) -> dict[str, list[str]]:
        """The names per action, under the keys the sync operator returns."""
        return {
            "created": [i.name for i in self.creates],
            "updated": [i.name for i in self.updates],
            "deleted": [i.name for i in self.deletes],
            "unchanged": [i.name for i in self.unchanged],
        }

    def test_case_definition_ids(self, created_ids: Mapping[str, str]) -> list[str]:
        """The ids of the synced set in file order, once ``created_ids`` (name -> new id) has every create."""
        wanted = {i.name for i in self.creates}
        missing = sorted(wanted - set(created_ids))
        extra = sorted(set(created_ids) - wanted)
        bad = sorted(n for n, i in created_ids.items() if not isinstance(i, str) or not i)
        if missing or extra or bad:
            raise ValueError(
                "created_ids must map each created name to its new id: "
                f"missing {missing}, not created by this plan {extra}, not an id {bad}"
            )
        return [
            created_ids[i.name] if i.action == "create" else str(i.test_case_definition_id)
            for i in self.items
            if i.action in ("create", "update", "unchanged")
        ]

    def existing_test_case_definition_ids(self) -> list[str]:
        """The ids of the synced set that exist in Retell today, in file order (what a dry run reports)."""
        return [str(i.test_case_definition_id) for i in self.items if i.action in ("update", "unchanged")]

    def table(self) -> str:
        """A plain-text table (action, name, id, changed fields) for the task log."""
        counts = (
            f"{len(self.creates)} to create, {len(self.updates)} to update, {len(self.deletes)} to delete, "
            f"{len(self.unchanged)} unchanged"
        )
        if self.kept:
            counts += f", {len(self.kept)} kept (in Retell, in no file; prune is off)"
        rows = [("action", "name", "id", "changed")] + [
            (
                i.action,
                " ".join(i.name.split())[:60],
                i.test_case_definition_id or "-",
                ", ".join(i.changed),
            )
            for i in self.items
        ]
        widths = [max(len(r[c]) for r in rows) for c in range(3)]
        lines = [
            f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:<{widths[2]}}  {r[3]}".rstrip() for r in rows
        ]
        lines.insert(1, "  ".join("-" * w for w in [*widths, len("changed")]))
        return "\n".join([counts, *lines])


def compute_plan(
    specs: Sequence[DefinitionSpec], current: Sequence[Mapping[str, Any] | BaseModel], *, prune: bool
) -> SyncPlan:
    """The plan that brings the engine's definitions (``current``, as Retell lists them) to ``specs``.

    Matched by name. An update holds only the fields that differ among those the file sets; a
    definition in no file is deleted with ``prune``, else kept. Two Retell definitions with a name
    the files use fail the plan: picking one would be a guess.
    """
    problems = _duplicate_name_problems([(spec.name, spec.describe()) for spec in specs])
    if problems:
        raise RetellInputError("; ".join(problems))
    by_name: dict[str, list[tuple[str, Mapping[str, Any]]]] = {}
    for index, listed in enumerate(current):
        # The hook's TestCaseDefinition models keep every field Retell sent (extra="allow").
        item = listed.model_dump() if isinstance(listed, BaseModel) else listed
        def_id = item.get("test_case_definition_id") if isinstance(item, Mapping) else None
        if not isinstance(def_id, str) or not def_id:
            raise RetellInputError(
                f"current[{index}] is not a test case definition with an id: {item!r:.200}"
            )
        name = item.get("name")
        by_name.setdefault(name if isinstance(name, str) else "", []).append((def_id, item))

    wanted = {spec.name for spec in specs}
    ambiguous = sorted(
        (n, sorted(i for i, _ in found)) for n, found in by_name.items() if n in wanted and len(found) > 1
    )
    if ambiguous:
        names = "; ".join(f"{name!r} ({', '.join(ids)})" for name, ids in ambiguous)
        raise RetellInputError(
            f"Retell has more than one test case definition with the same name: {names}. "
            "The sync does not guess which one the file means: delete or rename the extra ones in Retell."
        )

    items: list[PlanItem] = []
    for spec in specs:
        found = by_name.get(spec.name)
        if not found:
            items.append(PlanItem("create", spec.name, body=spec.create_body()))
            continue
        def_id, have = found[0]
        wanted_values = spec.model_dump(mode="json", include=set(spec.set_fields))
        changed = tuple(
            f for f in spec.set_fields if _canonical(f, have.get(f)) != _canonical(f, wanted_values[f])
        )
        if changed:
            items.append(
                PlanItem("update", spec.name, def_id, changed, {f: wanted_values[f] for f in changed})
            )
        else:
            items.append(PlanItem("unchanged", spec.name, def_id))
    others = sorted(
        (name, def_id) for name, found in by_name.items() if name not in wanted for def_id, _ in found
    )
    items += [PlanItem("delete" if prune else "keep", name, def_id) for name, def_id in others]
    return SyncPlan(tuple(items), prune)


def _canonical(field_name: str, value: Any) -> str:
    """A field's value as canonical JSON: dict keys sorted, lists in order, 1.0 == 1, null == empty."""
    if value is None and field_name in EMPTY_VALUES:
        value = EMPTY_VALUES[field_name]
    return json.dumps(_normalize(value), sort_keys=True, ensure_ascii=False, default=str)


def _normalize(value: Any) -> Any:
    # JSON has one number type: Retell may send back 1 for a 1.0 it was given.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {str(k): _normalize(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_normalize(v) for v in value]
    return value


# ----------------------------------------------------------------------------------------- schema
def definitions_json_schema() -> dict[str, Any]:
    """The JSON Schema of a test case file, generated from the models (shipped as :data:`SCHEMA_PATH`)."""
    schema = TypeAdapter(list[DefinitionSpec] | DefinitionFile).json_schema()
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "Retell test case definitions",
        "description": "A list of test cases, or a mapping with a test_cases list "
        "(airflow-provider-retell, docs/definitions.md).",
        **schema,
    }


def definitions_json_schema_text() -> str:
    """The schema exactly as the shipped file holds it."""
    return json.dumps(definitions_json_schema(), indent=2, ensure_ascii=False) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m airflow_provider_retell.definitions",
        description="Retell test case files: print or regenerate their JSON Schema, or check files.",
    )
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--schema", action="store_true", help="print the JSON Schema of a test case file")
    group.add_argument("--write-schema", action="store_true", help=f"regenerate {SCHEMA_PATH}")
    group.add_argument("--check", metavar="PATH", help="validate a test case file or folder, as a sync would")
    args = parser.parse_args(argv)
    if args.schema:
        sys.stdout.write(definitions_json_schema_text())
    elif args.write_schema:
        SCHEMA_PATH.parent.mkdir(parents=True, exist_ok=True)
        SCHEMA_PATH.write_text(definitions_json_schema_text(), encoding="utf-8")
        sys.stdout.write(f"wrote {SCHEMA_PATH}\n")
    else:
        try:
            specs = load_definitions(args.check, base_dir=Path.cwd())
        except RetellInputError as exc:
            sys.stderr.write(f"{exc}\n")
            return 1
        files = len({spec.source.file for spec in specs if spec.source})
        sys.stdout.write(f"{len(specs)} test case(s) OK in {files} file(s)\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
