"""Fixtures for infra tests: fake AWS credentials and the stack template, built once."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from infra.config import StageConfig
from infra.deploy import Built, build
from infra.package import Artifact, no_dependencies

ROOT = Path(__file__).resolve().parents[2]
REGION = "us-east-1"
ACCOUNT = "123456789012"
SUBNETS = ("subnet-0a1b2c3d4e5f60718", "subnet-0a1b2c3d4e5f60719")
GROUPS = ("sg-0a1b2c3d4e5f60718",)
DATABASE_SECRET = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:credit-dev/databases-AbCdEf"


def stage(name: str = "dev", **options: Any) -> StageConfig:
    settings: dict[str, Any] = {
        "region": REGION,
        "subnet_ids": SUBNETS,
        "security_group_ids": GROUPS,
        "database_secret_arn": DATABASE_SECRET,
    }
    return StageConfig(stage=name, **{**settings, **options})


def named(artifact: Artifact) -> dict[str, str]:
    """Where a test build says code is, without S3."""
    return {"Bucket": "credit-deploy-test", "Key": f"code/{artifact.sha256}.zip"}


@pytest.fixture(autouse=True)
def aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fake credentials, so nothing could reach a real account even if moto were bypassed."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_REGION", REGION)


@pytest.fixture(scope="session")
def build_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("infra-build")


@pytest.fixture(scope="session")
def dev_stack(build_root: Path) -> Built:
    """The dev stage's template, built from the repository's declarations (no dependencies)."""
    return build(ROOT, stage("dev"), build_root / "dev", no_dependencies, named)


@pytest.fixture(scope="session")
def prod_stack(build_root: Path) -> Built:
    return build(ROOT, stage("prod"), build_root / "prod", no_dependencies, named)


@pytest.fixture
def project_copy(tmp_path: Path) -> Iterator[Path]:
    """A copy of the repository's declarations and function folders, to change freely."""
    copy = tmp_path / "project"
    copy.mkdir()
    shutil.copy(ROOT / "template.yaml", copy / "template.yaml")
    ignore = shutil.ignore_patterns("__pycache__", "deployments", "venv")
    shutil.copytree(ROOT / "functions", copy / "functions", ignore=ignore)
    yield copy
