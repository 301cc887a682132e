"""One exception family, so a DAG can catch ``RetellError`` and know it came from here.

Permanent errors subclass ``AirflowFailException``: Airflow fails the task without
spending its retries, because retrying cannot fix a bad key or an unknown id.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk.exceptions import AirflowException, AirflowFailException

#: What a permanent status means for the person reading the task log.
STATUS_MEANINGS: dict[int, str] = {
    400: "Retell rejected the request as malformed",
    401: "the API key was rejected: check the API Key (password) of the Retell connection",
    402: "the Retell plan or trial has ended: billing must be fixed before tests can run",
    403: "the API key may not access this resource",
    404: "Retell does not know this id",
    422: "Retell could not validate the request",
}
PERMANENT_STATUSES = frozenset(STATUS_MEANINGS)
#: Statuses after which the same request may succeed later.
TRANSIENT_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504})


class RetellError(AirflowException):
    """Base of every error raised by this provider."""


class RetellInputError(RetellError, AirflowFailException, ValueError):
    """An argument is wrong; retrying the task cannot fix it, so it fails at once."""


class RetellAPIError(RetellError):
    """A call to Retell failed; ``reason`` says how, which decides whether trying again can help.

    ``reason``: ``"connect"`` (the request never reached Retell), ``"timeout"`` (sent, no whole reply
    in time), ``"dropped"`` (the connection broke after sending), ``"status"`` (an HTTP error status),
    ``"reply"`` (a reply that cannot be used: not JSON, too large, of the wrong shape) or
    ``"invalid"`` (httpx refused to send the request as built).
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        method: str = "",
        path: str = "",
        retry_after: float | None = None,
        reason: str | None = None,
    ) -> None:
        self.status_code = status_code  # type: ignore[assignment]  # AirflowException's is an HTTPStatus
        self.method = method
        self.path = path
        self.message = message
        self.retry_after = retry_after
        self.reason = reason or ("status" if status_code is not None and status_code >= 300 else "reply")
        where = f"{method} {path}".strip()
        status = f"HTTP {status_code}" if status_code is not None else "no usable reply"
        super().__init__(f"Retell API {where} failed ({status}): {message}")

    @property
    def transient(self) -> bool:
        """Sending the same request again may succeed."""
        if self.reason == "status":
            return self.status_code in TRANSIENT_STATUSES
        return self.reason in ("connect", "timeout", "dropped")

    @property
    def maybe_applied(self) -> bool:
        """Retell may have acted on the request although we saw an error (what makes a create ambiguous)."""
        if self.reason == "status":
            return self.status_code is not None and (self.status_code >= 500 or self.status_code == 408)
        return self.reason in ("timeout", "dropped", "reply")


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
    """The run's absolute deadline passed; its batches keep running (and billing) in Retell."""


class RetellQualityGateError(RetellError, AirflowFailException):
    """The finished batch did not meet the gate's bounds."""


def still_running_message(batch_test_ids: str | Sequence[str]) -> str:
    """Said on every way out that leaves batches behind: Retell has no cancel API."""
    ids = [batch_test_ids] if isinstance(batch_test_ids, str) else list(batch_test_ids)
    shown = ", ".join(ids[:10]) + (f" and {len(ids) - 10} more" if len(ids) > 10 else "")
    which = f"batch test {shown} keeps" if len(ids) == 1 else f"batch tests {shown} keep"
    return f"Retell {which} running in Retell (there is no cancel API); results stay available there."
