import os

import pytest


@pytest.fixture(autouse=True)
def _clear_guard_environment(monkeypatch):
    """Settings come from GUARD_* variables too: no test sees another's, or the developer's."""
    for name in list(os.environ):
        if name.startswith("GUARD_"):
            monkeypatch.delenv(name)


@pytest.fixture(scope="session")
def environ_program(tmp_path_factory):
    """tests/environ.c, built static: execve with an exact environment list, and its dump."""
    import environ_program as built

    return built.build(str(tmp_path_factory.mktemp("environ")))
