"""One exception family, so a DAG can catch ``RetellError`` and know it came from here.

Permanent errors subclass ``AirflowFailException``: Airflow fails the task without
spending its retries, because retrying cannot fix a bad key or an unknown id.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk.exceptions import AirflowException, AirflowFailException

#: What a permanent status means for the person reading the task log.
STATUS_MEANINGS: dict[int, str] = {
    400: "Retell rejected the request as malformed",
    401: "the API key was rejected: check the password of the Retell connection",
    402: "the Retell plan or trial has ended: billing must be fixed before tests can run",
    403: "the API key may not access this resource",
    404: "Retell does not know this id",
    422: "Retell could not validate the request",
}
PERMANENT_STATUSES = frozenset(STATUS_MEANINGS)


class RetellError(AirflowException):
    """Base of every error raised by this provider."""


class RetellInputError(RetellError, AirflowFailException, ValueError):
    """An argument is wrong; retrying the task cannot fix it, so it fails at once."""


class RetellAPIError(RetellError):
    """A call to Retell failed; a task retry may help (and reattaches to the batch)."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        method: str = "",
        path: str = "",
        retry_after: float | None = None,
    ) -> None:
        self.status_code = status_code  # type: ignore[assignment]  # AirflowException's is an HTTPStatus
        self.method = method
        self.path = path
        self.message = message
        self.retry_after = retry_after
        where = f"{method} {path}".strip()
        status = f"HTTP {status_code}" if status_code is not None else "no usable reply"
        super().__init__(f"Retell API {where} failed ({status}): {message}")


class RetellPermanentError(RetellAPIError, AirflowFailException):
    """400/401/402/403/404/422: the request itself is wrong, retrying cannot help."""

    def __init__(
        self, message: str, *, status_code: int | None = None, method: str = "", path: str = "", **kw: Any
    ) -> None:
        meaning = STATUS_MEANINGS.get(status_code or 0)
        if meaning and meaning not in message:
            message = f"{message} ({meaning})" if message else meaning
        super().__init__(message, status_code=status_code, method=method, path=path, **kw)


class RetellTimeoutError(RetellError, AirflowFailException):
    """The wait's absolute deadline passed; the batch keeps running (and billing) in Retell."""


class RetellQualityGateError(RetellError, AirflowFailException):
    """The finished batch did not meet the gate's bounds."""


def still_running_message(batch_test_id: str) -> str:
    """Said on every way out that leaves a batch behind: Retell has no cancel API."""
    return (
        f"Retell batch test {batch_test_id} keeps running in Retell (there is no cancel API); "
        "its results stay available there."
    )
