"""The connection form declared in ``get_provider_info`` matches what ``connection.py`` reads.

The form (conn-fields + ui-field-behaviour, the Airflow 3.2+ way) is plain data that Airflow reads
without importing the provider, so nothing ties it to the code but these tests: the same extras,
the same defaults, the same ranges, and a connection saved with the form's defaults resolves to the
documented defaults.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from airflow_provider_retell import connection
from airflow_provider_retell.connection import DEFAULT_BASE_URL, EXTRAS, OTHER_EXTRAS
from airflow_provider_retell.exceptions import RetellInputError
from airflow_provider_retell.get_provider_info import get_provider_info
from airflow_provider_retell.hooks.retell import RetellHook


def _conn_type() -> dict[str, Any]:
    (found,) = [c for c in get_provider_info()["connection-types"] if c["connection-type"] == "retell"]
    return found


FIELDS: dict[str, Any] = _conn_type()["conn-fields"]


def test_the_form_declares_exactly_the_extras_the_connection_reads() -> None:
    source = Path(connection.__file__).read_text(encoding="utf-8")
    read_in_source = set(re.findall(r"""extra\.get\(\s*["']([a-z_]+)["']""", source))
    assert set(FIELDS) == set(EXTRAS) | set(OTHER_EXTRAS)
    # Every extra.get("...") in connection.py is a declared field (a new extra needs a form field).
    assert read_in_source <= set(FIELDS), read_in_source - set(FIELDS)


@pytest.mark.parametrize("name", sorted(EXTRAS))
def test_numeric_field_matches_its_range(name: str) -> None:
    spec, schema = EXTRAS[name], FIELDS[name]["schema"]
    assert schema["default"] == spec.default
    assert schema["type"] == ["integer" if spec.integer else "number", "null"]
    assert schema["maximum"] == spec.maximum
    if spec.open_min:
        assert schema["exclusiveMinimum"] == spec.minimum
        assert "minimum" not in schema
    else:
        assert schema["minimum"] == spec.minimum
        assert "exclusiveMinimum" not in schema


@pytest.mark.parametrize("name", sorted(OTHER_EXTRAS))
def test_other_field_default(name: str) -> None:
    assert FIELDS[name]["schema"]["default"] == OTHER_EXTRAS[name]


@pytest.mark.parametrize("name", sorted(FIELDS))
def test_field_is_labelled_described_and_valid_json_schema(name: str) -> None:
    field = FIELDS[name]
    assert field["label"]
    assert len(field["description"]) > 20
    jsonschema.Draft202012Validator.check_schema(field["schema"])
    jsonschema.validate(field["schema"]["default"], field["schema"])
    jsonschema.validate(None, field["schema"])  # a cleared field means "the default"


@pytest.mark.parametrize("name", sorted(EXTRAS))
def test_schema_and_connection_agree_on_the_boundaries(name: str, set_conn) -> None:
    """The values the schema accepts are the values the connection accepts, at and around the edges."""
    spec, schema = EXTRAS[name], FIELDS[name]["schema"]
    step = 1 if spec.integer else 0.5
    candidates = [spec.minimum - step, spec.minimum, spec.minimum + step, spec.maximum, spec.maximum + step]
    for value in candidates:
        value = int(value) if spec.integer else value
        schema_ok = jsonschema.Draft202012Validator(schema).is_valid(value)
        set_conn("retell_form_range", extra={name: value})
        try:
            RetellHook("retell_form_range").settings  # noqa: B018 - resolving it validates the extras
            conn_ok = True
        except RetellInputError:
            conn_ok = False
        assert schema_ok == conn_ok, f"{name}={value!r}: schema {schema_ok}, connection {conn_ok}"


def test_a_connection_saved_with_the_form_defaults_resolves_to_the_defaults(set_conn) -> None:
    """The UI copies every default into the extra on save."""
    set_conn("retell_form_defaults", extra={name: f["schema"]["default"] for name, f in FIELDS.items()})
    settings = RetellHook("retell_form_defaults").settings
    set_conn("retell_form_empty", extra={})
    assert settings == RetellHook("retell_form_empty").settings
    assert settings.timeout == EXTRAS["timeout"].default
    assert settings.retry.max_retries == EXTRAS["max_retries"].default
    assert settings.proxy is None


def test_ui_field_behaviour() -> None:
    behaviour = _conn_type()["ui-field-behaviour"]
    assert {"schema", "login", "port"} <= set(behaviour["hidden-fields"])
    assert "password" not in behaviour["hidden-fields"]
    assert "host" not in behaviour["hidden-fields"]
    assert behaviour["relabeling"] == {"password": "API Key", "host": "Base URL (optional)"}
    assert behaviour["placeholders"]["host"] == DEFAULT_BASE_URL


def test_the_connection_type_matches_the_hook() -> None:
    conn_type = _conn_type()
    assert conn_type["connection-type"] == RetellHook.conn_type
    assert conn_type["hook-name"] == RetellHook.hook_name
    assert conn_type["hook-class-name"] == f"{RetellHook.__module__}.{RetellHook.__qualname__}"
    # The deprecated hook methods are not used (they warn since Airflow 3.2).
    assert "get_connection_form_widgets" not in vars(RetellHook)
    assert "get_ui_field_behaviour" not in vars(RetellHook)


def test_airflow_loads_the_form_without_warnings() -> None:
    """What the api-server serves to the UI (``/ui/connections/hook_meta``) is built from these."""
    from airflow.providers_manager import ProvidersManager

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        manager = ProvidersManager()
        widgets = manager.connection_form_widgets
        behaviours = manager.field_behaviours
    ours = [w for w in caught if "retell" in str(w.message).lower()]
    assert not ours, [str(w.message) for w in ours]
    for name, field in FIELDS.items():
        widget = widgets[f"extra__retell__{name}"]
        assert widget.hook_class_name == _conn_type()["hook-class-name"]
        assert widget.field["value"] == field["schema"]["default"]
        assert widget.field["schema"]["title"] == field["label"]
        assert widget.field["description"] == field["description"]
    assert behaviours["retell"]["relabeling"]["password"] == "API Key"
