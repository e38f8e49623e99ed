"""Limits AWS enforces, checked before anything is created so a deploy never stops half-way."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from urllib.parse import urlsplit

from credit import settings
from infra.config import (
    CLUSTER_MULTI_AZ,
    SERVICE_SETTINGS,
    SINGLE_INSTANCE,
    STAGE_PATTERN,
    StageConfig,
    function_environment,
)
from infra.errors import LimitError, Violation
from local_runtime.declaration import FunctionSpec

MAX_TIMEOUT_SECONDS = 900
MAX_MQ_TIMEOUT_SECONDS = 840  # an Amazon MQ event source mapping waits at most 14 minutes
MIN_MEMORY_MB, MAX_MEMORY_MB = 128, 10240
MIN_BATCH_SIZE, MAX_BATCH_SIZE = 1, 10_000
MAX_BATCHING_WINDOW_SECONDS = 300
AWS_DEFAULT_BATCHING_WINDOW = 0.5  # what AWS uses for MQ when the field is left out
MAX_FUNCTION_NAME = 64
MAX_ENVIRONMENT_BYTES = 4096
MAX_ZIP_BYTES = 50 * 1024 * 1024  # direct upload; larger code goes through S3
MAX_UNZIPPED_BYTES = 250 * 1024 * 1024
LAMBDA_PYTHON_RUNTIMES = ("python3.10", "python3.11", "python3.12", "python3.13")
MICRO_INSTANCE = "mq.t3.micro"
LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")


def check(
    specs: Sequence[FunctionSpec],
    config: StageConfig,
    zip_sizes: Mapping[str, tuple[int, int]] | None = None,
    require_services: bool = True,
) -> None:
    """Raise LimitError naming every function and field AWS would refuse; no AWS call is made.

    zip_sizes maps a declared function name to (zipped, unzipped) bytes when packages are built.
    """
    violations = list(config_violations(config, require_services))
    for spec in specs:
        violations += function_violations(spec, config)
        if zip_sizes and spec.name in zip_sizes:
            violations += package_violations(spec.name, *zip_sizes[spec.name])
    if violations:
        raise LimitError(violations)


def config_violations(config: StageConfig, require_services: bool = True) -> Iterator[Violation]:
    """Problems with the deploy options themselves."""
    if not STAGE_PATTERN.match(config.stage):
        yield Violation("option --stage", "stage", "must be 1-20 of a-z, 0-9, '-', starting a-z")
    if bool(config.subnet_ids) != bool(config.security_group_ids):
        yield Violation(
            "option --subnet-ids/--security-group-ids",
            "VpcConfig",
            "give both subnets and security groups, or neither",
        )
    elif require_services and not config.subnet_ids:
        yield Violation(
            "option --subnet-ids/--security-group-ids",
            "VpcConfig",
            "is required: ElastiCache and a private broker are reachable only inside a VPC",
        )
    if config.manages_broker:
        yield from _broker_violations(config)
    for option, name, url in (
        ("--mysql-url", "MYSQL_URL", config.mysql_url),
        ("--redis-url", "REDIS_URL", config.redis_url),
    ):
        yield from _service_url_violations(option, name, url, require_services)


def function_violations(spec: FunctionSpec, config: StageConfig) -> Iterator[Violation]:
    """Every limit one function's declaration breaks, named as `function <name>` and field."""
    subject = f"function {spec.name}"
    yield from _configuration_violations(subject, spec, config)
    if spec.event_source is not None:
        yield from _event_source_violations(subject, spec)


def package_violations(name: str, zipped: int, unzipped: int) -> Iterator[Violation]:
    subject = f"function {name}"
    if zipped > MAX_ZIP_BYTES:
        yield Violation(subject, "package", f"zip is {zipped} bytes, over {MAX_ZIP_BYTES}")
    if unzipped > MAX_UNZIPPED_BYTES:
        yield Violation(
            subject, "package", f"unzipped code is {unzipped} bytes, over {MAX_UNZIPPED_BYTES}"
        )


def batching_window(spec: FunctionSpec) -> int | None:
    """MaximumBatchingWindowInSeconds to send: whole seconds, or None to keep AWS's 0.5 s."""
    assert spec.event_source is not None
    window = spec.event_source.maximum_batching_window
    if window == AWS_DEFAULT_BATCHING_WINDOW:
        return None
    return int(window)


def _configuration_violations(
    subject: str, spec: FunctionSpec, config: StageConfig
) -> Iterator[Violation]:
    mq_triggered = spec.event_source is not None
    max_timeout = MAX_MQ_TIMEOUT_SECONDS if mq_triggered else MAX_TIMEOUT_SECONDS
    if not 1 <= spec.timeout <= max_timeout:
        why = " for an Amazon MQ-triggered function" if mq_triggered else ""
        problem = f"must be 1 to {max_timeout} s{why}, got {spec.timeout:g}"
        yield Violation(subject, "timeout", problem)
    elif spec.timeout != int(spec.timeout):
        yield Violation(subject, "timeout", f"Lambda takes whole seconds, got {spec.timeout:g}")
    if not MIN_MEMORY_MB <= spec.memory_size <= MAX_MEMORY_MB:
        yield Violation(
            subject,
            "memory_size",
            f"must be {MIN_MEMORY_MB} to {MAX_MEMORY_MB} MB, got {spec.memory_size}",
        )
    if spec.runtime not in LAMBDA_PYTHON_RUNTIMES:
        yield Violation(subject, "runtime", f"must be one of {', '.join(LAMBDA_PYTHON_RUNTIMES)}")
    name = config.function_name(spec.name)
    if len(name) > MAX_FUNCTION_NAME:
        yield Violation(subject, "name", f"{name!r} is over {MAX_FUNCTION_NAME} characters")
    yield from _reserved_environment_violations(subject, spec)
    environment = function_environment(spec.environment, _longest_secret_arn(config))
    size = sum(len(key.encode()) + len(value.encode()) for key, value in environment.items())
    if size > MAX_ENVIRONMENT_BYTES:
        yield Violation(subject, "environment", f"is {size} bytes, over {MAX_ENVIRONMENT_BYTES}")


def _reserved_environment_violations(subject: str, spec: FunctionSpec) -> Iterator[Violation]:
    """Service settings belong in the stage's secret; declared, they would shadow it."""
    for name in sorted(spec.environment):
        if name in SERVICE_SETTINGS:
            yield Violation(
                subject,
                f"environment.{name}",
                "credentials never go into Lambda variables: deploy keeps it in the stage's "
                "services secret (--mysql-url, --redis-url, the broker's user)",
            )
        elif name == settings.SECRET_ID:
            yield Violation(subject, f"environment.{name}", "is set by deploy")


def _longest_secret_arn(config: StageConfig) -> str:
    """As long as the services secret's ARN can be, for the environment size limit."""
    region = config.region
    name = config.services_secret_name
    return f"arn:aws-us-gov:secretsmanager:{region}:123456789012:secret:{name}-XXXXXX"


def _event_source_violations(subject: str, spec: FunctionSpec) -> Iterator[Violation]:
    source = spec.event_source
    assert source is not None
    if not MIN_BATCH_SIZE <= source.batch_size <= MAX_BATCH_SIZE:
        yield Violation(
            subject,
            "event_source.batch_size",
            f"must be {MIN_BATCH_SIZE} to {MAX_BATCH_SIZE}, got {source.batch_size}",
        )
    window = source.maximum_batching_window
    if not 0 <= window <= MAX_BATCHING_WINDOW_SECONDS:
        yield Violation(
            subject,
            "event_source.maximum_batching_window",
            f"must be 0 to {MAX_BATCHING_WINDOW_SECONDS} s, got {window:g}",
        )
    elif window != int(window) and window != AWS_DEFAULT_BATCHING_WINDOW:
        yield Violation(
            subject,
            "event_source.maximum_batching_window",
            f"AWS takes whole seconds (or the 0.5 s default), got {window:g}",
        )
    if not source.queue or not source.virtual_host:
        yield Violation(subject, "event_source.queue", "queue and virtual_host must be set")


def _broker_violations(config: StageConfig) -> Iterator[Violation]:
    mode = config.broker_deployment_mode
    if mode not in (SINGLE_INSTANCE, CLUSTER_MULTI_AZ):
        yield Violation("option --broker-mode", "DeploymentMode", f"unknown mode {mode!r}")
    elif mode == CLUSTER_MULTI_AZ and config.broker_instance_type == MICRO_INSTANCE:
        yield Violation(
            "option --broker-instance-type",
            "HostInstanceType",
            "mq.t3.micro is single-instance only",
        )


def _service_url_violations(
    option: str, name: str, url: str | None, required: bool
) -> Iterator[Violation]:
    if not url:
        if required:
            yield Violation(
                f"option {option}",
                name,
                "is required: infra creates no databases, give the endpoint the functions use",
            )
        return
    host = urlsplit(url).hostname or ""
    if host in LOCAL_HOSTS:
        yield Violation(f"option {option}", name, f"{host} is not reachable from Lambda")
