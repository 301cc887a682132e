"""Keep secrets out of text that came from Retell or httpx before it reaches a log, an error or an event.

Airflow's masker only knows the exact secret; a reply that echoes the key JSON-escaped, a repr
that escapes it, or a URL that percent-encodes it would slip through, so every form is replaced.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterable, Iterator
from contextvars import ContextVar
from functools import cache
from urllib.parse import quote, quote_plus

REDACTED = "***"
#: Characters left as they are by common percent-encoders: everything encoded, Python's ``quote``
#: default, JavaScript's ``encodeURIComponent`` and ``encodeURI``.
_URL_SAFE = ("", "/", "-_.!~*'()", "-_.!~*'();/?:@&=+$,#")
_ESCAPE = re.compile("%[0-9A-F]{2}")
#: Longest text from Retell or httpx kept in a message: a reply may be megabytes of anything.
MAX_MESSAGE_CHARS = 500

#: The secrets of the connection whose operation is being run (set by the hook's runners), so the
#: operations, which see no connection, can scrub what they quote from a reply.
_in_use: ContextVar[tuple[str, ...]] = ContextVar("retell_secrets_in_use", default=())


@cache
def secret_forms(secret: str) -> tuple[str, ...]:
    """The secret as it may appear in text: raw, repr-, unicode- and JSON-escaped, percent-encoded."""
    forms = {
        secret,
        repr(secret)[1:-1],
        secret.encode("unicode_escape").decode("ascii"),
        json.dumps(secret)[1:-1],
        json.dumps(secret, ensure_ascii=False)[1:-1],
        json.dumps(secret).replace("/", "\\/")[1:-1],
    }
    for safe in _URL_SAFE:  # percent-encoded as a URL path, a query value or JavaScript would
        forms |= {quote(secret, safe=safe), quote_plus(secret, safe=safe)}
    forms |= {_ESCAPE.sub(lambda m: m.group(0).lower(), f) for f in forms}  # %2f as well as %2F
    # longest first, so a form that contains another is replaced whole
    return tuple(sorted((f for f in forms if len(f) >= 4), key=len, reverse=True))


def scrub(text: str, secrets: Iterable[str], limit: int | None = MAX_MESSAGE_CHARS) -> str:
    """``text`` with every form of every secret replaced, cut to ``limit`` characters."""
    for secret in secrets:
        if secret:
            for form in secret_forms(secret):
                text = text.replace(form, REDACTED)
    if limit is not None and len(text) > limit:
        text = text[: limit - 1] + "…"
    return text


@contextlib.contextmanager
def secrets_in_use(secrets: Iterable[str]) -> Iterator[None]:
    """Within this block, :func:`scrub_reply_text` removes ``secrets``."""
    token = _in_use.set(tuple(secrets))
    try:
        yield
    finally:
        _in_use.reset(token)


def scrub_reply_text(text: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    """Text quoted from a reply (a field's value, a status) scrubbed of the secrets in use."""
    return scrub(text, _in_use.get(), limit)
