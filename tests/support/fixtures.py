"""Pytest fixtures that hand out private RabbitMQ, Redis and MariaDB servers."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pytest

from tests.support.services import (
    PrivateMariaDB,
    PrivateRabbitMQ,
    PrivateRedis,
    _ServerBase,
    settings_env,
)

__all__ = [
    "private_mariadb",
    "private_mariadb_module",
    "private_rabbitmq",
    "private_rabbitmq_module",
    "private_redis",
    "private_service_factory",
    "private_settings_env",
]

S = TypeVar("S", bound=_ServerBase)


def _started(cls: type[S], **kwargs: Any) -> S:
    if not cls.available():
        pytest.skip(f"{cls.__name__}: server binaries not installed")
    svc = cls(**kwargs)
    try:
        svc.start()
    except BaseException:
        svc.cleanup(graceful=False)
        raise
    return svc


@pytest.fixture(scope="module")
def private_rabbitmq_module() -> Iterator[PrivateRabbitMQ]:
    """One private broker per test module (a start takes ~6-9 s); removed after the module."""
    svc = _started(PrivateRabbitMQ)
    try:
        yield svc
    finally:
        svc.cleanup(graceful=False)


@pytest.fixture
def private_rabbitmq(private_rabbitmq_module: PrivateRabbitMQ) -> PrivateRabbitMQ:
    """The module's private broker, resumed / restarted if an earlier test paused or killed it.

    Queues and messages persist between the tests of a module.
    """
    private_rabbitmq_module.ensure_running()
    return private_rabbitmq_module


@pytest.fixture(scope="module")
def private_mariadb_module() -> Iterator[PrivateMariaDB]:
    """One private MariaDB per test module, with an empty ``credit`` database."""
    svc = _started(PrivateMariaDB)
    try:
        yield svc
    finally:
        svc.cleanup(graceful=False)


@pytest.fixture
def private_mariadb(private_mariadb_module: PrivateMariaDB) -> PrivateMariaDB:
    """The module's private MariaDB, resumed / restarted if an earlier test paused or killed it.

    Tables and rows persist between the tests of a module.
    """
    private_mariadb_module.ensure_running()
    return private_mariadb_module


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    """A fresh, empty private Redis for each test (starting one takes a few tens of ms)."""
    svc = _started(PrivateRedis)
    try:
        yield svc
    finally:
        svc.cleanup(graceful=False)


@pytest.fixture
def private_service_factory() -> Iterator[Callable[..., Any]]:
    """``make(PrivateRabbitMQ, **kwargs)`` -> a started, brand-new server, removed after the test.

    For tests that need a pristine server or several of one kind.
    """
    made: list[_ServerBase] = []

    def make(cls: type[S], **kwargs: Any) -> S:
        svc = _started(cls, **kwargs)
        made.append(svc)
        return svc

    try:
        yield make
    finally:
        for svc in reversed(made):
            svc.cleanup(graceful=False)


@pytest.fixture
def private_settings_env(
    monkeypatch: pytest.MonkeyPatch,
    private_rabbitmq: PrivateRabbitMQ,
    private_redis: PrivateRedis,
    private_mariadb: PrivateMariaDB,
) -> dict[str, str]:
    """Point AMQP_URL / REDIS_URL / MYSQL_URL at the three private servers for this test."""
    env = settings_env(private_rabbitmq, private_redis, private_mariadb)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env
