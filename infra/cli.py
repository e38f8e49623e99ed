"""Command line: deploy, teardown, package, definitions and api-package (the only printing code)."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import boto3
from botocore.exceptions import BotoCoreError

from infra import api, limits
from infra.clients import Clients
from infra.config import (
    BROKER_PASSWORD,
    BROKER_USERNAME,
    DEFAULT_BROKER_ENGINE_VERSION,
    DEFAULT_BROKER_INSTANCE_TYPE,
    DEPLOY_MYSQL_URL,
    DEPLOY_REDIS_URL,
    SINGLE_INSTANCE,
    BrokerCredentials,
    StageConfig,
)
from infra.deploy import Options, deploy
from infra.errors import InfraError, LimitError
from infra.package import PipVendor, Vendor, build_all, skip_dependencies
from infra.resources.topology import definitions
from infra.teardown import teardown
from local_runtime.declaration import FUNCTIONS_DIR, DeclarationError, discover

LOGGER = logging.getLogger(__name__)
DEFAULT_BUILD_DIR = Path("build") / "infra"
USAGE_ERROR = 2


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the exit status (0 ok, 1 AWS or build failure, 2 bad input)."""
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    try:
        return int(args.run(args))
    except (LimitError, DeclarationError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return USAGE_ERROR
    except (InfraError, BotoCoreError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="python -m infra", description=__doc__)
    commands = root.add_subparsers(dest="command", required=True)
    _deploy_parser(commands.add_parser("deploy", help="create or update the stage on AWS"))
    _teardown_parser(commands.add_parser("teardown", help="delete what deploy created"))
    package = commands.add_parser("package", help="build the function zips only")
    _build_options(package)
    package.set_defaults(run=run_package)
    definitions = commands.add_parser("definitions", help="print the RabbitMQ definitions JSON")
    _functions_option(definitions)
    definitions.set_defaults(run=run_definitions)
    _api_parser(commands.add_parser("api-package", help="chalice package the API (SAM + zip)"))
    return root


def run_deploy(args: argparse.Namespace) -> int:
    config = _stage_config(args)
    specs = discover(args.functions_dir)
    limits.check(specs, config, require_services=not args.dry_run)
    artifacts = build_all(specs, args.build_dir, _vendor(args))
    options = Options(
        dry_run=args.dry_run, apply_topology=args.apply_topology, wait_for_broker=args.wait
    )
    plan = deploy(specs, artifacts, config, _clients(config), options)
    print(plan.render(f"deploy {config.stage} ({config.region})"))
    return 0


def run_teardown(args: argparse.Namespace) -> int:
    config = StageConfig(stage=args.stage, region=_region(args.region), broker_arn=args.broker_arn)
    plan = teardown(discover(args.functions_dir), config, _clients(config), args.dry_run)
    print(plan.render(f"teardown {config.stage} ({config.region})"))
    return 0


def run_package(args: argparse.Namespace) -> int:
    artifacts = build_all(discover(args.functions_dir), args.build_dir, _vendor(args))
    for artifact in artifacts.values():
        print(f"{artifact.path}  {artifact.size} bytes  sha256 {artifact.code_sha256}")
    return 0


def run_definitions(args: argparse.Namespace) -> int:
    print(json.dumps(definitions(discover(args.functions_dir)), indent=2, sort_keys=True))
    return 0


def run_api_package(args: argparse.Namespace) -> int:
    config_path = args.api_dir / ".chalice" / "config.json"
    for setting in api.placeholders(config_path, args.stage):
        print(f"warning: {config_path}: stage {args.stage}: {setting} is still a placeholder")
    for problem in api.secret_warnings(config_path, args.stage):
        print(f"warning: {config_path}: stage {args.stage}: {problem}")
    region = args.region or boto3.Session().region_name or "us-east-1"  # only for the template
    result = api.package(
        args.out_dir, args.stage, args.api_dir, vendor=_vendor(args), region=region
    )
    print(f"{result.template}\n{result.zip_path}")
    return 0


def _deploy_parser(command: argparse.ArgumentParser) -> None:
    _stage_options(command)
    _build_options(command)
    command.add_argument("--broker-arn", help="use this existing Amazon MQ broker")
    command.add_argument("--subnet-ids", type=_ids, default=(), help="comma-separated subnets")
    command.add_argument("--security-group-ids", type=_ids, default=(), help="comma-separated")
    command.add_argument("--mysql-url", default=os.environ.get(DEPLOY_MYSQL_URL))
    command.add_argument("--redis-url", default=os.environ.get(DEPLOY_REDIS_URL))
    command.add_argument("--broker-instance-type", default=DEFAULT_BROKER_INSTANCE_TYPE)
    command.add_argument("--broker-engine-version", default=DEFAULT_BROKER_ENGINE_VERSION)
    command.add_argument(
        "--broker-mode", default=SINGLE_INSTANCE, choices=(SINGLE_INSTANCE, "CLUSTER_MULTI_AZ")
    )
    command.add_argument(
        "--apply-topology", action="store_true", help="declare exchanges and queues over AMQPS"
    )
    command.add_argument(
        "--no-wait", dest="wait", action="store_false", help="do not wait for a new broker"
    )
    command.set_defaults(run=run_deploy)


def _teardown_parser(command: argparse.ArgumentParser) -> None:
    _stage_options(command)
    _functions_option(command)
    command.add_argument("--broker-arn", help="the stage uses this broker: never delete it")
    command.set_defaults(run=run_teardown)


def _api_parser(command: argparse.ArgumentParser) -> None:
    command.add_argument("out_dir", type=Path, metavar="OUTDIR")
    command.add_argument("--stage", default="dev", help="a stage of .chalice/config.json")
    command.add_argument("--region", help="region chalice writes into the template")
    command.add_argument("--api-dir", type=Path, default=api.API_DIR)
    command.add_argument("--skip-deps", action="store_true", help="do not vendor with pip")
    command.set_defaults(run=run_api_package)


def _stage_options(command: argparse.ArgumentParser) -> None:
    command.add_argument("--dry-run", action="store_true", help="print the plan, change nothing")
    command.add_argument("--stage", default="dev")
    command.add_argument("--region", help="default: AWS_REGION / AWS_DEFAULT_REGION / profile")


def _build_options(command: argparse.ArgumentParser) -> None:
    _functions_option(command)
    command.add_argument("--build-dir", type=Path, default=DEFAULT_BUILD_DIR)
    command.add_argument(
        "--skip-deps", action="store_true", help="do not vendor pika/redis/pymysql (offline)"
    )


def _functions_option(command: argparse.ArgumentParser) -> None:
    command.add_argument("--functions-dir", type=Path, default=FUNCTIONS_DIR)


def _stage_config(args: argparse.Namespace) -> StageConfig:
    return StageConfig(
        stage=args.stage,
        region=_region(args.region),
        broker_arn=args.broker_arn,
        subnet_ids=args.subnet_ids,
        security_group_ids=args.security_group_ids,
        mysql_url=args.mysql_url,
        redis_url=args.redis_url,
        broker_credentials=_broker_credentials(),
        broker_instance_type=args.broker_instance_type,
        broker_engine_version=args.broker_engine_version,
        broker_deployment_mode=args.broker_mode,
    )


def _broker_credentials() -> BrokerCredentials | None:
    """Credentials from the environment (never argv, which other users can read)."""
    username, password = os.environ.get(BROKER_USERNAME), os.environ.get(BROKER_PASSWORD)
    if bool(username) != bool(password):
        raise InfraError(f"set both {BROKER_USERNAME} and {BROKER_PASSWORD}, or neither")
    return BrokerCredentials(username, password) if username and password else None


def _region(explicit: str | None) -> str:
    region = explicit or boto3.Session().region_name
    if not region:
        raise InfraError("no AWS region: give --region or set AWS_REGION")
    return region


def _clients(config: StageConfig) -> Clients:
    return Clients.from_session(boto3.Session(region_name=config.region))


def _vendor(args: argparse.Namespace) -> Vendor:
    return skip_dependencies if args.skip_deps else PipVendor()


def _ids(raw: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in raw.split(",") if item.strip())
