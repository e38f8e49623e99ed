"""Command line: deploy, teardown, drift, template, package, definitions (the printing code)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import boto3
from botocore.exceptions import BotoCoreError

from credit import topology
from declarations.errors import TemplateError
from declarations.reader import read
from infra.config import (
    DEFAULT_LOG_RETENTION_DAYS,
    PRODUCTION_LOG_RETENTION_DAYS,
    ExistingBroker,
    StageConfig,
)
from infra.deploy import build, deploy, teardown
from infra.errors import InfraError, LimitError
from infra.package import Artifact, LockedVendor, Vendor, no_dependencies
from infra.stack import Stack
from infra.storage import Bucket, default_bucket
from infra.template import RULE_QUEUE_PREFIX

LOGGER = logging.getLogger(__name__)
SessionFactory = Callable[..., boto3.Session]
ROOT = Path(__file__).resolve().parents[1]
DEFAULT_BUILD_DIR = Path("build") / "infra"
USAGE_ERROR = 2
DRIFTED = 3


def main(argv: Sequence[str] | None = None, session: SessionFactory = boto3.Session) -> int:
    """Run one command; 0 ok, 1 AWS or build failure, 2 bad input, 3 drift found.

    `session` makes the boto3 session the AWS clients come from (given a region name).
    """
    args = parser().parse_args(argv)
    args.session = session
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    try:
        return int(args.run(args))
    except (LimitError, TemplateError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return USAGE_ERROR
    except (InfraError, BotoCoreError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="python -m infra", description=__doc__)
    commands = root.add_subparsers(dest="command", required=True)
    deploy_command = commands.add_parser("deploy", help="create or update the stage's stack")
    _stage_options(deploy_command)
    _build_options(deploy_command)
    _deploy_options(deploy_command)
    deploy_command.set_defaults(run=run_deploy)
    teardown_command = commands.add_parser("teardown", help="delete the stage's stack")
    _stage_options(teardown_command)
    teardown_command.set_defaults(run=run_teardown)
    drift = commands.add_parser("drift", help="report resources changed outside the stack")
    _stage_options(drift, dry_run=False)
    drift.set_defaults(run=run_drift)
    template = commands.add_parser("template", help="build the stack template, no AWS call")
    _build_options(template)
    _deploy_options(template)
    template.add_argument("--stage", default="dev")
    template.add_argument("--region", default="us-east-1")
    template.set_defaults(run=run_template)
    definitions = commands.add_parser("definitions", help="print the RabbitMQ definitions JSON")
    definitions.add_argument("--template", type=Path, default=ROOT)
    definitions.set_defaults(run=run_definitions)
    return root


def run_deploy(args: argparse.Namespace) -> int:
    config = _stage_config(args)
    session = _session(args, config.region)
    bucket = Bucket(session.client("s3"), args.bucket or _default_bucket(session), config.stage)
    stack = Stack(session.client("cloudformation"), config.stack_name)
    config.check()
    bucket.ensure(config.region)
    built = build(args.template, config, args.build_dir, _vendor(args), bucket.code)
    saved = args.build_dir / f"{config.stack_name}.json"
    saved.write_text(json.dumps(built.template, indent=1, sort_keys=True))
    deploy(built, config, stack, bucket, print, args.dry_run)
    return 0


def run_teardown(args: argparse.Namespace) -> int:
    session = _session(args, args.region)
    stack = Stack(session.client("cloudformation"), StageConfig(stage=args.stage).stack_name)
    teardown(stack, print, args.dry_run)
    return 0


def run_drift(args: argparse.Namespace) -> int:
    session = _session(args, args.region)
    stack = Stack(session.client("cloudformation"), StageConfig(stage=args.stage).stack_name)
    drifts = stack.drift()
    for drift in drifts:
        print(f"  {drift}")
    summary = f"{len(drifts)} drifted resource(s)" if drifts else "in sync"
    print(f"{stack.name}: {summary}")
    return DRIFTED if drifts else 0


def run_template(args: argparse.Namespace) -> int:
    config = _stage_config(args)

    def named(artifact: Artifact) -> dict[str, str]:
        key = f"{config.stage}/code/{artifact.sha256}.zip"
        return {"Bucket": args.bucket or "BUCKET", "Key": key}

    built = build(args.template, config, args.build_dir, _vendor(args), named)
    print(json.dumps(built.template, indent=1, sort_keys=True))
    return 0


def run_definitions(args: argparse.Namespace) -> int:
    """The topology of the declared rule queues, as the broker in docker-compose loads it."""
    project = read(args.template)
    rules = sorted({source.queue.removeprefix(RULE_QUEUE_PREFIX) for source in project.mq_sources})
    document = topology.definitions([topology.queue_for_rule(rule) for rule in rules], "/")
    print(json.dumps(document, indent=2, sort_keys=True))
    return 0


def _stage_options(command: argparse.ArgumentParser, dry_run: bool = True) -> None:
    if dry_run:
        command.add_argument(
            "--dry-run", action="store_true", help="print the change set, change nothing"
        )
    command.add_argument("--stage", default="dev")
    command.add_argument("--region", help="default: AWS_REGION / AWS_DEFAULT_REGION / profile")


def _build_options(command: argparse.ArgumentParser) -> None:
    command.add_argument("--template", type=Path, default=ROOT, help="the root template")
    command.add_argument("--build-dir", type=Path, default=DEFAULT_BUILD_DIR)
    command.add_argument(
        "--skip-deps", action="store_true", help="leave the locked dependencies out (offline)"
    )


def _deploy_options(command: argparse.ArgumentParser) -> None:
    command.add_argument("--bucket", help="S3 bucket for code (default: one deploy creates)")
    command.add_argument("--subnet-ids", type=_ids, default=(), help="comma-separated subnets")
    command.add_argument("--security-group-ids", type=_ids, default=(), help="comma-separated")
    command.add_argument(
        "--database-secret-arn", default="", help="secret holding MYSQL_URL and REDIS_URL"
    )
    command.add_argument("--broker-arn", help="use this existing Amazon MQ broker")
    command.add_argument("--broker-secret-arn", default="", help="its user's secret")
    command.add_argument("--broker-host", default="", help="its AMQPS endpoint, host:port")
    command.add_argument(
        "--production",
        action="store_true",
        help="retain the broker and secrets when the stack goes (always for prod)",
    )
    command.add_argument(
        "--log-retention-days",
        type=int,
        help=f"default {DEFAULT_LOG_RETENTION_DAYS}, {PRODUCTION_LOG_RETENTION_DAYS} in production",
    )


def _stage_config(args: argparse.Namespace) -> StageConfig:
    broker = None
    if args.broker_arn:
        broker = ExistingBroker(args.broker_arn, args.broker_secret_arn, args.broker_host)
    return StageConfig(
        stage=args.stage,
        region=args.region or _session(args, None).region_name or "",
        subnet_ids=args.subnet_ids,
        security_group_ids=args.security_group_ids,
        database_secret_arn=args.database_secret_arn,
        broker=broker,
        production=args.production,
        log_retention_days=args.log_retention_days,
    )


def _session(args: argparse.Namespace, region: str | None) -> boto3.Session:
    session: boto3.Session = args.session(region_name=region)
    if not session.region_name:
        raise InfraError("no AWS region: give --region or set AWS_REGION")
    return session


def _default_bucket(session: boto3.Session) -> str:
    account = session.client("sts").get_caller_identity()["Account"]
    return default_bucket(account, str(session.region_name))


def _vendor(args: argparse.Namespace) -> Vendor:
    return no_dependencies if args.skip_deps else LockedVendor()


def _ids(raw: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in raw.split(",") if item.strip())
