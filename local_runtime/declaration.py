"""Function declarations (`function.json` next to each handler), read by the runtime and infra/."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from credit.topology import DEFAULT_DELIVERY_LIMIT, RuleQueue

DECLARATION_FILE = "function.json"
# The functions/ folder of the current directory, as `sam local` and `chalice local` work from
# the project's folder: an installed package has no project beside it. Relative on purpose.
FUNCTIONS_DIR = Path("functions")
API_FOLDER = "api"  # the Chalice app's folder among the functions

# Limits AWS enforces for functions fed by an Amazon MQ event source mapping.
MAX_TIMEOUT_SECONDS = 840  # 14 minutes for MQ-triggered functions
MIN_MEMORY_MB, MAX_MEMORY_MB = 128, 10240
MAX_BATCH_SIZE = 10_000
MAX_BATCHING_WINDOW_SECONDS = 300
MAX_LOCAL_CONCURRENCY = 64
DEFAULT_BATCH_SIZE = 100
DEFAULT_BATCHING_WINDOW_SECONDS = 0.5
PYTHON_RUNTIMES = ("python3.10", "python3.11", "python3.12", "python3.13")
NAME_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
HANDLER_PATTERN = re.compile(r"^[A-Za-z_][\w.]*\.[A-Za-z_]\w*$")
VARIABLE_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9_]+$")
MAX_ENVIRONMENT_BYTES = 4096  # all names and values together
# Set by Lambda itself; a function configuration that declares one is refused.
RESERVED_VARIABLES = frozenset(
    {
        "_HANDLER",
        "_X_AMZN_TRACE_ID",
        "AWS_DEFAULT_REGION",
        "AWS_REGION",
        "AWS_EXECUTION_ENV",
        "AWS_LAMBDA_FUNCTION_NAME",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
        "AWS_LAMBDA_FUNCTION_VERSION",
        "AWS_LAMBDA_INITIALIZATION_TYPE",
        "AWS_LAMBDA_LOG_GROUP_NAME",
        "AWS_LAMBDA_LOG_STREAM_NAME",
        "AWS_ACCESS_KEY",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_LAMBDA_RUNTIME_API",
        "LAMBDA_TASK_ROOT",
        "LAMBDA_RUNTIME_DIR",
        "TZ",
    }
)


class DeclarationError(ValueError):
    """A declaration is missing a field or has a value AWS would refuse; names file and field."""

    def __init__(self, path: Path | str, field_name: str, problem: str) -> None:
        self.path, self.field_name, self.problem = str(path), field_name, problem
        super().__init__(f"{path}: {field_name}: {problem}")


@dataclass(frozen=True)
class EventSource:
    """A RabbitMQ event source mapping: the queue, how it is bound, and how batches close."""

    queue: str
    exchange: str
    routing_key: str
    batch_size: int = DEFAULT_BATCH_SIZE
    maximum_batching_window: float = DEFAULT_BATCHING_WINDOW_SECONDS
    delivery_limit: int = DEFAULT_DELIVERY_LIMIT
    concurrency: int = 1
    virtual_host: str = "/"

    @property
    def rule_queue(self) -> RuleQueue:
        return RuleQueue(
            name=self.queue,
            routing_key=self.routing_key,
            exchange=self.exchange,
            delivery_limit=self.delivery_limit,
        )


@dataclass(frozen=True)
class FunctionSpec:
    """Everything needed to run one function locally or deploy it to AWS."""

    name: str
    handler: str
    directory: Path
    runtime: str = "python3.11"
    timeout: float = 3.0
    memory_size: int = 128
    environment: dict[str, str] = field(default_factory=dict)
    description: str = ""
    event_source: EventSource | None = None

    @property
    def handler_module(self) -> str:
        return self.handler.rsplit(".", 1)[0]

    @property
    def handler_function(self) -> str:
        return self.handler.rsplit(".", 1)[1]


def load(path: Path | str) -> FunctionSpec:
    """Read and check one declaration (a function.json file or the folder holding it)."""
    path = Path(path)
    if path.is_dir():
        path = path / DECLARATION_FILE
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise DeclarationError(path, "(file)", "not found") from exc
    except json.JSONDecodeError as exc:
        raise DeclarationError(path, "(file)", f"not valid JSON: {exc}") from exc
    if not isinstance(raw, dict):
        raise DeclarationError(path, "(file)", "must hold a JSON object")
    return _parse(path, raw)


def discover(root: Path | str = FUNCTIONS_DIR) -> list[FunctionSpec]:
    """Every function declared under root (one folder per function), sorted by name."""
    specs = [load(path) for path in sorted(Path(root).glob(f"*/{DECLARATION_FILE}"))]
    names = [spec.name for spec in specs]
    for name in names:
        if names.count(name) > 1:
            raise DeclarationError(root, "name", f"{name!r} is declared more than once")
    return sorted(specs, key=lambda spec: spec.name)


def _parse(path: Path, raw: dict[str, Any]) -> FunctionSpec:
    known = {
        "name",
        "description",
        "handler",
        "runtime",
        "timeout",
        "memory_size",
        "environment",
        "event_source",
    }
    _no_unknown(path, "", raw, known)
    name = _string(path, "name", raw.get("name"))
    if not NAME_PATTERN.match(name):
        raise DeclarationError(path, "name", "must be 1-64 letters, digits, '-' or '_'")
    handler = _string(path, "handler", raw.get("handler"))
    if not HANDLER_PATTERN.match(handler):
        raise DeclarationError(path, "handler", f"must look like module.function, got {handler!r}")
    runtime = raw.get("runtime", "python3.11")
    if runtime not in PYTHON_RUNTIMES:
        raise DeclarationError(path, "runtime", f"must be one of {', '.join(PYTHON_RUNTIMES)}")
    timeout = _number(path, "timeout", raw.get("timeout", 3), 1, MAX_TIMEOUT_SECONDS)
    memory = int(
        _number(
            path,
            "memory_size",
            raw.get("memory_size", 128),
            MIN_MEMORY_MB,
            MAX_MEMORY_MB,
            integer=True,
        )
    )
    environment = _environment(path, raw.get("environment", {}))
    source = raw.get("event_source")
    return FunctionSpec(
        name=name,
        handler=handler,
        directory=path.parent.resolve(),
        runtime=runtime,
        timeout=timeout,
        memory_size=memory,
        environment=environment,
        description=str(raw.get("description", "")),
        event_source=None if source is None else _event_source(path, source),
    )


def _environment(path: Path, raw: object) -> dict[str, str]:
    """Variables as AWS accepts them: string values, valid names, none reserved, 4 KB in all."""
    if not isinstance(raw, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in raw.items()
    ):
        raise DeclarationError(path, "environment", "must map names to string values")
    reserved = sorted(RESERVED_VARIABLES.intersection(raw))
    if reserved:
        raise DeclarationError(path, "environment", f"reserved by Lambda: {', '.join(reserved)}")
    for name in raw:
        if not VARIABLE_PATTERN.match(name):
            raise DeclarationError(
                path, f"environment.{name}", "names are a letter, then letters, digits or '_'"
            )
    size = sum(len(k.encode()) + len(v.encode()) for k, v in raw.items())
    if size > MAX_ENVIRONMENT_BYTES:
        raise DeclarationError(
            path, "environment", f"{size} bytes in all, more than Lambda's {MAX_ENVIRONMENT_BYTES}"
        )
    return dict(raw)


def _event_source(path: Path, raw: object) -> EventSource:
    if not isinstance(raw, dict):
        raise DeclarationError(path, "event_source", "must be an object")
    known = {
        "type",
        "queue",
        "exchange",
        "routing_key",
        "batch_size",
        "maximum_batching_window",
        "delivery_limit",
        "concurrency",
        "virtual_host",
    }
    _no_unknown(path, "event_source.", raw, known)
    if raw.get("type", "rabbitmq") != "rabbitmq":
        raise DeclarationError(path, "event_source.type", "only 'rabbitmq' is supported")
    return EventSource(
        queue=_string(path, "event_source.queue", raw.get("queue")),
        exchange=_string(path, "event_source.exchange", raw.get("exchange")),
        routing_key=_string(path, "event_source.routing_key", raw.get("routing_key")),
        batch_size=int(
            _number(
                path,
                "event_source.batch_size",
                raw.get("batch_size", DEFAULT_BATCH_SIZE),
                1,
                MAX_BATCH_SIZE,
                integer=True,
            )
        ),
        maximum_batching_window=_number(
            path,
            "event_source.maximum_batching_window",
            raw.get("maximum_batching_window", DEFAULT_BATCHING_WINDOW_SECONDS),
            0,
            MAX_BATCHING_WINDOW_SECONDS,
        ),
        delivery_limit=int(
            _number(
                path,
                "event_source.delivery_limit",
                raw.get("delivery_limit", DEFAULT_DELIVERY_LIMIT),
                1,
                1000,
                integer=True,
            )
        ),
        concurrency=int(
            _number(
                path,
                "event_source.concurrency",
                raw.get("concurrency", 1),
                1,
                MAX_LOCAL_CONCURRENCY,
                integer=True,
            )
        ),
        virtual_host=_string(path, "event_source.virtual_host", raw.get("virtual_host", "/")),
    )


def _no_unknown(path: Path, prefix: str, raw: dict[str, Any], known: set[str]) -> None:
    unknown = sorted(set(raw) - known)
    if unknown:
        known_list = ", ".join(sorted(known))
        raise DeclarationError(path, prefix + unknown[0], f"unknown field (known: {known_list})")


def _string(path: Path, name: str, value: object) -> str:
    if not isinstance(value, str) or not value:
        raise DeclarationError(path, name, "is required and must be a non-empty string")
    return value


def _number(
    path: Path, name: str, value: object, low: float, high: float, integer: bool = False
) -> float:
    wrong_kind = integer and not isinstance(value, int)
    if isinstance(value, bool) or not isinstance(value, int | float) or wrong_kind:
        kind = "an integer" if integer else "a number"
        raise DeclarationError(path, name, f"must be {kind} from {low} to {high}, got {value!r}")
    if not low <= value <= high:
        raise DeclarationError(path, name, f"must be from {low} to {high}, got {value}")
    return float(value)
