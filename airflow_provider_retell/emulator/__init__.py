"""Retell API emulator: a faithful, stateful Retell test API on loopback, with fault injection.

See docs/emulator.md. ``create_app`` builds the ASGI app; ``python -m airflow_provider_retell.emulator``
serves it; ``airflow_provider_retell.emulator.pytest_plugin`` provides the ``retell_emulator`` fixture.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .seed import DEFAULT_SEED_PATH, SeedError, load_seed

if TYPE_CHECKING:
    from .app import create_app
    from .state import EmulatorState

__all__ = ["DEFAULT_SEED_PATH", "EmulatorState", "SeedError", "create_app", "load_seed"]


def __getattr__(name: str) -> Any:
    # FastAPI is imported lazily, so importing the package (e.g. from the pytest plugin) stays cheap.
    if name == "create_app":
        from .app import create_app

        return create_app
    if name == "EmulatorState":
        from .state import EmulatorState

        return EmulatorState
    raise AttributeError(name)
