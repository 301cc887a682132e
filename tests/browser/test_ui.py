"""The Airflow UI path, clicked through in a real browser (see conftest.py for the deployment).

1. A Retell connection created through the Add Connection form: relabelled and hidden fields, the
   extras with their defaults and descriptions, saved, then tested with the Test action
   (``AIRFLOW__CORE__TEST_CONNECTION=Enabled``): the provider's success message.
2. The same with a wrong key: a readable failure naming the problem, and no key on the page.
3. ``retell_ui_trigger`` triggered through its Params form (first, so that 1 and 2 run while its
   batch test does); the run finishes, with the counts in the XCom view.
4. The operator's extra link ("Retell agent") points at the agent's dashboard page and opens it
   (the dashboard is answered locally: this machine has no internet).
"""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import quote

import pytest

from tests.browser.support import DAG_ID, ROOT, AirflowUI, screenshot
from tests.e2e.components import wait_for

pytestmark = [pytest.mark.browser, pytest.mark.slow]

RUN_TIMEOUT = 150.0
DASHBOARD = "https://dashboard.retellai.com/agents/agent_support"
#: conn-field -> the default the form must show (get_provider_info; tied to connection.py by a unit test)
FORM_DEFAULTS = {
    "timeout": "60",
    "connect_timeout": "5",
    "max_retries": "3",
    "max_retry_wait": "60",
    "create_settle_seconds": "300",
    "proxy": "",
}


def _expect() -> Any:
    from playwright.sync_api import expect

    return expect


def _send_a_missing_port_as_null(page: Any) -> None:
    """Work around apache/airflow#73298 (merged upstream, not in Airflow 3.3.2).

    The connections list's Test action posts ``port: Number(null)``, i.e. ``0``, for a connection
    without a port, and the 3.3.2 API refuses that with 400 "The host or port to test differs from
    the stored connection" for every such connection, whatever its type. The fix makes the API read
    ``0`` as "no port"; this sends ``null`` instead, and changes nothing else, so what the test sees
    is the provider's own answer.
    """

    def handle(route: Any) -> None:
        body = route.request.post_data_json
        if isinstance(body, dict) and body.get("port") == 0:
            route.continue_(post_data=json.dumps({**body, "port": None}))
        else:
            route.continue_()

    page.route("**/api/v2/connections/test", handle)


def _add_connection(page: Any, ui: AirflowUI, conn_id: str, api_key: str, shot: bool = False) -> None:
    expect = _expect()
    page.goto(f"{ui.url}/connections")
    page.get_by_role("button", name="Add Connection").click()
    dialog = page.get_by_role("dialog")
    dialog.locator("input[name=connection_id]").fill(conn_id)
    dialog.get_by_role("combobox").fill("Retell AI")
    page.keyboard.press("Enter")
    expect(dialog.get_by_text("Retell AI", exact=True)).to_be_visible()

    # Standard fields: relabelled, with the placeholder; schema, login and port are hidden.
    expect(dialog.get_by_text("Base URL (optional)", exact=True)).to_be_visible()
    expect(dialog.get_by_text("API Key", exact=True)).to_be_visible()
    host = dialog.locator("input[name=host]")
    expect(host).to_have_attribute("placeholder", "https://api.retellai.com")
    for hidden in ("login", "schema", "port"):
        expect(dialog.locator(f"input[name={hidden}]")).to_have_count(0)
    host.fill(ui.emulator.url)
    password = dialog.locator("input[name=password]")
    expect(password).to_have_attribute("type", "password")
    password.fill(api_key)
    dialog.locator("textarea[name=description]").fill("Retell AI through the bundled emulator")
    if shot:
        screenshot(dialog, "connection-form")

    # Extra fields: every extra with its default and description.
    dialog.get_by_role("button", name="Extra Fields", exact=True).click()
    for name, default in FORM_DEFAULTS.items():
        expect(dialog.locator(f"input[name=element_{name}]")).to_have_value(default)
    expect(dialog.locator("input[name=element_allow_insecure_http]")).not_to_be_checked()
    expect(dialog.get_by_text("Read timeout (s)")).to_be_visible()
    expect(dialog.get_by_text("How long a create with no known outcome is looked for")).to_be_visible()
    if shot:
        screenshot(dialog, "connection-form-extras")
    dialog.get_by_role("button", name="Save").click()
    expect(dialog).to_be_hidden()
    expect(page.get_by_role("row").filter(has_text=conn_id)).to_be_visible()


def _press_test(page: Any, conn_id: str) -> Any:
    """Press the row's Test action and return the API's answer to it."""
    _send_a_missing_port_as_null(page)
    row = page.get_by_role("row").filter(has_text=conn_id)
    with page.expect_response(lambda r: r.url.endswith("/api/v2/connections/test")) as answer:
        row.get_by_role("button", name="Test Connection").click()
    return answer.value


RUN: dict[str, Any] = {}  # the UI-triggered run: the first test starts it, later tests read it


def test_trigger_form_starts_a_run(page: Any, airflow_ui: AirflowUI) -> None:
    """``retell_ui_trigger`` triggered through its Params form (a new DAG is unpaused by the form's
    checkbox). Runs first: the connection tests below run while the batch test does."""
    expect = _expect()
    api = airflow_ui.api
    wait_for(
        f"the dag-processor to serialize {DAG_ID}",
        lambda: api.get(f"/dags/{DAG_ID}", ok=(200, 404)).get("dag_id") == DAG_ID,
        90,
        extra=airflow_ui.logs,
    )
    page.goto(f"{airflow_ui.url}/dags/{DAG_ID}")
    page.get_by_role("button", name="Trigger Dag").click()
    dialog = page.get_by_role("dialog")
    if api.get(f"/dags/{DAG_ID}")["is_paused"]:
        expect(dialog.get_by_label("Unpause retell_ui_trigger on trigger")).to_be_checked()
    expect(dialog.locator("input[name=element_agent_id]")).to_have_value("agent_support")
    expect(dialog.locator("input[name=element_min_pass_rate]")).to_have_value("1")
    dialog.locator("input[name=element_min_pass_rate]").fill("0.75")
    with page.expect_response(
        lambda r: r.url.endswith(f"/api/v2/dags/{DAG_ID}/dagRuns") and r.request.method == "POST"
    ) as answer:
        dialog.get_by_role("button", name="Trigger", exact=True).click()
    assert answer.value.status == 200, answer.value.text()
    run = answer.value.json()
    assert run["conf"] == {
        "agent_id": "agent_support",
        "test_case_definition_ids": None,
        "min_pass_rate": 0.75,
    }
    assert run["triggered_by"] == "ui"
    RUN.update(run_id=run["dag_run_id"], triggered=time.monotonic())


def test_every_example_dag_is_listed_without_import_errors(page: Any, airflow_ui: AirflowUI) -> None:
    expect = _expect()
    dag_ids = sorted(
        line.split('"')[1]
        for path in (ROOT / "example_dags").glob("*.py")
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.strip().startswith('dag_id="')
    )
    assert DAG_ID in dag_ids, dag_ids
    wait_for(
        "the dag-processor to serialize every example DAG",
        lambda: airflow_ui.api.get("/dags", params={"limit": 100})["total_entries"] >= len(dag_ids),
        90,
        extra=airflow_ui.logs,
    )
    assert airflow_ui.api.get("/importErrors")["import_errors"] == []
    page.goto(f"{airflow_ui.url}/dags")
    for dag_id in dag_ids:
        expect(page.get_by_role("link", name=dag_id, exact=True)).to_be_visible()


@pytest.fixture
def finished_run(airflow_ui: AirflowUI) -> dict[str, Any]:
    """The UI-triggered run, once finished (from the REST API)."""
    if "run_id" not in RUN:
        pytest.fail("test_trigger_form_starts_a_run did not trigger a run", pytrace=False)
    run_id = RUN["run_id"]
    run = wait_for(
        f"run {run_id} to finish",
        lambda: (
            (r := airflow_ui.api.get(f"/dags/{DAG_ID}/dagRuns/{quote(run_id)}"))["state"]
            in ("success", "failed")
            and r
        ),
        RUN_TIMEOUT,
        extra=airflow_ui.logs,
    )
    print(f"\nUI-triggered run {run['state']} {time.monotonic() - RUN['triggered']:.1f}s after the trigger")
    return dict(run)


def test_connection_form_and_test_succeeds(page: Any, airflow_ui: AirflowUI) -> None:
    expect = _expect()
    _add_connection(page, airflow_ui, "retell_ui", airflow_ui.emulator.api_key, shot=True)
    stored = airflow_ui.api.get("/connections/retell_ui")
    assert stored["conn_type"] == "retell"
    assert stored["host"] == airflow_ui.emulator.url
    assert stored["port"] is None
    # The form copies every default into the extra.
    extra = json.loads(stored["extra"])
    assert extra == {
        "timeout": 60,
        "connect_timeout": 5,
        "max_retries": 3,
        "max_retry_wait": 60,
        "create_settle_seconds": 300,
        "proxy": None,
        "allow_insecure_http": False,
    }
    before = airflow_ui.emulator.count("GET", "/get-batch-test/airflow-connection-test")

    answer = _press_test(page, "retell_ui")

    assert answer.status == 200, answer.text()
    message = f"Connected to Retell at {airflow_ui.emulator.url}"
    assert answer.json() == {"status": True, "message": message}
    expect(page.get_by_text(message)).to_be_visible()
    screenshot(page, "connection-test-ok")
    assert airflow_ui.emulator.count("GET", "/get-batch-test/airflow-connection-test") == before + 1


def test_connection_with_a_wrong_key_fails_readably(page: Any, airflow_ui: AirflowUI) -> None:
    expect = _expect()
    wrong_key = "key_wrong_0123456789"
    _add_connection(page, airflow_ui, "retell_wrong_key", wrong_key)

    answer = _press_test(page, "retell_wrong_key")

    assert answer.status == 200, answer.text()
    result = answer.json()
    assert result["status"] is False
    assert "HTTP 401" in result["message"]
    assert "the API key was rejected: check the API Key (password)" in result["message"]
    assert f"Retell at {airflow_ui.emulator.url} refused" in result["message"]
    expect(page.get_by_text("the API key was rejected", exact=False)).to_be_visible()
    screenshot(page, "connection-test-wrong-key")
    assert wrong_key not in result["message"]
    assert wrong_key not in page.content()


def test_trigger_form_run_finishes_with_counts_in_xcom(
    page: Any, airflow_ui: AirflowUI, finished_run: dict[str, Any]
) -> None:
    expect = _expect()
    run_id = finished_run["dag_run_id"]
    tis = airflow_ui.api.get(f"/dags/{DAG_ID}/dagRuns/{quote(run_id)}/taskInstances")["task_instances"]
    states = {ti["task_id"]: ti["state"] for ti in tis}
    assert finished_run["state"] == "success", states
    assert states == {"run_batch_test": "success", "report": "success", "watcher": "skipped"}

    page.goto(f"{airflow_ui.url}/dags/{DAG_ID}/runs/{quote(run_id)}/tasks/report/xcom")
    row = page.get_by_role("row").filter(has_text="return_value")
    expect(row).to_be_visible()
    page.get_by_role("button", name="Expand all extra JSON").click()
    value = row.get_by_test_id("xcom-value")
    expect(value).to_contain_text("pass_count")
    # The value is shown in a read-only code editor (Monaco), which renders spaces as NBSP.
    text = value.inner_text().replace("\xa0", " ")
    shown = json.loads(text[text.index("{") : text.rindex("}") + 1])
    assert shown == {
        "pass_count": 8,
        "fail_count": 0,
        "error_count": 0,
        "total_count": 8,
        "gate_passed": True,
    }
    screenshot(page, "ui-triggered-run")


def test_extra_link_opens_the_agent_dashboard(
    page: Any, airflow_ui: AirflowUI, finished_run: dict[str, Any]
) -> None:
    expect = _expect()
    run_id = finished_run["dag_run_id"]
    page.context.route(
        "https://dashboard.retellai.com/**",
        lambda route: route.fulfill(status=200, content_type="text/html", body="<h1>Retell dashboard</h1>"),
    )
    page.goto(f"{airflow_ui.url}/dags/{DAG_ID}/runs/{quote(run_id)}/tasks/run_batch_test/details")
    link = page.get_by_role("link", name="Retell agent")
    expect(link).to_have_attribute("href", DASHBOARD)
    screenshot(page, "extra-link")
    with page.context.expect_page() as opened:
        link.click()
    dashboard = opened.value
    dashboard.wait_for_load_state()
    assert dashboard.url == DASHBOARD
    expect(dashboard.get_by_text("Retell dashboard")).to_be_visible()
