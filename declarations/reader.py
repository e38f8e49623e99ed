"""A template read into a Project: the functions, their MQ mappings, schedules and API routes.

`read()` is the one way into a template, for the local runtime and for deploy alike. SAM is
expanded by AWS's translator first, so both read the same CloudFormation resources:
`AWS::Lambda::Function`, `AWS::Lambda::EventSourceMapping`, `AWS::Events::Rule`. Every value
is checked against the limits AWS enforces, and refused with the file, resource and property
named; a property that would change behaviour but is not emulated locally is named in one
warning line per resource, never dropped in silence.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
import tempfile
import uuid
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from declarations import limits, sam, schedules
from declarations.errors import TemplateError
from declarations.intrinsics import NO_VALUE, Resolver, Stack
from declarations.loader import METADATA_KEY, Document, load
from declarations.model import Broker, Function, Logging, MqSource, Project, Schedule

FUNCTION = "AWS::Lambda::Function"
MAPPING = "AWS::Lambda::EventSourceMapping"
RULE = "AWS::Events::Rule"
BROKER = "AWS::AmazonMQ::Broker"
LAYER = "AWS::Lambda::LayerVersion"
DEFAULT_REGION, DEFAULT_ACCOUNT, DEFAULT_STACK = "us-east-1", "000000000000", "local"

# Function properties: read here; meaningless on one machine; the rest is named in a warning.
FUNCTION_READ = frozenset(
    {
        "Code",
        "Handler",
        "Runtime",
        "Timeout",
        "MemorySize",
        "Environment",
        "Description",
        "FunctionName",
        "EphemeralStorage",
        "Layers",
        "LoggingConfig",
        "PackageType",
    }
)
FUNCTION_NO_LOCAL_MEANING = frozenset(
    {"Role", "Tags", "Architectures", "VpcConfig", "KmsKeyArn", "CodeSigningConfigArn"}
)
MAPPING_READ = frozenset(
    {
        "FunctionName",
        "EventSourceArn",
        "Queues",
        "BatchSize",
        "MaximumBatchingWindowInSeconds",
        "Enabled",
        "FilterCriteria",
        "SourceAccessConfigurations",
    }
)
# Types whose resources need nothing locally: roles, permissions, the API definitions that
# the routes already describe, secrets (the runtime logs in with its own URL), log groups.
QUIET_TYPES = frozenset(
    {
        "AWS::IAM::Role",
        "AWS::IAM::Policy",
        "AWS::IAM::ManagedPolicy",
        "AWS::Lambda::Permission",
        "AWS::Lambda::Version",
        "AWS::Lambda::Alias",
        "AWS::ApiGateway::RestApi",
        "AWS::ApiGateway::Deployment",
        "AWS::ApiGateway::Stage",
        "AWS::ApiGatewayV2::Api",
        "AWS::ApiGatewayV2::Stage",
        "AWS::SecretsManager::Secret",
        "AWS::Logs::LogGroup",
        "AWS::EC2::SecurityGroup",
        "CloudFormation::Interface",
    }
)


@dataclass
class _Reading:
    """The state of one read: the document, its resolver, and what has been found so far."""

    document: Document
    body: dict[str, Any]
    stack: Stack
    expanded: sam.Expanded
    cache_dir: Path
    resolver: Resolver = field(init=False)
    warnings: list[str] = field(default_factory=list)
    names: dict[str, str] = field(default_factory=dict)  # function name or ARN -> logical id

    @property
    def resources(self) -> dict[str, dict[str, Any]]:
        resources: dict[str, dict[str, Any]] = self.body.get("Resources", {})
        return resources

    def where(self, logical_id: str, prop: str = "") -> str:
        return self.document.where(logical_id, prop)

    def properties(self, logical_id: str) -> dict[str, Any]:
        raw = self.resources[logical_id].get("Properties", {}) or {}
        if not isinstance(raw, dict):
            raise TemplateError(self.where(logical_id, "Properties"), "must be a mapping")
        return raw

    def value(self, logical_id: str, prop: str, default: Any = None) -> Any:
        """One property, resolved; `default` when absent or AWS::NoValue."""
        raw = self.properties(logical_id)
        if prop not in raw:
            return default
        resolved = self.resolver.resolve(raw[prop], self.where(logical_id, prop))
        return default if resolved is NO_VALUE else resolved

    def active(self, logical_id: str) -> bool:
        condition = self.resources[logical_id].get("Condition")
        if condition is None:
            return True
        return self.resolver.condition(str(condition), self.where(logical_id, "Condition"))

    def of_type(self, kind: str) -> list[str]:
        return [
            logical_id
            for logical_id, resource in self.resources.items()
            if isinstance(resource, dict)
            and resource.get("Type") == kind
            and self.active(logical_id)
        ]


def read(
    path: Path | str,
    parameters: Mapping[str, str] | None = None,
    region: str | None = None,
    account: str | None = None,
    stack_name: str | None = None,
    cache_dir: Path | None = None,
    exports: Mapping[str, str] | None = None,
) -> Project:
    """Read a template (or a folder holding template.yaml) into a Project.

    `parameters` override the template's parameter defaults, as `--parameter-overrides` does;
    `exports` are the values `Fn::ImportValue` takes, by export name (other stacks' outputs).
    Inline and zipped code is unpacked under `cache_dir` (default: the system's temp folder).
    """
    document = load(path)
    stack = Stack(region or DEFAULT_REGION, account or DEFAULT_ACCOUNT, stack_name or DEFAULT_STACK)
    values = _parameter_values(document, dict(parameters or {}))
    expanded = sam.expand(document, stack.region, values)
    reading = _Reading(
        document,
        expanded.body,
        stack,
        expanded,
        cache_dir or Path(tempfile.gettempdir()) / "local-runtime-code",
        warnings=list(expanded.warnings),
    )
    reading.resolver = Resolver(
        reading.body, stack, values, _ref(reading), _get_att(reading), dict(exports or {})
    )
    functions = {lid: _function(reading, lid) for lid in reading.of_type(FUNCTION)}
    for logical_id, function in functions.items():
        reading.names[function.name] = logical_id
        reading.names[_function_arn(stack, function.name)] = logical_id
        reading.names[logical_id] = logical_id
    mq_sources = tuple(
        source
        for lid in reading.of_type(MAPPING)
        if (source := _mq_source(reading, lid)) is not None
    )
    rules = tuple(
        schedule for lid in reading.of_type(RULE) for schedule in _schedules(reading, lid)
    )
    routes = tuple(route for route in expanded.routes if route.function in functions)
    _warn_unemulated(reading)
    return Project(
        template=document.path,
        functions=functions,
        mq_sources=mq_sources,
        schedules=rules,
        routes=routes,
        region=stack.region,
        account=stack.account,
        warnings=tuple(reading.warnings),
    )


# --- parameters ----------------------------------------------------------------------------


def _parameter_values(document: Document, overrides: dict[str, str]) -> dict[str, Any]:
    declared = document.body.get("Parameters", {}) or {}
    unknown = sorted(set(overrides) - set(declared))
    if unknown:
        raise TemplateError(
            f"{document.path}: Parameters", f"no parameter named {unknown[0]} to override"
        )
    values: dict[str, Any] = {}
    for name, spec in declared.items():
        spec = spec if isinstance(spec, dict) else {}
        if name in overrides:
            raw: Any = overrides[name]
        elif "Default" in spec:
            raw = spec["Default"]
        else:
            continue  # an error only if a value the runtime needs refers to it
        values[name] = _typed_parameter(document, name, spec, raw)
    return values


def _typed_parameter(document: Document, name: str, spec: dict[str, Any], raw: Any) -> Any:
    where = f"{document.path}: Parameters.{name}"
    kind = str(spec.get("Type", "String"))
    text = ",".join(str(item) for item in raw) if isinstance(raw, list) else str(raw)
    allowed = spec.get("AllowedValues")
    if isinstance(allowed, list) and text not in [str(item) for item in allowed]:
        raise TemplateError(where, f"{text!r} is not among AllowedValues {allowed}")
    if kind == "Number":
        try:
            float(text)
        except ValueError:
            raise TemplateError(where, f"is a Number, got {text!r}") from None
    if kind.startswith("AWS::SSM::Parameter::Value"):
        if raw is spec.get("Default"):
            raise TemplateError(
                where, "an SSM parameter has no local value: give it with --parameter-overrides"
            )
        return text
    if kind == "CommaDelimitedList" or kind.startswith("List<"):
        return [item.strip() for item in text.split(",")] if text else []
    return text


# --- what Ref and GetAtt give locally -------------------------------------------------------


def _ref(reading: _Reading) -> Any:
    def ref(logical_id: str) -> Any:
        kind = reading.resources[logical_id].get("Type")
        if kind == FUNCTION:
            return _function_name(reading, logical_id)
        if kind == BROKER:
            return _broker_id(reading, logical_id)
        if kind == LAYER:
            return reading.stack.arn("lambda", f"layer:{logical_id}:1")
        if kind == "AWS::SecretsManager::Secret":
            return reading.stack.arn("secretsmanager", f"secret:{logical_id}-local")
        return logical_id

    return ref


def _get_att(reading: _Reading) -> Any:
    def get_att(logical_id: str, attribute: str) -> Any:
        kind = str(reading.resources[logical_id].get("Type"))
        stack = reading.stack
        if kind == FUNCTION and attribute == "Arn":
            return _function_arn(stack, _function_name(reading, logical_id))
        if kind == BROKER:
            broker_id = _broker_id(reading, logical_id)
            name = reading.value(logical_id, "BrokerName", logical_id)
            return {
                "Arn": stack.arn("mq", f"broker:{name}:{broker_id}"),
                "Id": broker_id,
                "AmqpEndpoints": [f"amqps://{broker_id}.mq.{stack.region}.amazonaws.com:5671"],
            }.get(attribute, f"{logical_id}.{attribute}")
        if kind == RULE and attribute == "Arn":
            return stack.arn("events", f"rule/{_rule_name(reading, logical_id)}")
        if kind == "AWS::IAM::Role" and attribute == "Arn":
            return stack.arn("iam", f"role/{logical_id}", region=False)
        if attribute == "Arn":
            service = kind.split("::")[1].lower() if kind.count("::") == 2 else "local"
            return stack.arn(service, logical_id)
        return f"{logical_id}.{attribute}"

    return get_att


def _function_name(reading: _Reading, logical_id: str) -> str:
    name = reading.value(logical_id, "FunctionName")
    if name is None:
        return logical_id
    if not isinstance(name, str) or not limits.FUNCTION_NAME_PATTERN.match(name):
        raise TemplateError(
            reading.where(logical_id, "FunctionName"),
            "must be 1-64 letters, digits, '-' or '_'",
        )
    return name


def _function_arn(stack: Stack, name: str) -> str:
    return stack.arn("lambda", f"function:{name}")


def _broker_id(reading: _Reading, logical_id: str) -> str:
    return f"b-{uuid.uuid5(uuid.NAMESPACE_URL, f'{reading.stack.name}/{logical_id}')}"


def _rule_name(reading: _Reading, logical_id: str) -> str:
    name = reading.value(logical_id, "Name")
    return name if isinstance(name, str) else logical_id


# --- functions ---------------------------------------------------------------------------


def _function(reading: _Reading, logical_id: str) -> Function:
    where = reading.where
    if reading.value(logical_id, "PackageType", "Zip") == "Image":
        raise TemplateError(
            where(logical_id, "PackageType"), "container image functions do not run locally"
        )
    _warn_unread(reading, logical_id, FUNCTION_READ, FUNCTION_NO_LOCAL_MEANING)
    handler = reading.value(logical_id, "Handler")
    if not isinstance(handler, str) or "." not in handler or not handler.split(".")[-1]:
        raise TemplateError(
            where(logical_id, "Handler"), f"must be module.function, got {handler!r}"
        )
    return Function(
        logical_id=logical_id,
        name=_function_name(reading, logical_id),
        handler=handler,
        runtime=_runtime(reading, logical_id),
        code_dir=_code_dir(reading, logical_id),
        timeout=_whole(
            reading,
            logical_id,
            "Timeout",
            limits.DEFAULT_TIMEOUT_SECONDS,
            limits.MIN_TIMEOUT_SECONDS,
            limits.MAX_TIMEOUT_SECONDS,
            "seconds",
        ),
        memory_size=_whole(
            reading,
            logical_id,
            "MemorySize",
            limits.DEFAULT_MEMORY_MB,
            limits.MIN_MEMORY_MB,
            limits.MAX_MEMORY_MB,
            "MB",
        ),
        ephemeral_storage=_ephemeral(reading, logical_id),
        environment=_environment(reading, logical_id),
        description=str(reading.value(logical_id, "Description", "")),
        layers=_layers(reading, logical_id),
        logging=_logging(reading, logical_id),
        concurrency=_local_option(
            reading, logical_id, "Concurrency", 1, limits.MAX_LOCAL_CONCURRENCY
        ),
        max_body_bytes=_local_option(
            reading, logical_id, "MaxBodyBytes", None, limits.MAX_API_PAYLOAD_BYTES
        ),
    )


def _runtime(reading: _Reading, logical_id: str) -> str:
    runtime = reading.value(logical_id, "Runtime")
    where = reading.where(logical_id, "Runtime")
    if not isinstance(runtime, str):
        raise TemplateError(where, "is required for a function packaged as a zip")
    if not runtime.startswith("python"):
        raise TemplateError(where, f"only Python functions run locally, got {runtime}")
    if runtime not in limits.PYTHON_RUNTIMES:
        raise TemplateError(where, f"must be one of {', '.join(limits.PYTHON_RUNTIMES)}")
    local = f"python{sys.version_info.major}.{sys.version_info.minor}"
    if _version(runtime) > _version(local):
        reading.warnings.append(
            f"{where}: declared {runtime}, runs here on {local}; code that needs the newer "
            "Python fails locally and not on AWS"
        )
    return runtime


def _version(runtime: str) -> tuple[int, ...]:
    return tuple(int(part) for part in runtime.removeprefix("python").split("."))


def _code_dir(reading: _Reading, logical_id: str) -> Path:
    code = reading.value(logical_id, "Code")
    where = reading.where(logical_id, "Code")
    if isinstance(code, dict) and "ZipFile" in code:
        return _inline_code(reading, logical_id, str(code["ZipFile"]))
    path = sam.local_code(reading.expanded, code)
    if path is None:
        raise TemplateError(where, "code in S3 or ECR cannot run locally: give a local CodeUri")
    local = Path(path)
    if local.is_file() and zipfile.is_zipfile(local):
        return _unzipped(reading, local)
    if not local.is_dir():
        raise TemplateError(where, f"{local} is not a folder or a zip file")
    return local


def _inline_code(reading: _Reading, logical_id: str, source: str) -> Path:
    """Inline code, written where Lambda writes it: index.py in the task root."""
    digest = hashlib.sha256(source.encode()).hexdigest()[:16]
    folder = reading.cache_dir / f"{logical_id}-{digest}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "index.py").write_text(source)
    return folder


def _unzipped(reading: _Reading, archive: Path) -> Path:
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()[:16]
    folder = reading.cache_dir / f"{archive.stem}-{digest}"
    if not folder.is_dir():
        partial = folder.with_suffix(".partial")
        shutil.rmtree(partial, ignore_errors=True)
        with zipfile.ZipFile(archive) as zipped:
            zipped.extractall(partial)
        partial.rename(folder)
    return folder


def _whole(
    reading: _Reading, logical_id: str, prop: str, default: int, low: int, high: int, unit: str
) -> int:
    """An integer property in range; AWS's API takes whole numbers, so 2.5 is refused."""
    raw = reading.value(logical_id, prop, default)
    return _whole_value(reading.where(logical_id, prop), raw, low, high, unit)


def _whole_value(where: str, raw: Any, low: int, high: int, unit: str) -> int:
    number: float
    if isinstance(raw, bool):
        raise TemplateError(where, f"must be a whole number of {unit}, got {raw}")
    if isinstance(raw, int | float):
        number = raw
    else:
        try:
            number = float(str(raw))
        except ValueError:
            raise TemplateError(where, f"must be a whole number of {unit}, got {raw!r}") from None
    if number != int(number):
        raise TemplateError(where, f"AWS takes whole {unit}, got {raw}")
    if not low <= number <= high:
        raise TemplateError(where, f"must be {low} to {high} {unit}, got {int(number)}")
    return int(number)


def _ephemeral(reading: _Reading, logical_id: str) -> int:
    storage = reading.value(logical_id, "EphemeralStorage", {})
    if not isinstance(storage, dict):
        raise TemplateError(reading.where(logical_id, "EphemeralStorage"), "must be {Size: MB}")
    return _whole_value(
        reading.where(logical_id, "EphemeralStorage.Size"),
        storage.get("Size", limits.DEFAULT_EPHEMERAL_MB),
        limits.MIN_EPHEMERAL_MB,
        limits.MAX_EPHEMERAL_MB,
        "MB",
    )


def _environment(reading: _Reading, logical_id: str) -> dict[str, str]:
    where = reading.where(logical_id, "Environment.Variables")
    environment = reading.value(logical_id, "Environment", {})
    variables = environment.get("Variables", {}) if isinstance(environment, dict) else None
    if not isinstance(variables, dict):
        raise TemplateError(where, "must map names to values")
    result: dict[str, str] = {}
    for name, value in variables.items():
        if not limits.VARIABLE_PATTERN.match(name):
            raise TemplateError(f"{where}.{name}", "names are a letter, then letters, digits, _")
        if name in limits.RESERVED_VARIABLES:
            raise TemplateError(f"{where}.{name}", "is reserved: Lambda sets it itself")
        result[name] = reading.resolver.text(value, f"{where}.{name}")
    size = sum(len(k.encode()) + len(v.encode()) for k, v in result.items())
    if size > limits.MAX_ENVIRONMENT_BYTES:
        raise TemplateError(
            where, f"{size} bytes in all, more than Lambda's {limits.MAX_ENVIRONMENT_BYTES}"
        )
    return result


def _layers(reading: _Reading, logical_id: str) -> tuple[Path, ...]:
    """Layers declared in this template with local content; others are named in a warning."""
    layers = reading.value(logical_id, "Layers", [])
    if not isinstance(layers, list):
        raise TemplateError(reading.where(logical_id, "Layers"), "must be a list")
    local: dict[str, Path] = {}
    for layer_id in reading.of_type(LAYER):
        content = sam.local_code(reading.expanded, reading.value(layer_id, "Content"))
        if content is not None:
            local[reading.resolver.lookup(layer_id, reading.where(layer_id))] = Path(content)
    found: list[Path] = []
    for index, arn in enumerate(layers):
        if arn in local:
            found.append(local[arn])
        else:
            reading.warnings.append(
                f"{reading.where(logical_id, f'Layers[{index}]')}: {arn} is not in this "
                "template, so it is not on the function's path locally"
            )
    return tuple(found)


def _logging(reading: _Reading, logical_id: str) -> Logging:
    where = reading.where(logical_id, "LoggingConfig")
    config = reading.value(logical_id, "LoggingConfig", {})
    if not isinstance(config, dict):
        raise TemplateError(where, "must be a mapping")
    log_format = config.get("LogFormat", "Text")
    if log_format not in limits.LOG_FORMATS:
        raise TemplateError(f"{where}.LogFormat", f"must be Text or JSON, got {log_format!r}")
    levels = {}
    for key in ("ApplicationLogLevel", "SystemLogLevel"):
        level = config.get(key)
        if level is None:
            continue
        if log_format != "JSON":
            raise TemplateError(f"{where}.{key}", "log levels need LogFormat: JSON")
        if level not in limits.LOG_LEVELS:
            raise TemplateError(
                f"{where}.{key}", f"must be one of {', '.join(limits.LOG_LEVELS)}, got {level!r}"
            )
        levels[key] = str(level)
    return Logging(
        log_format=str(log_format),
        application_log_level=levels.get("ApplicationLogLevel"),
        system_log_level=levels.get("SystemLogLevel"),
        log_group=str(config["LogGroup"]) if "LogGroup" in config else None,
    )


def _local_option(
    reading: _Reading, logical_id: str, key: str, default: int | None, high: int
) -> Any:
    """`Metadata: {LocalRuntime: {Concurrency: n, MaxBodyBytes: n}}`: what only the local
    runtime reads. Concurrency is execution environments per mapping here (AWS runs one per
    Amazon MQ mapping, so more is a divergence the user asks for); MaxBodyBytes refuses larger
    request bodies before they are read (the app's own limit, as its API answers it)."""
    metadata = reading.resources[logical_id].get("Metadata", {}) or {}
    options = metadata.get(METADATA_KEY, {}) if isinstance(metadata, dict) else {}
    where = reading.where(logical_id, f"Metadata.{METADATA_KEY}")
    if not isinstance(options, dict):
        raise TemplateError(where, "must be a mapping")
    unknown = sorted(set(options) - {"Concurrency", "MaxBodyBytes"})
    if unknown:
        raise TemplateError(
            f"{where}.{unknown[0]}", "unknown key (known: Concurrency, MaxBodyBytes)"
        )
    if key not in options:
        return default
    return _whole_value(f"{where}.{key}", options[key], 1, high, "")


# --- event source mappings ------------------------------------------------------------------


def _mq_source(reading: _Reading, logical_id: str) -> MqSource | None:
    where = reading.where
    function_ref = reading.value(logical_id, "FunctionName")
    function = reading.names.get(str(function_ref))
    if function is None:
        raise TemplateError(
            where(logical_id, "FunctionName"), f"{function_ref!r} is no function of this template"
        )
    arn = reading.value(logical_id, "EventSourceArn")
    broker = _broker(reading, arn)
    if broker is None:
        reading.warnings.append(
            f"{where(logical_id, 'EventSourceArn')}: {arn} is not an Amazon MQ for RabbitMQ "
            "broker; only those event sources are emulated, this mapping does not run"
        )
        return None
    _warn_unread(reading, logical_id, MAPPING_READ, frozenset())
    queues = reading.value(logical_id, "Queues")
    if not (isinstance(queues, list) and len(queues) == limits.MAX_QUEUES_PER_MAPPING):
        raise TemplateError(where(logical_id, "Queues"), "must list exactly one queue")
    window = reading.value(logical_id, "MaximumBatchingWindowInSeconds")
    return MqSource(
        logical_id=logical_id,
        function=function,
        broker=broker,
        queue=str(queues[0]),
        virtual_host=_virtual_host(reading, logical_id),
        batch_size=_whole(
            reading,
            logical_id,
            "BatchSize",
            limits.DEFAULT_BATCH_SIZE,
            limits.MIN_BATCH_SIZE,
            limits.MAX_BATCH_SIZE,
            "messages",
        ),
        maximum_batching_window=(
            limits.DEFAULT_BATCHING_WINDOW_SECONDS
            if window is None
            else _whole_value(
                where(logical_id, "MaximumBatchingWindowInSeconds"),
                window,
                0,
                limits.MAX_BATCHING_WINDOW_SECONDS,
                "seconds",
            )
        ),
        enabled=_boolean(reading, logical_id, "Enabled", True),
        filters=_filters(reading, logical_id),
    )


def _broker(reading: _Reading, arn: Any) -> Broker | None:
    for broker_id in reading.of_type(BROKER):
        if arn in (reading.resolver.lookup(broker_id, ""), _get_att(reading)(broker_id, "Arn")):
            engine = str(reading.value(broker_id, "EngineType", "RABBITMQ")).upper()
            if engine != "RABBITMQ":
                return None
            return Broker(str(_get_att(reading)(broker_id, "Arn")), broker_id)
    if isinstance(arn, str) and arn.split(":")[2:3] == ["mq"]:
        return Broker(arn)
    return None


def _virtual_host(reading: _Reading, logical_id: str) -> str | None:
    configs = reading.value(logical_id, "SourceAccessConfigurations", [])
    for config in configs if isinstance(configs, list) else []:
        if isinstance(config, dict) and config.get("Type") == "VIRTUAL_HOST":
            return str(config.get("URI", "/"))
    return None


def _boolean(reading: _Reading, logical_id: str, prop: str, default: bool) -> bool:
    value = reading.value(logical_id, prop, default)
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    if not isinstance(value, bool):
        raise TemplateError(
            reading.where(logical_id, prop), f"must be true or false, got {value!r}"
        )
    return value


def _filters(reading: _Reading, logical_id: str) -> tuple[str, ...]:
    where = reading.where(logical_id, "FilterCriteria.Filters")
    criteria = reading.value(logical_id, "FilterCriteria", {})
    filters = criteria.get("Filters", []) if isinstance(criteria, dict) else None
    if not isinstance(filters, list):
        raise TemplateError(where, "must be a list of {Pattern: ...}")
    if len(filters) > limits.MAX_FILTERS:
        raise TemplateError(where, f"at most {limits.MAX_FILTERS} filters, got {len(filters)}")
    patterns = []
    for index, item in enumerate(filters):
        pattern = item.get("Pattern") if isinstance(item, dict) else None
        if isinstance(pattern, dict):
            pattern = json.dumps(pattern)
        if not isinstance(pattern, str):
            raise TemplateError(f"{where}[{index}].Pattern", "is required (JSON text)")
        if len(pattern.encode()) > limits.MAX_FILTER_PATTERN_BYTES:
            raise TemplateError(f"{where}[{index}].Pattern", "is longer than 4096 bytes")
        try:
            parsed = json.loads(pattern)
        except ValueError as exc:
            raise TemplateError(f"{where}[{index}].Pattern", f"is not JSON: {exc}") from exc
        if not isinstance(parsed, dict):
            raise TemplateError(f"{where}[{index}].Pattern", "must be a JSON object")
        patterns.append(pattern)
    return tuple(patterns)


# --- schedules -----------------------------------------------------------------------------


def _schedules(reading: _Reading, logical_id: str) -> list[Schedule]:
    expression = reading.value(logical_id, "ScheduleExpression")
    if expression is None:
        reading.warnings.append(
            f"{reading.where(logical_id)}: only schedule rules are emulated, not event patterns"
        )
        return []
    where = reading.where(logical_id, "ScheduleExpression")
    try:
        schedules.parse(str(expression))
    except schedules.ScheduleError as exc:
        raise TemplateError(where, str(exc)) from exc
    state = str(reading.value(logical_id, "State", "ENABLED")).upper()
    targets = reading.value(logical_id, "Targets", [])
    found = []
    for index, target in enumerate(targets if isinstance(targets, list) else []):
        function = reading.names.get(str(target.get("Arn"))) if isinstance(target, dict) else None
        if function is None:
            continue
        unread = sorted(set(target) - {"Arn", "Id", "Input", "RoleArn"})
        if unread:
            reading.warnings.append(
                f"{reading.where(logical_id, f'Targets[{index}]')}: not emulated: "
                + ", ".join(unread)
            )
        payload = target.get("Input")
        found.append(
            Schedule(
                logical_id=logical_id,
                function=function,
                expression=str(expression),
                rule_name=_rule_name(reading, logical_id),
                enabled=state == "ENABLED",
                input=payload
                if isinstance(payload, str) or payload is None
                else json.dumps(payload),
            )
        )
    return found


# --- warnings --------------------------------------------------------------------------------


def _warn_unread(
    reading: _Reading, logical_id: str, read_here: frozenset[str], meaningless: frozenset[str]
) -> None:
    unread = sorted(set(reading.properties(logical_id)) - read_here - meaningless)
    if unread:
        reading.warnings.append(
            f"{reading.where(logical_id)}: not emulated locally: {', '.join(unread)}"
        )


def _warn_unemulated(reading: _Reading) -> None:
    handled = {FUNCTION, MAPPING, RULE, BROKER, LAYER} | QUIET_TYPES
    others = sorted(
        f"{logical_id} ({resource.get('Type')})"
        for logical_id, resource in reading.resources.items()
        if isinstance(resource, dict) and resource.get("Type") not in handled
    )
    if others:
        reading.warnings.append(
            f"{reading.document.path}: resources not emulated locally: {', '.join(others)}"
        )
