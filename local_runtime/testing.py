"""A pytest plugin for users' own tests: the runtime's events, contexts and environments.

Installed with the package (entry point `pytest11`), it gives every test suite three fixtures:

- `rmq_event(queue, messages, virtual_host="/")`: the `aws:rmq` event the runtime would send
  for these messages (bodies, or `(body, pika.BasicProperties)` pairs), built by the same code;
- `lambda_context(function_name=..., timeout=3, memory_mb=128)`: a Lambda context object with
  a real remaining-time clock;
- `lambda_function(name, template=None)`: a function of a SAM or CloudFormation template in a
  real execution environment (its own process, variables and init), whose `invoke(event)`
  returns the result with the log lines of that invocation, or the error Lambda would return.

The template defaults to the `local_runtime_template` ini option, else `template.yaml` in the
rootdir.
"""

from __future__ import annotations

import io
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pika
import pytest

from declarations.reader import read
from local_runtime.context import LambdaContext
from local_runtime.environment import ExecutionEnvironment, InvocationFailed, Site, function_arn
from local_runtime.events import Delivery, broker_arn, build_event

Message = bytes | tuple[bytes, pika.BasicProperties]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(
        "local_runtime_template",
        "the SAM or CloudFormation template the lambda_function fixture reads",
        default="template.yaml",
    )


@dataclass
class Result:
    """One invocation: the payload (parsed JSON, or bytes), or Lambda's error document."""

    payload: Any
    error: dict[str, Any] | None
    logs: list[str]

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class DeclaredFunction:
    """A declared function in an execution environment of its own, started on first use."""

    environment: ExecutionEnvironment
    output: io.StringIO = field(default_factory=io.StringIO)

    def invoke(self, event: Any) -> Result:
        start = len(self.output.getvalue())
        try:
            invocation = self.environment.invoke(event)
        except InvocationFailed as failure:
            body = failure.body or {"errorType": failure.error_type, "errorMessage": str(failure)}
            return Result(None, body, self._lines(start))
        return Result(invocation.payload, None, self._lines(start))

    def _lines(self, start: int) -> list[str]:
        return self.output.getvalue()[start:].splitlines()


@pytest.fixture
def rmq_event() -> Callable[..., dict[str, Any]]:
    def build(
        queue: str, messages: Sequence[Message], virtual_host: str = "/", redelivered: bool = False
    ) -> dict[str, Any]:
        deliveries = []
        for message in messages:
            body, properties = (
                message if isinstance(message, tuple) else (message, pika.BasicProperties())
            )
            deliveries.append(Delivery(body, properties, redelivered))
        return build_event(queue, deliveries, broker_arn("127.0.0.1", 5672), virtual_host)

    return build


@pytest.fixture
def lambda_context() -> Callable[..., LambdaContext]:
    def build(
        function_name: str = "function", timeout: float = 3, memory_mb: int = 128
    ) -> LambdaContext:
        return LambdaContext(
            function_name=function_name,
            memory_limit_in_mb=str(memory_mb),
            aws_request_id=str(uuid.uuid4()),
            deadline_ms=int((time.time() + timeout) * 1000),
            invoked_function_arn=function_arn(function_name, Site()),
        )

    return build


@pytest.fixture
def lambda_function(request: pytest.FixtureRequest) -> Iterator[Callable[..., DeclaredFunction]]:
    started: list[DeclaredFunction] = []
    default = Path(request.config.rootpath) / request.config.getini("local_runtime_template")

    def start(
        name: str,
        template: Path | str | None = None,
        env_vars: dict[str, str] | None = None,
        parameters: dict[str, str] | None = None,
        exports: dict[str, str] | None = None,
    ) -> DeclaredFunction:
        project = read(template or default, parameters=parameters, exports=exports)
        function = project.function(name)
        site = Site(project.region, project.account, env_vars={"Parameters": env_vars or {}})
        output = io.StringIO()
        declared = DeclaredFunction(
            ExecutionEnvironment(function, output=output, site=site), output
        )
        started.append(declared)
        return declared

    yield start
    for declared in started:
        declared.environment.stop()
