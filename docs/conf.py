"""Sphinx configuration of the airflow-provider-retell docs (``make docs``).

Markdown pages are read by MyST as they are; the API reference is generated from the docstrings
(``:param:`` fields) by autodoc. Built with ``-W``: every warning fails the build.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# Importing the provider imports Airflow: give it a throw-away home, so a build never touches
# ~/airflow, and quiet start-up (no example DAGs, no unit-test mode).
os.environ.setdefault("AIRFLOW_HOME", str(ROOT / "docs" / "_build" / "airflow_home"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING")
os.environ.pop("AIRFLOW__CORE__UNIT_TEST_MODE", None)
# Airflow logs its configuration file and time zone at import, before its own logging settings apply.
logging.getLogger("airflow").setLevel(logging.WARNING)

project = "airflow-provider-retell"
author = "airflow-provider-retell developers"
copyright = "airflow-provider-retell developers"

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.viewcode",
]

source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
root_doc = "index"
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]

myst_enable_extensions = ["colon_fence", "deflist"]
# Headings become link targets (``page.md#a-heading``), as on GitHub.
myst_heading_anchors = 3

# The reference: signatures show defaults as written in the source (the deferrable default is
# Airflow's ``[operators] default_deferrable``, not the value it had on the machine that built the docs).
autodoc_preserve_defaults = True
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_class_signature = "mixed"
autodoc_default_options = {"show-inheritance": True}

# Base classes and annotations come from Airflow, httpx and pydantic, which are not documented here.
nitpicky = False

html_theme = "furo"
html_title = "airflow-provider-retell"
html_static_path: list[str] = []
html_show_sourcelink = False


def _copy_images(app: object, exception: Exception | None) -> None:
    """Screenshots (``docs/img/*.png``, refreshed by a make target) are linked with plain HTML links,
    which Sphinx neither checks nor copies: copy them next to the pages, when they exist."""
    import shutil

    source = Path(__file__).resolve().parent / "img"
    if exception is None and source.is_dir():
        shutil.copytree(source, Path(app.outdir) / "img", dirs_exist_ok=True)  # type: ignore[attr-defined]


def setup(app: object) -> None:
    app.connect("build-finished", _copy_images)  # type: ignore[attr-defined]
