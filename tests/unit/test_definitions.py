"""definitions.py: test case files -> validated specs -> the plan that syncs Retell to them.

Pure functions: files in tmp_path, Retell as a list of dicts, and a tiny in-memory definition
store (``FakeStore``) to apply plans to.
"""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_retell.definitions import (
    MAX_FILE_BYTES,
    SCHEMA_PATH,
    DefinitionSpec,
    SyncPlan,
    compute_plan,
    definition_files,
    definitions_json_schema_text,
    load_definitions,
    main,
)
from airflow_provider_retell.exceptions import RetellInputError
from airflow_provider_retell.models import TestCaseDefinition as DefinitionModel

ENGINE = {"type": "conversation-flow", "conversation_flow_id": "cf_support"}
DOCS = Path(__file__).resolve().parents[2] / "docs" / "definitions.md"


def write(folder: Path, relative: str, text: str) -> Path:
    file = folder / relative
    file.parent.mkdir(parents=True, exist_ok=True)
    file.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return file


def spec(name: str, **fields: Any) -> DefinitionSpec:
    fields.setdefault("user_prompt", f"prompt of {name}")
    fields.setdefault("metrics", ["m1"])
    return DefinitionSpec(name=name, **fields)


def retell(def_id: str, name: str, **fields: Any) -> dict[str, Any]:
    """A definition as Retell lists it: every field present, defaults filled in."""
    return {
        "test_case_definition_id": def_id,
        "name": name,
        "type": "simulation",
        "response_engine": ENGINE,
        "user_prompt": f"prompt of {name}",
        "metrics": ["m1"],
        "dynamic_variables": {},
        "tool_mocks": [],
        "llm_model": "gpt-4.1",
        "creation_timestamp": 1,
        "user_modified_timestamp": 1,
        **fields,
    }


def load_error(folder: Path, path: str = ".") -> str:
    with pytest.raises(RetellInputError) as info:
        load_definitions(path, base_dir=folder)
    return str(info.value)


class FakeStore:
    """Retell's definition endpoints, as API.md describes them: create fills defaults, update sets what it gets."""

    DEFAULTS = {"type": "simulation", "dynamic_variables": {}, "tool_mocks": [], "llm_model": "gpt-4.1"}

    def __init__(self) -> None:
        self.records: dict[str, dict[str, Any]] = {}
        self.writes: list[tuple[str, str]] = []
        self.created = 0

    def create(self, body: dict[str, Any]) -> dict[str, Any]:
        for required in ("name", "response_engine", "user_prompt", "metrics"):
            assert body.get(required) is not None, required
        self.created += 1
        def_id = f"tcd_{self.created:03d}"
        self.records[def_id] = {**self.DEFAULTS, **copy.deepcopy(body), "test_case_definition_id": def_id}
        self.writes.append(("create", body["name"]))
        return copy.deepcopy(self.records[def_id])

    def update(self, def_id: str, body: dict[str, Any]) -> None:
        assert body, "an update with nothing to change"
        self.records[def_id].update(copy.deepcopy(body))
        self.writes.append(("update", self.records[def_id]["name"]))

    def delete(self, def_id: str) -> None:
        self.writes.append(("delete", self.records.pop(def_id)["name"]))

    def listing(self) -> list[dict[str, Any]]:
        return copy.deepcopy(list(self.records.values()))


def apply(plan: SyncPlan, store: FakeStore) -> list[str]:
    """What the sync operator does with a plan."""
    created = {
        item.name: store.create({**item.body, "response_engine": ENGINE})["test_case_definition_id"]
        for item in plan.creates
    }
    for item in plan.updates:
        store.update(str(item.test_case_definition_id), item.body)
    for item in plan.deletes:
        store.delete(str(item.test_case_definition_id))
    return plan.test_case_definition_ids(created)


# ----------------------------------------------------------------------------------------- loading
def test_both_file_forms_load_in_order_with_their_source_and_set_fields(tmp_path: Path) -> None:
    write(
        tmp_path,
        "a.yaml",
        """
        - name: greeting
          user_prompt: Say hi
          metrics: [greets, asks name]
          dynamic_variables: {region: eu}
        - name: refund
          user_prompt: I want my money back
          metrics: [offers refund]
          tool_mocks: []
        """,
    )
    write(
        tmp_path,
        "b.yml",
        """
        test_cases:
          - name: human
            user_prompt: Get me a human
            metrics: [transfers]
            llm_model: gpt-5
        """,
    )
    specs = load_definitions(".", base_dir=tmp_path)

    assert [s.name for s in specs] == ["greeting", "refund", "human"]
    required = ("user_prompt", "metrics")
    assert [s.set_fields for s in specs] == [
        (*required, "dynamic_variables"),
        (*required, "tool_mocks"),
        (*required, "llm_model"),
    ]
    assert specs[0].metrics == ["greets", "asks name"]
    assert specs[1].source is not None
    assert (specs[1].source.file, specs[1].source.entry, specs[1].source.line) == (
        str(tmp_path / "a.yaml"),
        2,
        5,
    )
    assert specs[2].source is not None
    assert (specs[2].source.file, specs[2].source.entry) == (str(tmp_path / "b.yml"), 1)


def test_a_folder_is_read_recursively_sorted_and_skips_hidden_and_other_files(tmp_path: Path) -> None:
    one = "- {name: %s, user_prompt: p, metrics: [m]}\n"
    for relative in (
        "b.yaml",
        "a/z.yml",
        "a/b/c.YAML",
        "a-b.yaml",
        "a/.draft.yaml",
        ".git/x.yaml",
        "notes.txt",
    ):
        write(tmp_path / "tests", relative, one % relative.replace("/", "_"))
    write(tmp_path / "tests", "schema.json", "{}")

    files = definition_files("tests", base_dir=tmp_path)
    specs = load_definitions("tests", base_dir=tmp_path)

    # Folder by folder: everything under a/ comes before a-b.yaml.
    assert [f.relative_to(tmp_path / "tests").as_posix() for f in files] == [
        "a/b/c.YAML",
        "a/z.yml",
        "a-b.yaml",
        "b.yaml",
    ]
    assert [s.name for s in specs] == ["a_b_c.YAML", "a_z.yml", "a-b.yaml", "b.yaml"]


def test_a_relative_path_is_resolved_against_base_dir_and_an_absolute_one_is_not(tmp_path: Path) -> None:
    write(tmp_path / "dags" / "retell_tests", "cases.yaml", "- {name: one, user_prompt: p, metrics: [m]}\n")

    relative = load_definitions("retell_tests/cases.yaml", base_dir=tmp_path / "dags")
    absolute = load_definitions(tmp_path / "dags" / "retell_tests", base_dir="/nonexistent")

    assert [s.name for s in relative] == [s.name for s in absolute] == ["one"]
    with pytest.raises(
        RetellInputError, match=r"'retell_tests' does not exist \(looked for .*elsewhere/retell_tests\)"
    ):
        load_definitions("retell_tests", base_dir=tmp_path / "elsewhere")


def test_a_folder_without_yaml_files_is_an_error(tmp_path: Path) -> None:
    write(tmp_path / "tests", "README.md", "# nothing here\n")
    write(tmp_path / "tests", ".hidden.yaml", "- {name: x, user_prompt: p, metrics: [m]}\n")

    message = load_error(tmp_path, "tests")

    assert "'tests' is a folder with no .yaml or .yml files" in message


@pytest.mark.parametrize("bad", ["", "   ", None, 3])
def test_path_must_be_a_path(tmp_path: Path, bad: Any) -> None:
    with pytest.raises(RetellInputError, match="path must be a file or folder path"):
        load_definitions(bad, base_dir=tmp_path)


@pytest.mark.parametrize(
    ("entry", "line", "expected"),
    [
        ("  metrics: [m]\n  metric: [m]\n", 4, "unknown field 'metric': did you mean 'metrics'?"),
        (
            "  metrics: [m]\n  tool_mock:\n    - {tool_name: t}\n",
            4,
            "unknown field 'tool_mock': did you mean 'tool_mocks'?",
        ),
        (
            "  metrics: [m]\n  dynamic_variables: {order_id: 10432}\n",
            4,
            "field 'dynamic_variables.order_id': Input should be a valid string (YAML read it as int 10432: put it in quotes)",
        ),
        (
            "  metrics: [m, yes]\n",
            3,
            "field 'metrics[1]': Input should be a valid string (YAML read it as bool True",
        ),
        ("  metrics: []\n", 3, "field 'metrics': List should have at least 1 item"),
        ("  metrics: m\n", 3, "field 'metrics': Input should be a valid list"),
        (
            "  metrics: [m]\n  dynamic_variables: null\n",
            4,
            "field 'dynamic_variables' is null: leave it out to keep Retell's value, or give {} to clear it",
        ),
        (
            "  metrics: [m]\n  llm_model: ''\n",
            4,
            "field 'llm_model': String should have at least 1 character",
        ),
        (
            "  metrics: [m]\n  tool_mocks: [{tool_name: t, since: 2024-01-01}]\n",
            4,
            "field 'tool_mocks[0].since': input was not a valid JSON value (YAML read it as date 2024-01-01",
        ),
        (
            "  metrics: [m]\n  tool_mocks: [just a string]\n",
            4,
            "field 'tool_mocks[0]': Input should be a valid dictionary",
        ),
    ],
)
def test_an_invalid_entry_names_the_file_line_entry_and_field(
    tmp_path: Path, entry: str, line: int, expected: str
) -> None:
    good = "- name: fine\n  user_prompt: p\n  metrics: [m]\n"
    file = write(tmp_path, "cases.yaml", "- name: refund\n  user_prompt: I want a refund\n" + entry + good)

    message = load_error(tmp_path, "cases.yaml")

    assert "1 problem(s)" in message
    assert f"{file}:{line}: entry 1 'refund': {expected}" in message


def test_an_entry_without_a_usable_name_is_named_by_its_number(tmp_path: Path) -> None:
    file = write(tmp_path, "cases.yaml", "- name: ' '\n  user_prompt: p\n  metrics: [m]\n- not a mapping\n")

    message = load_error(tmp_path, "cases.yaml")

    assert f"{file}:1: entry 1 ' ': field 'name': String should match pattern" in message
    assert f"{file}:4: entry 2: must be a mapping of fields, got str" in message
    assert "'user_prompt' is required" not in message


def test_a_missing_required_field_is_named(tmp_path: Path) -> None:
    file = write(tmp_path, "cases.yaml", "- name: refund\n  metrics: [m]\n")

    assert f"{file}:1: entry 1 'refund': field 'user_prompt' is required" in load_error(tmp_path)


def test_every_problem_of_every_file_is_reported_at_once(tmp_path: Path) -> None:
    a = write(tmp_path, "a.yaml", "- {name: a, user_prompt: p, metrics: [m], colour: red}\n")
    b = write(tmp_path, "b.yaml", "- {name: b, metrics: [m]}\n- {name: c, user_prompt: p}\n- {name: a}\n")

    message = load_error(tmp_path)

    assert "6 problem(s)" in message
    # Invalid entries still count for duplicate names, so one run shows everything to fix.
    assert f"name 'a' is used by two test cases: {a}:1: entry 1 'a' and {b}:3: entry 3 'a'" in message
    assert f"{a}:1: entry 1 'a': unknown field 'colour'" in message
    assert f"{b}:1: entry 1 'b': field 'user_prompt' is required" in message
    assert f"{b}:2: entry 2 'c': field 'metrics' is required" in message


def test_bad_yaml_names_the_file_and_line(tmp_path: Path) -> None:
    write(tmp_path, "good.yaml", "- {name: a, user_prompt: p, metrics: [m]}\n")
    bad = write(tmp_path, "bad.yaml", "- name: a\n  user_prompt: p\n  metrics: [m\n- name: b\n")

    message = load_error(tmp_path)

    assert re.search(rf"{re.escape(str(bad))}:\d+: not valid YAML: ", message), message
    line = int(re.search(rf"{re.escape(str(bad))}:(\d+):", message).group(1))  # type: ignore[union-attr]
    assert 3 <= line <= 4


def test_a_key_given_twice_is_an_error_not_a_silent_overwrite(tmp_path: Path) -> None:
    file = write(tmp_path, "cases.yaml", "- name: a\n  user_prompt: p\n  metrics: [m]\n  metrics: [n]\n")

    assert f"{file}:4: key 'metrics' is given twice" in load_error(tmp_path)


def test_yaml_merge_keys_are_not_duplicates(tmp_path: Path) -> None:
    write(
        tmp_path,
        "cases.yaml",
        """
        - &base {name: a, user_prompt: p, metrics: [m], llm_model: gpt-5}
        - <<: *base
          name: b
        """,
    )
    specs = load_definitions(".", base_dir=tmp_path)

    assert [(s.name, s.llm_model) for s in specs] == [("a", "gpt-5"), ("b", "gpt-5")]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "it is empty"),
        ("# only a comment\n", "it is empty"),
        ("just text\n", "it is a str"),
        ("test_cases: [{name: a, user_prompt: p, metrics: [m]}]\ndefaults: {}\n", "(unknown: defaults)"),
        ("test_case: []\n", "(unknown: test_case)"),
        ("test_cases: {name: a}\n", "a mapping file has one key, test_cases, holding a list"),
    ],
)
def test_a_file_of_the_wrong_shape_is_an_error(tmp_path: Path, text: str, expected: str) -> None:
    file = write(tmp_path, "cases.yaml", text)

    message = load_error(tmp_path)

    assert str(file) in message
    assert expected in message


def test_files_with_no_test_cases_at_all_are_an_error(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", "[]\n")
    write(tmp_path, "b.yaml", "test_cases: []\n")

    assert "the files hold no test cases (2 file(s) read)" in load_error(tmp_path)


def test_a_duplicate_name_across_files_names_both_entries(tmp_path: Path) -> None:
    a = write(
        tmp_path,
        "a.yaml",
        "- {name: x, user_prompt: p, metrics: [m]}\n- {name: refund, user_prompt: p, metrics: [m]}\n",
    )
    b = write(tmp_path, "sub/b.yaml", "test_cases:\n  - {name: refund, user_prompt: q, metrics: [m]}\n")

    message = load_error(tmp_path)

    assert (
        f"name 'refund' is used by two test cases: {a}:2: entry 2 'refund' and {b}:2: entry 1 'refund'"
        in message
    )


def test_specs_built_in_code_keep_track_of_the_fields_they_set() -> None:
    full = spec("a", dynamic_variables={}, tool_mocks=[{"tool_name": "t", "n": 1.5}], llm_model="gpt-5")

    assert spec("a").set_fields == ("user_prompt", "metrics")
    assert full.set_fields == ("user_prompt", "metrics", "dynamic_variables", "tool_mocks", "llm_model")
    assert full.create_body() == {
        "name": "a",
        "user_prompt": "prompt of a",
        "metrics": ["m1"],
        "dynamic_variables": {},
        "tool_mocks": [{"tool_name": "t", "n": 1.5}],
        "llm_model": "gpt-5",
    }
    assert spec("a").source is None


# ----------------------------------------------------------------------------------------- planning
def test_a_name_missing_in_retell_is_created_with_only_the_fields_the_file_gives() -> None:
    plan = compute_plan([spec("new", llm_model="gpt-5"), spec("old")], [retell("tcd_1", "old")], prune=False)

    (create,) = plan.creates
    assert create.name == "new"
    assert create.test_case_definition_id is None
    assert create.body == {
        "name": "new",
        "user_prompt": "prompt of new",
        "metrics": ["m1"],
        "llm_model": "gpt-5",
    }
    assert "response_engine" not in create.body
    assert [i.name for i in plan.unchanged] == ["old"]
    assert plan.has_changes


def test_an_update_holds_only_the_fields_that_differ() -> None:
    specs = [
        spec("a", user_prompt="new prompt", metrics=["m1", "m2"], llm_model="gpt-4.1"),
        spec("b", metrics=["y", "x"]),
    ]
    current = [retell("tcd_a", "a", metrics=["m1"]), retell("tcd_b", "b", metrics=["x", "y"])]

    plan = compute_plan(specs, current, prune=False)

    assert [(i.name, i.test_case_definition_id, i.changed, i.body) for i in plan.updates] == [
        ("a", "tcd_a", ("user_prompt", "metrics"), {"user_prompt": "new prompt", "metrics": ["m1", "m2"]}),
        ("b", "tcd_b", ("metrics",), {"metrics": ["y", "x"]}),  # metrics are an ordered list
    ]


def test_a_field_left_out_of_the_file_is_never_touched() -> None:
    current = [
        retell(
            "tcd_a",
            "a",
            dynamic_variables={"region": "eu"},
            tool_mocks=[{"tool_name": "t"}],
            llm_model="gpt-5",
        )
    ]

    plan = compute_plan([spec("a")], current, prune=False)

    assert [(i.action, i.name) for i in plan.items] == [("unchanged", "a")]
    assert not plan.has_changes


def test_an_empty_value_clears_the_field_in_retell() -> None:
    current = [retell("tcd_a", "a", dynamic_variables={"region": "eu"}, tool_mocks=[{"tool_name": "t"}])]

    plan = compute_plan([spec("a", dynamic_variables={}, tool_mocks=[])], current, prune=False)

    (update,) = plan.updates
    assert update.changed == ("dynamic_variables", "tool_mocks")
    assert update.body == {"dynamic_variables": {}, "tool_mocks": []}


def test_values_compare_as_json() -> None:
    wanted = spec(
        "a",
        dynamic_variables={"b": "2", "a": "1"},
        tool_mocks=[{"output": "{}", "tool_name": "t", "input_match_rule": {"type": "any"}, "score": 1.0}],
    )
    same = retell(
        "tcd_a",
        "a",
        dynamic_variables={"a": "1", "b": "2"},
        tool_mocks=[{"tool_name": "t", "input_match_rule": {"type": "any"}, "output": "{}", "score": 1}],
    )
    swapped = retell(
        "tcd_a",
        "a",
        dynamic_variables={"a": "1", "b": "2"},
        tool_mocks=[{"tool_name": "t", "input_match_rule": {"type": "any"}, "output": "{}", "score": True}],
    )

    assert not compute_plan([wanted], [same], prune=False).has_changes
    assert compute_plan([wanted], [swapped], prune=False).updates[0].changed == ("tool_mocks",)


def test_null_or_missing_in_retell_equals_the_empty_value() -> None:
    current = [retell("tcd_a", "a", dynamic_variables=None), retell("tcd_b", "b")]
    del current[1]["tool_mocks"]

    plan = compute_plan([spec("a", dynamic_variables={}), spec("b", tool_mocks=[])], current, prune=False)

    assert [i.action for i in plan.items] == ["unchanged", "unchanged"]


def test_definitions_in_no_file_are_deleted_only_with_prune() -> None:
    current = [
        retell("tcd_z", "zeta"),
        retell("tcd_k", "kept"),
        retell("tcd_a", "alpha"),
        retell("tcd_b", "beta"),
    ]

    kept = compute_plan([spec("kept")], current, prune=False)
    pruned = compute_plan([spec("kept")], current, prune=True)

    assert kept.deletes == ()
    assert [(i.action, i.name, i.test_case_definition_id) for i in kept.kept] == [
        ("keep", "alpha", "tcd_a"),
        ("keep", "beta", "tcd_b"),
        ("keep", "zeta", "tcd_z"),
    ]
    assert not kept.has_changes
    assert [(i.name, i.test_case_definition_id) for i in pruned.deletes] == [
        ("alpha", "tcd_a"),
        ("beta", "tcd_b"),
        ("zeta", "tcd_z"),
    ]
    assert pruned.kept == ()
    assert [i.name for i in pruned.unchanged] == ["kept"]


def test_the_plan_is_in_file_order_then_by_name_and_id_whatever_retell_returns() -> None:
    specs = [spec("c"), spec("a", user_prompt="changed"), spec("new"), spec("b")]
    current = [
        retell("tcd_b", "b"),
        retell("tcd_x2", "x"),
        retell("tcd_a", "a"),
        retell("tcd_x1", "x"),
        retell("tcd_c", "c"),
    ]

    plans = [compute_plan(specs, order, prune=True) for order in (current, current[::-1])]

    assert plans[0] == plans[1]
    assert [(i.action, i.name, i.test_case_definition_id) for i in plans[0].items] == [
        ("unchanged", "c", "tcd_c"),
        ("update", "a", "tcd_a"),
        ("create", "new", None),
        ("unchanged", "b", "tcd_b"),
        ("delete", "x", "tcd_x1"),  # two of one name in no file: no guess needed, both go
        ("delete", "x", "tcd_x2"),
    ]


def test_two_retell_definitions_with_a_name_the_files_use_fail_by_name() -> None:
    current = [retell("tcd_2", "refund"), retell("tcd_1", "refund"), retell("tcd_3", "other")]

    with pytest.raises(RetellInputError) as info:
        compute_plan([spec("refund"), spec("other")], current, prune=True)

    assert "more than one test case definition with the same name: 'refund' (tcd_1, tcd_2)" in str(info.value)


def test_duplicate_names_among_specs_fail_the_plan() -> None:
    with pytest.raises(RetellInputError, match="name 'a' is used by two test cases"):
        compute_plan([spec("a"), spec("b"), spec("a", user_prompt="other")], [], prune=False)


@pytest.mark.parametrize("item", [{"name": "a"}, {"test_case_definition_id": "", "name": "a"}, "tcd_1"])
def test_a_listed_definition_without_an_id_is_refused(item: Any) -> None:
    with pytest.raises(RetellInputError, match=r"current\[1\] is not a test case definition with an id"):
        compute_plan([spec("a")], [retell("tcd_0", "z"), item], prune=False)


def test_the_hook_models_are_accepted_as_current() -> None:
    current = [DefinitionModel.model_validate(retell("tcd_a", "a", metrics=["old"]))]

    plan = compute_plan([spec("a")], current, prune=False)

    assert [(i.name, i.changed) for i in plan.updates] == [("a", ("metrics",))]


def test_table_and_summary_show_every_action() -> None:
    specs = [spec("new"), spec("a", user_prompt="changed", llm_model="gpt-5"), spec("same")]
    current = [retell("tcd_a", "a"), retell("tcd_s", "same"), retell("tcd_o", "old one")]

    kept = compute_plan(specs, current, prune=False)
    pruned = compute_plan(specs, current, prune=True)

    assert kept.table().splitlines() == [
        "1 to create, 1 to update, 0 to delete, 1 unchanged, 1 kept (in Retell, in no file; prune is off)",
        "action     name     id     changed",
        "---------  -------  -----  -------",
        "create     new      -",
        "update     a        tcd_a  user_prompt, llm_model",
        "unchanged  same     tcd_s",
        "keep       old one  tcd_o",
    ]
    assert pruned.table().splitlines()[0] == "1 to create, 1 to update, 1 to delete, 1 unchanged"
    assert pruned.table().splitlines()[-1] == "delete     old one  tcd_o"
    assert pruned.summary() == {
        "created": ["new"],
        "updated": ["a"],
        "deleted": ["old one"],
        "unchanged": ["same"],
    }
    assert kept.summary()["deleted"] == []


def test_ids_of_the_synced_set_are_in_file_order_once_creates_have_ids() -> None:
    specs = [spec("b"), spec("new1"), spec("a", user_prompt="changed"), spec("new2")]
    plan = compute_plan(specs, [retell("tcd_a", "a"), retell("tcd_b", "b"), retell("tcd_x", "x")], prune=True)

    assert plan.test_case_definition_ids({"new2": "tcd_n2", "new1": "tcd_n1"}) == [
        "tcd_b",
        "tcd_n1",
        "tcd_a",
        "tcd_n2",
    ]
    assert plan.existing_test_case_definition_ids() == ["tcd_b", "tcd_a"]
    with pytest.raises(ValueError, match=r"missing \['new2'\]"):
        plan.test_case_definition_ids({"new1": "tcd_n1"})
    with pytest.raises(ValueError, match=r"not created by this plan \['b'\]"):
        plan.test_case_definition_ids({"new1": "tcd_n1", "new2": "tcd_n2", "b": "tcd_b"})
    with pytest.raises(ValueError, match=r"not an id \['new1'\]"):
        plan.test_case_definition_ids({"new1": "", "new2": "tcd_n2"})


# ----------------------------------------------------------------------------------------- applying
def test_applying_a_plan_then_planning_again_leaves_nothing_to_do(tmp_path: Path) -> None:
    write(
        tmp_path,
        "cases.yaml",
        """
        - name: greeting
          user_prompt: Say hi
          metrics: [greets]
        - name: refund
          user_prompt: I want a refund
          metrics: [offers refund, confirms amount]
          dynamic_variables: {order_id: "10432"}
          tool_mocks: [{tool_name: lookup, input_match_rule: {type: any}, output: "{}"}]
          llm_model: gpt-5
        - name: cleared
          user_prompt: p
          metrics: [m]
          tool_mocks: []
        """,
    )
    store = FakeStore()
    old_mocks = [{"tool_name": "old"}]
    store.create(
        {
            "name": "cleared",
            "user_prompt": "p",
            "metrics": ["m"],
            "tool_mocks": old_mocks,
            "response_engine": ENGINE,
        }
    )
    store.create({"name": "stale", "user_prompt": "p", "metrics": ["m"], "response_engine": ENGINE})
    store.writes.clear()
    specs = load_definitions("cases.yaml", base_dir=tmp_path)

    first = compute_plan(specs, store.listing(), prune=True)
    ids = apply(first, store)
    second = compute_plan(specs, store.listing(), prune=True)

    assert store.writes == [
        ("create", "greeting"),
        ("create", "refund"),
        ("update", "cleared"),
        ("delete", "stale"),
    ]
    assert not second.has_changes
    assert [i.action for i in second.items] == ["unchanged"] * 3
    assert second.existing_test_case_definition_ids() == ids
    assert [store.records[i]["name"] for i in ids] == ["greeting", "refund", "cleared"]
    assert store.records[ids[0]]["llm_model"] == "gpt-4.1"  # left out: Retell's default stays
    assert store.records[ids[2]]["tool_mocks"] == []


def test_an_edited_prompt_updates_exactly_one_and_a_sync_stopped_midway_converges(tmp_path: Path) -> None:
    cases = "".join(f"- {{name: case {n}, user_prompt: prompt {n}, metrics: [m]}}\n" for n in range(5))
    write(tmp_path, "cases.yaml", cases)
    store = FakeStore()
    apply(compute_plan(load_definitions("cases.yaml", base_dir=tmp_path), [], prune=False), store)
    write(
        tmp_path,
        "cases.yaml",
        cases.replace("prompt 3", "prompt three") + "- {name: case 5, user_prompt: p, metrics: [m]}\n",
    )
    store.writes.clear()
    specs = load_definitions("cases.yaml", base_dir=tmp_path)

    plan = compute_plan(specs, store.listing(), prune=False)
    # The create lands, then the task dies before the update: the next plan still has the update only.
    store.create({**plan.creates[0].body, "response_engine": ENGINE})
    retry = compute_plan(specs, store.listing(), prune=False)
    apply(retry, store)

    assert [(i.action, i.name, i.changed) for i in plan.items if i.action != "unchanged"] == [
        ("update", "case 3", ("user_prompt",)),
        ("create", "case 5", ()),
    ]
    assert [(i.action, i.name) for i in retry.items if i.action != "unchanged"] == [("update", "case 3")]
    assert store.writes == [("create", "case 5"), ("update", "case 3")]
    assert not compute_plan(specs, store.listing(), prune=False).has_changes


def test_the_emulator_accepts_every_body_and_the_sync_converges_against_it() -> None:
    """The plan's bodies against the emulator's own definition store (what Retell validates)."""
    from airflow_provider_retell.emulator.state import EmulatorState

    state = EmulatorState()
    query = {"type": ENGINE["type"], "conversation_flow_id": ENGINE["conversation_flow_id"], "limit": "1000"}
    specs = [
        spec("as code 1", dynamic_variables={"a": "1"}, tool_mocks=[{"tool_name": "t", "output": "{}"}]),
        spec("as code 2", llm_model="gpt-5"),
    ]

    def listing() -> list[dict[str, Any]]:
        return list(state.list_definitions(query)["items"])

    before = len(listing())
    plan = compute_plan(specs, listing(), prune=False)
    created = {
        i.name: state.create_definition({**i.body, "response_engine": ENGINE}, 1)["test_case_definition_id"]
        for i in plan.creates
    }
    edited = [spec("as code 1", dynamic_variables={}), specs[1]]
    update = compute_plan(edited, listing(), prune=False).updates
    for item in update:
        state.update_definition(str(item.test_case_definition_id), item.body, 2)

    assert len(listing()) == before + 2
    assert [i.changed for i in update] == [("dynamic_variables",)]
    assert not compute_plan(edited, listing(), prune=False).has_changes
    assert compute_plan(
        edited, listing(), prune=False
    ).existing_test_case_definition_ids() == plan.test_case_definition_ids(created)


# ----------------------------------------------------------------------------------------- schema, docs, CLI
def test_the_shipped_schema_is_the_generated_one() -> None:
    assert SCHEMA_PATH.read_text(encoding="utf-8") == definitions_json_schema_text(), (
        "the shipped schema is stale: run python -m airflow_provider_retell.definitions --write-schema"
    )


def test_the_schema_checks_what_editors_check() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    validator = jsonschema.Draft202012Validator(json.loads(SCHEMA_PATH.read_text(encoding="utf-8")))
    entry = {
        "name": "a",
        "user_prompt": "p",
        "metrics": ["m"],
        "tool_mocks": [{"tool_name": "t", "n": [1, None]}],
    }

    assert validator.is_valid([entry])
    assert validator.is_valid({"test_cases": [entry]})
    assert not validator.is_valid([{**entry, "metric": ["m"]}])  # typo
    assert not validator.is_valid([{**entry, "dynamic_variables": {"n": 3}}])
    assert not validator.is_valid([{k: v for k, v in entry.items() if k != "metrics"}])
    assert not validator.is_valid({"test_cases": [entry], "defaults": {}})
    assert not validator.is_valid([{**entry, "llm_model": None}])


def test_the_complete_example_in_the_docs_loads(tmp_path: Path) -> None:
    text = DOCS.read_text(encoding="utf-8")
    example = re.search(r"`example_dags/retell_tests/billing.yaml`:\n\n```yaml\n(.*?)```", text, re.S)
    assert example, "docs/definitions.md lost its complete example"
    write(tmp_path, "billing.yaml", example.group(1))

    specs = load_definitions("billing.yaml", base_dir=tmp_path)

    assert [(s.name, s.set_fields[2:]) for s in specs] == [
        ("refund for a late delivery", ("dynamic_variables", "tool_mocks", "llm_model")),
        ("caller asks for a human", ()),
        ("no tool mocks any more", ("tool_mocks",)),
    ]
    assert "{{order_id}}" in specs[0].user_prompt


def test_check_command_validates_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path, "ok/a.yaml", "- {name: a, user_prompt: p, metrics: [m]}\n")
    write(tmp_path, "ok/b.yaml", "- {name: b, user_prompt: p, metrics: [m]}\n")
    write(tmp_path, "bad/a.yaml", "- {name: a, user_prompt: p, metrics: [m], metrcs: [m]}\n")
    monkeypatch.chdir(tmp_path)

    assert main(["--check", "ok"]) == 0
    assert capsys.readouterr().out == "2 test case(s) OK in 2 file(s)\n"
    assert main(["--check", "bad"]) == 1
    assert "did you mean 'metrics'?" in capsys.readouterr().err
    assert main(["--schema"]) == 0
    assert capsys.readouterr().out == definitions_json_schema_text()


def test_dag_parsing_does_not_import_the_definitions_module() -> None:
    code = (
        "import sys, importlib, pkgutil\n"
        "import airflow_provider_retell.operators as ops, airflow_provider_retell.sensors as sensors\n"
        "for pkg in (ops, sensors):\n"
        "    for m in pkgutil.iter_modules(pkg.__path__):\n"
        "        importlib.import_module(f'{pkg.__name__}.{m.name}')\n"
        "print('airflow_provider_retell.definitions' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout

    assert out.strip() == "False"


# ------------------------------------------------------------------------ hostile files stay bounded
def _laughs(levels: int, field: str) -> str:
    """A billion-laughs document: ``levels`` anchors, each a list of ten aliases of the one before."""
    lines = ["x:", '  - &l0 "ha"']
    for level in range(1, levels + 1):
        refs = ", ".join([f"*l{level - 1}"] * 10)
        lines.append(f"  - &l{level} [{refs}]")
    doc = "\n".join(lines)
    return (
        "anchors:\n" + textwrap.indent(doc, "  ") + "\n"
        "test_cases:\n"
        "  - name: laughs\n"
        "    user_prompt: hi\n"
        "    metrics: [ok]\n"
        f"    {field}: *l{levels}\n"
    )


@pytest.mark.parametrize("field", ["tool_mocks", "metrics", "dynamic_variables"])
def test_an_alias_bomb_is_refused_by_its_size_not_expanded(tmp_path: Path, field: str) -> None:
    (tmp_path / "bomb.yaml").write_text(_laughs(9, field))  # 10**9 strings once expanded
    with pytest.raises(RetellInputError, match=r"bomb\.yaml.*more than [\d,]+ YAML nodes"):
        load_definitions("bomb.yaml", base_dir=tmp_path)


def test_anchors_for_shared_metrics_still_work(tmp_path: Path) -> None:
    (tmp_path / "shared.yaml").write_text(
        textwrap.dedent(
            """
            - name: first
              user_prompt: hi
              metrics: &common [polite, correct]
            - name: second
              user_prompt: hello
              metrics: *common
            """
        )
    )
    specs = load_definitions("shared.yaml", base_dir=tmp_path)
    assert [s.metrics for s in specs] == [["polite", "correct"], ["polite", "correct"]]


def test_a_file_past_the_size_cap_is_refused_unread(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    big.write_text("# " + "x" * (MAX_FILE_BYTES + 1) + "\n- name: a\n  user_prompt: b\n  metrics: [c]\n")
    with pytest.raises(RetellInputError, match=r"big\.yaml: .*larger than"):
        load_definitions(big, base_dir=tmp_path)


def test_a_folder_with_more_files_than_the_cap_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import airflow_provider_retell.definitions as definitions

    monkeypatch.setattr(definitions, "MAX_FILES", 3)
    for i in range(4):
        (tmp_path / f"case_{i}.yaml").write_text(f"- name: c{i}\n  user_prompt: p\n  metrics: [m]\n")
    with pytest.raises(RetellInputError, match=r"more than 3 \.yaml"):
        load_definitions(".", base_dir=tmp_path)


def test_nesting_too_deep_for_the_parser_is_a_named_problem(tmp_path: Path) -> None:
    deep = "[" * 20_000 + "]" * 20_000
    (tmp_path / "deep.yaml").write_text(
        f"- name: a\n  user_prompt: b\n  metrics: [c]\n  tool_mocks: {deep}\n"
    )
    with pytest.raises(RetellInputError, match=r"deep\.yaml: nested too deeply"):
        load_definitions("deep.yaml", base_dir=tmp_path)
