"""Extra link from a task to the agent's page in Retell's dashboard."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperatorLink

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator
    from airflow.sdk.types import TaskInstanceKey

DASHBOARD_AGENT_URL = "https://dashboard.retellai.com/agents/{agent_id}"


class RetellAgentLink(BaseOperatorLink):
    """Retell has no deep link to one batch test, so the agent's page is the closest useful target."""

    name = "Retell agent"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey, **kwargs: Any) -> str:
        agent_id = getattr(operator, "agent_id", None)
        return DASHBOARD_AGENT_URL.format(agent_id=agent_id) if isinstance(agent_id, str) and agent_id else ""
