"""Fixtures for infra tests: fake AWS credentials, moto, stubbed mappings, call counting."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from infra.clients import Clients
from infra.config import StageConfig
from infra.package import Artifact, build_all, skip_dependencies
from local_runtime.declaration import FunctionSpec, discover
from tests.infra.stubs import MappingStubs

REGION = "us-east-1"
READ_PREFIXES = ("Get", "List", "Describe")
# Distinctive, so "no Lambda variable contains a password" cannot pass or fail by accident.
MYSQL_PASSWORD = "mysql-pw-Q7xK2v"
REDIS_PASSWORD = "redis-pw-Z4nR8c"


class CallLog:
    """Every AWS operation the clients were asked for, in order (recorded before any stub)."""

    def __init__(self) -> None:
        self.operations: list[str] = []

    def __call__(self, model: Any, **_: Any) -> None:
        self.operations.append(model.name)

    def watch(self, *clients: Any) -> None:
        for client in clients:
            client.meta.events.register("before-parameter-build.*.*", self)

    @property
    def writes(self) -> list[str]:
        return [name for name in self.operations if not name.startswith(READ_PREFIXES)]

    def clear(self) -> None:
        self.operations.clear()


@pytest.fixture(autouse=True)
def aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fake credentials, so nothing could reach a real account even if moto were bypassed."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_REGION", REGION)


@pytest.fixture
def aws() -> Iterator[None]:
    with mock_aws():
        yield


@pytest.fixture
def calls() -> CallLog:
    return CallLog()


@pytest.fixture
def stubs(aws: None) -> Iterator[MappingStubs]:
    stubbed = MappingStubs(boto3.client("lambda", region_name=REGION))
    yield stubbed
    stubbed.stubber.deactivate()


@pytest.fixture
def clients(aws: None, stubs: MappingStubs, calls: CallLog) -> Clients:
    """moto for IAM, Secrets Manager, MQ and Lambda functions; Stubber for the mappings."""
    made = Clients(
        iam=boto3.client("iam", region_name=REGION),
        secrets=boto3.client("secretsmanager", region_name=REGION),
        mq=boto3.client("mq", region_name=REGION),
        lambda_=boto3.client("lambda", region_name=REGION),
        mappings=stubs.client,
    )
    calls.watch(made.iam, made.secrets, made.mq, made.lambda_, made.mappings)
    return made


@pytest.fixture
def config() -> StageConfig:
    return StageConfig(
        stage="test",
        region=REGION,
        subnet_ids=("subnet-0a1b2c3d4e5f60718", "subnet-0a1b2c3d4e5f60719"),
        security_group_ids=("sg-0a1b2c3d4e5f60718",),
        mysql_url=f"mysql://credit:{MYSQL_PASSWORD}@credit.cluster-x.{REGION}.rds.amazonaws.com"
        ":3306/credit",
        redis_url=f"rediss://:{REDIS_PASSWORD}@credit.x.cache.amazonaws.com:6379/0",
    )


@pytest.fixture(scope="session")
def specs() -> list[FunctionSpec]:
    """The repository's real declarations."""
    return discover()


@pytest.fixture(scope="session")
def artifacts(
    specs: list[FunctionSpec], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Artifact]:
    """Zips of the real functions, dependencies not vendored (no network in tests)."""
    build_dir: Path = tmp_path_factory.mktemp("build")
    return build_all(specs, build_dir, skip_dependencies)
