"""What a template declares, as the runtime and deploy use it: functions and their triggers."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from declarations import limits


@dataclass(frozen=True)
class Logging:
    """`LoggingConfig`: the log format and, for JSON, the levels that pass."""

    log_format: str = "Text"
    application_log_level: str | None = None
    system_log_level: str | None = None
    log_group: str | None = None


@dataclass(frozen=True)
class Function:
    """One Lambda function: its code, handler, limits and environment."""

    logical_id: str
    name: str  # FunctionName when the template gives one, else the logical id
    handler: str
    runtime: str
    code_dir: Path
    timeout: int = limits.DEFAULT_TIMEOUT_SECONDS
    memory_size: int = limits.DEFAULT_MEMORY_MB
    ephemeral_storage: int = limits.DEFAULT_EPHEMERAL_MB
    environment: Mapping[str, str] = field(default_factory=dict)
    description: str = ""
    layers: tuple[Path, ...] = ()  # local layer folders, their python/ put on sys.path
    logging: Logging = field(default_factory=Logging)
    concurrency: int = 1  # execution environments per mapping, locally (Metadata.LocalRuntime)
    # Bodies larger than this are refused before they are read (Metadata.LocalRuntime); None:
    # API Gateway's own payload limit.
    max_body_bytes: int | None = None

    @property
    def handler_module(self) -> str:
        return self.handler.rsplit(".", 1)[0]

    @property
    def handler_function(self) -> str:
        return self.handler.rsplit(".", 1)[-1]


@dataclass(frozen=True)
class Broker:
    """An Amazon MQ broker as the template names it; locally it is a RabbitMQ URL."""

    arn: str
    logical_id: str | None = None  # the AWS::AmazonMQ::Broker resource, when it is one


@dataclass(frozen=True)
class MqSource:
    """An Amazon MQ (RabbitMQ) event source mapping: one queue feeding one function."""

    logical_id: str
    function: str  # the function's logical id
    broker: Broker
    queue: str
    virtual_host: str | None = None  # VIRTUAL_HOST's URI; None: AWS's "/", or the local URL's
    batch_size: int = limits.DEFAULT_BATCH_SIZE
    maximum_batching_window: float = limits.DEFAULT_BATCHING_WINDOW_SECONDS
    enabled: bool = True
    filters: tuple[str, ...] = ()  # FilterCriteria patterns, as the JSON text AWS takes


@dataclass(frozen=True)
class Schedule:
    """An EventBridge schedule that invokes a function (`AWS::Events::Rule`, SAM `Schedule`)."""

    logical_id: str
    function: str
    expression: str  # rate(...) or cron(...)
    rule_name: str
    enabled: bool = True
    input: str | None = None  # the target's constant Input (JSON text), sent instead of the event


@dataclass(frozen=True)
class Route:
    """An API Gateway route to a function: SAM `Api` (REST, payload 1.0) or `HttpApi` events."""

    function: str
    path: str
    method: str  # an HTTP method, or ANY
    kind: str = "rest"  # "rest" or "http"


@dataclass(frozen=True)
class Project:
    """Everything one template declares that the runtime runs or deploy ships."""

    template: Path
    functions: Mapping[str, Function]
    mq_sources: tuple[MqSource, ...] = ()
    schedules: tuple[Schedule, ...] = ()
    routes: tuple[Route, ...] = ()
    region: str = "us-east-1"
    account: str = "000000000000"
    warnings: tuple[str, ...] = ()

    def function(self, name: str) -> Function:
        """A function by logical id or by name; KeyError naming the known ones."""
        if name in self.functions:
            return self.functions[name]
        for function in self.functions.values():
            if function.name == name:
                return function
        known = ", ".join(sorted(self.functions))
        raise KeyError(f"no function named {name!r} (declared: {known})")

    def sources_of(self, logical_id: str) -> tuple[MqSource, ...]:
        return tuple(source for source in self.mq_sources if source.function == logical_id)
