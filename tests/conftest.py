"""Shared fixtures: every test process talks to test-only databases, cache and vhost."""

from __future__ import annotations

import os

import pytest

from tests.helpers import ROOT, TEST_URLS

os.environ.update(TEST_URLS)


def pytest_configure(config: pytest.Config) -> None:
    """Test files live under var/pytest, not the system's temp folder: a function in an
    execution environment has its own /tmp, as on Lambda, and could not see the files a test
    gives it there (its records, its output). --basetemp still wins."""
    if config.option.basetemp is None:
        (ROOT / "var").mkdir(exist_ok=True)
        config.option.basetemp = str(ROOT / "var" / "pytest")


@pytest.fixture(scope="session")
def services_ready() -> dict[str, str]:
    """Apply the schema to the test database and create the test vhost, once per session."""
    from credit import mysql
    from tests.helpers import ensure_vhost

    ensure_vhost()
    mysql.migrate(TEST_URLS["MYSQL_URL"])
    return dict(TEST_URLS)


@pytest.fixture
def store(services_ready):
    from credit.mysql import TicketStore

    return TicketStore(services_ready["MYSQL_URL"])


@pytest.fixture
def redis_client(services_ready):
    from credit.cache import client

    redis = client(services_ready["REDIS_URL"])
    yield redis
    redis.close()


@pytest.fixture
def cache(redis_client):
    from credit.cache import TicketCache

    return TicketCache(redis_client)
