"""The API's deployment: `chalice package` on a staged copy that vendors the shared package."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from credit import settings
from infra.config import SERVICE_SETTINGS
from infra.errors import PackageError
from infra.package import LAYER_REQUIREMENTS, SHARED_PACKAGE, Vendor, skip_dependencies
from local_runtime.declaration import FUNCTIONS_DIR

LOGGER = logging.getLogger(__name__)

API_DIR = FUNCTIONS_DIR / "api"
DEFAULT_BUILD_DIR = Path("build") / "infra" / "api"
API_RUNTIME = f"python{sys.version_info.major}.{sys.version_info.minor}"  # chalice uses ours
CHALICE = (sys.executable, "-c", "import sys; from chalice.cli import main; sys.exit(main())")
STAGING_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", "deployments", "venv")
# Chalice's policy generator cannot parse every valid app (it crashes on some annotations), so
# config.json turns it off and the staged copy gets this policy: logs, ENIs for the VPC, and
# (added per stage by api_policy) reading the secret the stage's CREDIT_SECRET_ID names.
API_POLICY: dict[str, Any] = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Sid": "Logs",
            "Effect": "Allow",
            "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
            "Resource": "arn:*:logs:*:*:*",
        },
        {
            "Sid": "Network",
            "Effect": "Allow",
            "Action": [
                "ec2:CreateNetworkInterface",
                "ec2:DeleteNetworkInterface",
                "ec2:DescribeNetworkInterfaces",
                "ec2:DetachNetworkInterface",
            ],
            "Resource": "*",
        },
    ],
}
PLACEHOLDER = re.compile(r"REPLACE_ME|^(?:subnet|sg)-0{16}")

Runner = Callable[..., "subprocess.CompletedProcess[str]"]


@dataclass(frozen=True)
class ApiPackage:
    """What `chalice package` wrote: the SAM template and the deployment zip."""

    template: Path
    zip_path: Path


def package(
    out_dir: Path,
    stage: str = "dev",
    api_dir: Path = API_DIR,
    build_dir: Path = DEFAULT_BUILD_DIR,
    vendor: Vendor = skip_dependencies,
    region: str = "us-east-1",
    run: Runner = subprocess.run,
) -> ApiPackage:
    """Stage the app with credit/ and its dependencies in vendor/, then run `chalice package`."""
    if not (api_dir / "app.py").is_file():
        raise PackageError(f"{api_dir / 'app.py'} does not exist yet: nothing to package")
    staged = stage_app(api_dir, build_dir / "app", vendor)
    command = [*CHALICE, "--project-dir", str(staged), "package", "--stage", stage, str(out_dir)]
    environment = {**os.environ, "AWS_DEFAULT_REGION": region}
    result = run(command, capture_output=True, text=True, check=False, env=environment)
    if result.returncode != 0:
        raise PackageError(f"chalice package failed: {result.stdout}{result.stderr}")
    return ApiPackage(out_dir / "sam.json", out_dir / "deployment.zip")


def stage_app(api_dir: Path, target: Path, vendor: Vendor) -> Path:
    """A copy of the app whose vendor/ holds credit/ and every requirement, pre-installed.

    Chalice would otherwise leave `credit` out (it lives outside the app) and download the
    requirements itself; vendoring them here makes the zip the same as the functions' layer.
    """
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(api_dir, target, ignore=STAGING_IGNORE)
    vendored = target / "vendor"
    vendored.mkdir(exist_ok=True)
    shutil.copytree(SHARED_PACKAGE, vendored / SHARED_PACKAGE.name, ignore=STAGING_IGNORE)
    requirements = target / "requirements.txt"
    wanted = [*LAYER_REQUIREMENTS, *_read_requirements(requirements)]
    vendor(wanted, vendored, API_RUNTIME)
    requirements.write_text("# vendored by infra/api.py into vendor/\n")
    write_policies(target / ".chalice")
    return target


def write_policies(chalice_dir: Path) -> None:
    """Give every stage without its own policy-<stage>.json the API's policy for that stage."""
    config = json.loads((chalice_dir / "config.json").read_text())
    for stage in config.get("stages", {}):
        policy = chalice_dir / f"policy-{stage}.json"
        if not policy.exists():
            secret_id = stage_environment(config, stage).get(settings.SECRET_ID)
            policy.write_text(json.dumps(api_policy(secret_id), indent=2) + "\n")


def api_policy(secret_id: str | None) -> dict[str, Any]:
    """API_POLICY, plus GetSecretValue on the stage's settings secret when it names one."""
    if not secret_id:
        return API_POLICY
    statement = {
        "Sid": "ServicesSecret",
        "Effect": "Allow",
        "Action": "secretsmanager:GetSecretValue",
        "Resource": secret_resource(secret_id),
    }
    return {**API_POLICY, "Statement": [*API_POLICY["Statement"], statement]}


def secret_resource(secret_id: str) -> str:
    """The ARN a policy grants for a secret given by ARN or by name.

    A name matches its secret's ARN, whose last part is the name plus '-' and six random
    characters that Secrets Manager adds (unknown until the secret exists).
    """
    if secret_id.startswith("arn:"):
        return secret_id
    return f"arn:*:secretsmanager:*:*:secret:{secret_id}-??????"


def stage_environment(config: Mapping[str, Any], stage: str) -> dict[str, str]:
    """A stage's environment_variables as Chalice merges them (the stage's own win)."""
    stage_config = config.get("stages", {}).get(stage, {})
    return {
        **config.get("environment_variables", {}),
        **stage_config.get("environment_variables", {}),
    }


def secret_warnings(config_path: Path, stage: str) -> list[str]:
    """Credentials a stage would put in Lambda variables, or a missing CREDIT_SECRET_ID."""
    if not config_path.is_file():
        return []
    environment = stage_environment(json.loads(config_path.read_text()), stage)
    found = [
        f"environment_variables.{name} would be a Lambda variable: credentials belong in the "
        f"secret {settings.SECRET_ID} names"
        for name in SERVICE_SETTINGS
        if name in environment
    ]
    if not environment.get(settings.SECRET_ID):
        found.append(
            f"environment_variables.{settings.SECRET_ID} is not set: the API would fall back to "
            "local defaults for the service URLs"
        )
    return found


def placeholders(config_path: Path, stage: str) -> list[str]:
    """Settings of a stage in .chalice/config.json still holding a placeholder value."""
    if not config_path.is_file():
        return []
    config = json.loads(config_path.read_text())
    stage_config = {**config, **config.get("stages", {}).get(stage, {})}
    stage_config.pop("stages", None)
    return sorted({key for key, value in _flatten(stage_config) if PLACEHOLDER.search(value)})


def _flatten(value: Any, prefix: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(value, Mapping):
        for key, item in value.items():
            yield from _flatten(item, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(value, list):
        for item in value:
            yield from _flatten(item, prefix)
    elif isinstance(value, str):
        yield prefix, value


def _read_requirements(path: Path) -> list[str]:
    if not path.is_file():
        return []
    lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return [line for line in lines if line]
