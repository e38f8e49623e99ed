"""Bad declarations are refused with a message naming the file and the field."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from local_runtime import declaration
from local_runtime.declaration import DeclarationError
from tests.helpers import FUNCTIONS
from tests.runtime.conftest import FUNCTIONS_DIR

VALID: dict[str, Any] = {
    "name": "probe",
    "handler": "handler.handler",
    "timeout": 3,
    "memory_size": 128,
    "environment": {"GREETING": "hello"},
    "event_source": {"type": "rabbitmq", "queue": "q", "exchange": "x", "routing_key": "k"},
}


def write(folder: Path, document: object) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "function.json"
    path.write_text(document if isinstance(document, str) else json.dumps(document))
    return path


def changed(path: str, value: object) -> dict[str, Any]:
    """VALID with one field set (value ...: removed); path like "event_source.batch_size"."""
    document = copy.deepcopy(VALID)
    *parents, last = path.split(".")
    target = document
    for part in parents:
        target = target[part]
    if value is ...:
        del target[last]
    else:
        target[last] = value
    return document


@pytest.mark.parametrize(
    ("field", "value", "named"),
    [
        ("name", ..., "name"),
        ("name", "has space", "name"),
        ("handler", "handler", "handler"),
        ("runtime", "python2.7", "runtime"),
        ("timeout", 0, "timeout"),
        ("timeout", 841, "timeout"),
        ("timeout", "3", "timeout"),
        ("memory_size", 64, "memory_size"),
        ("memory_size", 128.5, "memory_size"),
        ("memory_size", True, "memory_size"),
        ("environment", {"GREETING": 1}, "environment"),
        ("environment", ["GREETING"], "environment"),
        ("environment", {"AWS_REGION": "eu-west-1"}, "environment"),
        ("environment", {"_HANDLER": "x.y"}, "environment"),
        ("environment", {"1BAD": "x"}, "environment.1BAD"),
        ("environment", {"BIG": "x" * 4100}, "environment"),
        ("timout", 3, "timout"),
        ("event_source", "rule.age", "event_source"),
        ("event_source.type", "sqs", "event_source.type"),
        ("event_source.queue", ..., "event_source.queue"),
        ("event_source.queue", "", "event_source.queue"),
        ("event_source.exchange", 5, "event_source.exchange"),
        ("event_source.batch_size", 0, "event_source.batch_size"),
        ("event_source.batch_size", 10_001, "event_source.batch_size"),
        ("event_source.batch_size", 1.5, "event_source.batch_size"),
        ("event_source.maximum_batching_window", 301, "event_source.maximum_batching_window"),
        ("event_source.maximum_batching_window", -1, "event_source.maximum_batching_window"),
        ("event_source.concurrency", 0, "event_source.concurrency"),
        ("event_source.delivery_limit", 0, "event_source.delivery_limit"),
        ("event_source.batchsize", 10, "event_source.batchsize"),
    ],
)
def test_a_bad_field_is_refused_naming_file_and_field(tmp_path, field, value, named):
    path = write(tmp_path / "probe", changed(field, value))
    with pytest.raises(DeclarationError) as caught:
        declaration.load(path)
    assert caught.value.field_name == named
    assert str(caught.value).startswith(f"{path}: {named}: ")


@pytest.mark.parametrize(
    ("content", "problem"),
    [("{not json", "not valid JSON"), ("[1, 2]", "must hold a JSON object")],
)
def test_a_file_that_is_not_a_declaration_is_refused(tmp_path, content, problem):
    path = write(tmp_path / "probe", content)
    with pytest.raises(DeclarationError, match=problem) as caught:
        declaration.load(path)
    assert caught.value.path == str(path)


def test_a_missing_file_is_refused(tmp_path):
    with pytest.raises(DeclarationError, match="not found"):
        declaration.load(tmp_path / "nowhere")


def test_two_functions_with_one_name_are_refused(tmp_path):
    write(tmp_path / "one", VALID)
    write(tmp_path / "two", VALID)
    with pytest.raises(DeclarationError, match="'probe' is declared more than once") as caught:
        declaration.discover(tmp_path)
    assert caught.value.field_name == "name"


def test_variables_aws_does_not_reserve_are_accepted(tmp_path):
    environment = {"AWS_NODEJS_CONNECTION_REUSE_ENABLED": "1", "LAMBDA_STAGE": "dev"}
    spec = declaration.load(write(tmp_path / "probe", changed("environment", environment)))
    assert spec.environment == environment


def test_defaults_are_aws_defaults(tmp_path):
    spec = declaration.load(write(tmp_path / "probe", VALID))
    assert spec.event_source is not None
    assert (spec.event_source.batch_size, spec.event_source.maximum_batching_window) == (100, 0.5)
    assert spec.event_source.concurrency == 1
    assert spec.event_source.virtual_host == "/"
    assert spec.runtime == "python3.11"
    assert spec.directory == (tmp_path / "probe").resolve()


def test_every_shipped_and_test_declaration_loads():
    shipped = {spec.name for spec in declaration.discover(FUNCTIONS)}
    assert {"age_rule", "value_rule"} <= shipped
    test_functions = {spec.name for spec in declaration.discover(FUNCTIONS_DIR)}
    assert test_functions == {"env_a", "env_b", "noop", "recorder", "sleeper"}
