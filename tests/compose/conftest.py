"""Fixtures: the resolved compose file, the wheel-installed runtime, the booted services."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.compose import composefile
from tests.compose.install import Installed, install_wheel
from tests.compose.stack import ComposeMariaDB, ComposeRabbitMQ, ComposeRedis, simulator
from tests.support.services import ServiceError


@pytest.fixture(scope="session")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    """The project's wheel in a virtualenv of its own, built once per test session."""
    return install_wheel(tmp_path_factory.mktemp("install"))


@pytest.fixture(scope="session")
def compose_config() -> dict[str, Any]:
    """`docker compose config` of the repository's file, with .env's committed defaults."""
    try:
        return composefile.resolved()
    except composefile.ComposeUnavailable as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="session")
def compose_services(compose_config: dict[str, Any]) -> dict[str, composefile.Service]:
    return composefile.services(compose_config)


@pytest.fixture(scope="module")
def backing(
    compose_services: dict[str, composefile.Service],
) -> Iterator[dict[str, ComposeRabbitMQ | ComposeRedis | ComposeMariaDB]]:
    """Every service that runs an image, booted as configured; removed after the module."""
    servers: dict[str, ComposeRabbitMQ | ComposeRedis | ComposeMariaDB] = {}
    try:
        for name, service in compose_services.items():
            if "build" in service.raw:
                continue
            kind = simulator(service)
            if not kind.available():
                pytest.skip(f"{kind.__name__}: the server's binaries are not installed here")
            servers[name] = kind(service)
        for server in servers.values():
            server.start(timeout=120)
    except ServiceError as exc:
        for server in servers.values():
            server.cleanup(graceful=False)
        pytest.fail(f"a compose service does not boot as configured: {exc}")
    try:
        yield servers
    finally:
        for server in servers.values():
            server.cleanup(graceful=False)
