"""Marking a waiting task failed says the batch keeps running in Retell (there is no cancel API)."""

from __future__ import annotations

from unittest import mock

import pytest

from airflow_provider_retell.operators.batch_test import RetellBatchTestOperator
from airflow_provider_retell.sensors.batch_test import RetellBatchTestSensor


@pytest.mark.parametrize(
    "task",
    [
        RetellBatchTestOperator(task_id="op", agent_id="agent_x", wait_for_completion=True),
        RetellBatchTestSensor(task_id="sensor", batch_test_id="tcbj_1"),
    ],
    ids=["operator", "sensor"],
)
def test_on_kill_logs_that_the_batch_keeps_running(task) -> None:
    with mock.patch.object(type(task), "log", new_callable=mock.PropertyMock) as log:
        task.on_kill()  # before any batch: nothing to say
        assert log.return_value.warning.call_count == 0
        task._waiting_for = "tcbj_1"
        task.on_kill()
    ((args, _),) = log.return_value.warning.call_args_list
    text = args[0] % args[1:]
    assert "tcbj_1" in text
    assert "keeps running in Retell" in text
