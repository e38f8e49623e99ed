"""Fixtures: the wheel-installed runtime."""

from __future__ import annotations

import pytest

from tests.compose.install import Installed, install_wheel


@pytest.fixture(scope="session")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    """The project's wheel in a virtualenv of its own, built once per test session."""
    return install_wheel(tmp_path_factory.mktemp("install"))
