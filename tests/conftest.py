import os

import pytest


@pytest.fixture(autouse=True)
def _clear_guard_environment(monkeypatch):
    """Settings come from GUARD_* variables too: no test sees another's, or the developer's."""
    for name in list(os.environ):
        if name.startswith("GUARD_"):
            monkeypatch.delenv(name)
