"""Keep secrets out of text that came from Retell or httpx before it reaches a log, an error or an event.

Airflow's masker only knows the exact secret; a reply that echoes the key JSON-escaped, a repr
that escapes it, or a URL that percent-encodes it would slip through, so every form is replaced.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from functools import cache
from urllib.parse import quote, quote_plus

REDACTED = "***"
#: Longest text from Retell or httpx kept in a message: a reply may be megabytes of anything.
MAX_MESSAGE_CHARS = 500


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
        quote(secret, safe=""),
        quote_plus(secret, safe=""),
    }
    forms |= {f.lower() for f in forms if "%" in f}  # percent-encoding in either case
    # longest first, so a form that contains another is replaced whole
    return tuple(sorted((f for f in forms if len(f) >= 4), key=len, reverse=True))


def scrub(text: str, secrets: Iterable[str], limit: int = MAX_MESSAGE_CHARS) -> str:
    """``text`` with every form of every secret replaced, cut to ``limit`` characters."""
    for secret in secrets:
        if secret:
            for form in secret_forms(secret):
                text = text.replace(form, REDACTED)
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return text
