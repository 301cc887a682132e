"""Marking a waiting task failed says the run's batches keep running in Retell (there is no cancel API)."""

from __future__ import annotations

from unittest import mock

import pytest

from airflow_provider_retell.operators.batch_test import RetellBatchTestOperator
from airflow_provider_retell.sensors.batch_test import RetellBatchTestSensor
from airflow_provider_retell.waiting import STATE_KEY
from tests.fakes import FakeStore, fake_context


@pytest.mark.parametrize(
    "task",
    [
        RetellBatchTestOperator(task_id="op", agent_id="agent_x", wait_for_completion=True),
        RetellBatchTestSensor(task_id="sensor", batch_test_id="tcbj_1"),
    ],
    ids=["operator", "sensor"],
)
def test_on_kill_logs_that_the_batches_keep_running(task) -> None:
    with mock.patch.object(type(task), "log", new_callable=mock.PropertyMock) as log:
        task.on_kill()  # before any batch: nothing to say
        task._waiter(fake_context())
        task.on_kill()  # a waiter, but no batch yet
        assert log.return_value.warning.call_count == 0
        task._waiter(fake_context(FakeStore({STATE_KEY: {"batch_test_id": "tcbj_1", "deadline": 1e12}})))
        task.on_kill()
    ((args, _),) = log.return_value.warning.call_args_list
    text = args[0] % args[1:]
    assert "tcbj_1" in text
    assert "keeps running in Retell" in text
