"""Provider metadata read by Airflow through the ``apache_airflow_provider`` entry point.

Kept free of imports: Airflow calls it while discovering providers.
"""

from __future__ import annotations

from typing import Any

_PACKAGE = "airflow_provider_retell"


def get_provider_info() -> dict[str, Any]:
    return {
        "package-name": "airflow-provider-retell",
        "name": "Retell AI",
        "description": "Run Retell AI batch tests of voice and chat agents, wait for them, and gate on the result.",
        "versions": ["0.1.0"],
        "integrations": [
            {
                "integration-name": "Retell AI",
                "external-doc-url": "https://docs.retellai.com/",
                "tags": ["service"],
            }
        ],
        "hooks": [{"integration-name": "Retell AI", "python-modules": [f"{_PACKAGE}.hooks.retell"]}],
        "operators": [
            {
                "integration-name": "Retell AI",
                "python-modules": [
                    f"{_PACKAGE}.operators.batch_test",
                    f"{_PACKAGE}.operators.test_case_definitions",
                ],
            }
        ],
        "sensors": [{"integration-name": "Retell AI", "python-modules": [f"{_PACKAGE}.sensors.batch_test"]}],
        "triggers": [
            {"integration-name": "Retell AI", "python-modules": [f"{_PACKAGE}.triggers.batch_test"]}
        ],
        "extra-links": [f"{_PACKAGE}.links.RetellAgentLink"],
        "connection-types": [
            {
                "connection-type": "retell",
                "hook-class-name": f"{_PACKAGE}.hooks.retell.RetellHook",
                "hook-name": "Retell AI",
                # The Airflow 3.2+ way to declare the form (the hook's get_connection_form_widgets /
                # get_ui_field_behaviour are deprecated). conn-fields land in the connection's extra;
                # names, defaults and ranges must match connection.py (tests/unit/test_connection_form.py).
                "ui-field-behaviour": {
                    "hidden-fields": ["schema", "login", "port"],
                    "relabeling": {"password": "API Key", "host": "Base URL (optional)"},
                    "placeholders": {"host": "https://api.retellai.com", "password": "key_..."},
                },
                "conn-fields": {
                    "timeout": {
                        "label": "Read timeout (s)",
                        "description": "Seconds to wait for Retell's reply to one request; also the "
                        "wall-clock bound of one request. More than 0, at most 3600.",
                        "schema": {
                            "type": ["number", "null"],
                            "default": 60,
                            "exclusiveMinimum": 0,
                            "maximum": 3600,
                        },
                    },
                    "connect_timeout": {
                        "label": "Connect timeout (s)",
                        "description": "Seconds to wait for a connection to Retell. More than 0, at most 600.",
                        "schema": {
                            "type": ["number", "null"],
                            "default": 5,
                            "exclusiveMinimum": 0,
                            "maximum": 600,
                        },
                    },
                    "max_retries": {
                        "label": "Max retries",
                        "description": "Retries of a read after a timeout, 429 or 5xx (a create is "
                        "reconciled, never re-sent blindly). 0 to 100.",
                        "schema": {"type": ["integer", "null"], "default": 3, "minimum": 0, "maximum": 100},
                    },
                    "max_retry_wait": {
                        "label": "Max retry wait (s)",
                        "description": "Longest pause between retries, including a Retry-After from "
                        "Retell. 0 to 3600.",
                        "schema": {"type": ["number", "null"], "default": 60, "minimum": 0, "maximum": 3600},
                    },
                    "create_settle_seconds": {
                        "label": "Create settle window (s)",
                        "description": "How long a create with no known outcome is looked for before it "
                        "may be sent again (each create bills a batch). 0 to 86400.",
                        "schema": {
                            "type": ["number", "null"],
                            "default": 300,
                            "minimum": 0,
                            "maximum": 86400,
                        },
                    },
                    "proxy": {
                        "label": "Proxy URL",
                        "description": "An http:// or https:// proxy for an https:// base URL (may "
                        "hold credentials; they are masked). Empty: HTTPS_PROXY / ALL_PROXY / NO_PROXY "
                        "from the environment. Never used for http://.",
                        "schema": {"type": ["string", "null"], "default": None},
                    },
                    "allow_insecure_http": {
                        "label": "Allow http:// to a non-loopback host",
                        "description": "Sends the API key unencrypted. Only for a trusted proxy; "
                        "http:// to 127.0.0.1 or localhost (the emulator) needs no flag.",
                        "schema": {"type": ["boolean", "null"], "default": False},
                    },
                },
            }
        ],
    }
