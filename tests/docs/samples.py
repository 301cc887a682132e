"""Find the Python samples of the docs: every fenced ```python block of README.md and docs/*.md.

A sample may be preceded by one marker line, an HTML comment (invisible in the rendered page and on
GitHub):

- ``<!-- sample: skip (why) -->``: a fragment or a synopsis that cannot run on its own. Keep these
  rare: every other sample is executed.
- ``<!-- sample: expect=failed -->``: the DAG runs the sample defines end ``failed`` (default
  ``success``).
- ``<!-- sample: chat=N -->``: the sample posts N messages to ``CHAT_WEBHOOK_URL``.
- ``<!-- sample: pool=NAME:SLOTS -->``: the Airflow pool the sample uses (its bash line creates it).
- ``<!-- sample: copy=PATH -->``: a file or folder of the repository the sample reads, put next to it.
- ``<!-- sample: writes=DIR -->``: the sample writes a report under DIR (checked, then removed).
- ``<!-- sample: file=PATH group=NAME -->``: one file of a small project (a conftest, a test, a DAG);
  the files of a group are written to one folder and run with pytest.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SOURCES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_MARKER = re.compile(r"^<!--\s*sample:\s*(.*?)\s*-->\s*$")
_FENCE = re.compile(r"^(`{3,})python\s*$")


@dataclass
class Sample:
    source: Path
    line: int  # 1-based line of the opening fence
    code: str
    options: dict[str, str] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return f"{self.source.relative_to(ROOT)}:{self.line}"

    @property
    def skipped(self) -> bool:
        return "skip" in self.options


def _options(text: str) -> dict[str, str]:
    if text.startswith("skip"):
        return {"skip": text[4:].strip(" ()") or "fragment"}
    options = {}
    for item in text.split():
        key, _, value = item.partition("=")
        options[key] = value
    return options


def samples(sources: list[Path] = SOURCES) -> list[Sample]:
    found = []
    for source in sources:
        lines = source.read_text(encoding="utf-8").splitlines()
        i = 0
        while i < len(lines):
            fence = _FENCE.match(lines[i])
            if not fence:
                i += 1
                continue
            start = i
            previous = lines[i - 1] if i else ""
            marker = _MARKER.match(previous)
            end = i + 1
            while end < len(lines) and lines[end].rstrip() != fence.group(1):
                end += 1
            code = "\n".join(lines[start + 1 : end]) + "\n"
            found.append(Sample(source, start + 1, code, _options(marker.group(1)) if marker else {}))
            i = end + 1
    return found
