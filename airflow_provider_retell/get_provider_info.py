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
                "ui-field-behaviour": {
                    "hidden-fields": ["schema", "login", "port"],
                    "relabeling": {"password": "API Key", "host": "Base URL (optional)"},
                    "placeholders": {"host": "https://api.retellai.com", "password": "key_..."},
                },
                "conn-fields": {
                    "timeout": {
                        "label": "Read timeout (s)",
                        "description": "Seconds to wait for Retell's reply to one request.",
                        "schema": {"type": ["number", "null"], "default": 60},
                    },
                    "connect_timeout": {
                        "label": "Connect timeout (s)",
                        "description": "Seconds to wait for a connection to Retell.",
                        "schema": {"type": ["number", "null"], "default": 5},
                    },
                    "max_retries": {
                        "label": "Max retries",
                        "description": "Retries of a request after a timeout, 429 or 5xx (reads only; "
                        "a create is reconciled, never re-sent blindly).",
                        "schema": {"type": ["integer", "null"], "default": 3, "minimum": 0},
                    },
                    "max_retry_wait": {
                        "label": "Max retry wait (s)",
                        "description": "Longest pause between retries, including a Retry-After from Retell.",
                        "schema": {"type": ["number", "null"], "default": 60},
                    },
                    "allow_insecure_http": {
                        "label": "Allow http:// to a non-loopback host",
                        "description": "Sends the API key unencrypted. Only for a trusted proxy.",
                        "schema": {"type": ["boolean", "null"], "default": False},
                    },
                },
            }
        ],
    }
