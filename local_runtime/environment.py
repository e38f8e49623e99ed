"""The runtime's side of one execution environment: start, invoke with a deadline, kill."""

from __future__ import annotations

import contextlib
import logging
import math
import os
import select
import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any, TextIO

from local_runtime import priority, protocol
from local_runtime.context import LOG_GROUP_VARIABLE, LOG_STREAM_VARIABLE, log_stream_name
from local_runtime.declaration import FunctionSpec
from local_runtime.events import LOCAL_REGION

LOGGER = logging.getLogger(__name__)

INIT_TIMEOUT_SECONDS = 10.0  # Lambda's limit for the init phase
INHERITED = ("PATH", "LANG", "LC_ALL", "HOME", "TMPDIR", "VIRTUAL_ENV", "PYTHONPATH")
SERVICE_VARIABLES = ("AMQP_URL", "REDIS_URL", "MYSQL_URL")


class InvocationFailed(Exception):
    """The invocation did not return a result: handler error, timeout, crash or bad init."""

    def __init__(self, error_type: str, message: str, body: dict[str, Any] | None = None) -> None:
        self.error_type, self.body = error_type, body or {}
        super().__init__(f"{error_type}: {message}")


@dataclass(frozen=True)
class Invocation:
    request_id: str
    payload: Any
    duration_ms: float
    init_ms: float | None


def lambda_environment(
    spec: FunctionSpec, overrides: dict[str, str] | None = None
) -> dict[str, str]:
    """The environment one execution environment sees: Lambda's reserved variables, the
    function's declared ones, the service URLs, and a few basics from the runtime's own.
    Nothing else leaks from the runtime's environment, so functions stay isolated. Each call
    names a new log stream: one stream per execution environment, as on AWS."""
    env = {name: os.environ[name] for name in INHERITED if name in os.environ}
    env.update({name: os.environ[name] for name in SERVICE_VARIABLES if name in os.environ})
    env.update(spec.environment)
    env.update(overrides or {})
    env.update(
        {
            "AWS_LAMBDA_FUNCTION_NAME": spec.name,
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory_size),
            "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
            LOG_GROUP_VARIABLE: f"/aws/lambda/{spec.name}",
            LOG_STREAM_VARIABLE: log_stream_name(),
            "AWS_REGION": env.get("AWS_REGION", LOCAL_REGION),
            "AWS_DEFAULT_REGION": env.get("AWS_DEFAULT_REGION", LOCAL_REGION),
            "AWS_EXECUTION_ENV": f"AWS_Lambda_{spec.runtime}",
            "LAMBDA_TASK_ROOT": str(spec.directory),
            "LAMBDA_RUNTIME_DIR": os.path.dirname(sys.executable),
            "_HANDLER": spec.handler,
            "TZ": ":UTC",
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


@dataclass
class ExecutionEnvironment:
    """A worker process for one function; started lazily, replaced after a crash or timeout."""

    spec: FunctionSpec
    output: TextIO = field(default_factory=lambda: sys.stdout)
    env_overrides: dict[str, str] = field(default_factory=dict)
    _process: subprocess.Popen[bytes] | None = None
    _requests: Connection | None = None
    _responses: Connection | None = None
    _answers: select.poll | None = None
    _init_ms: float | None = None
    cold_starts: int = 0
    nice: int = 0  # how far below normal priority the worker runs (see local_runtime.priority)

    @property
    def alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def start(self) -> float:
        """Start the process and wait until the handler module is imported; returns init ms."""
        request_read, request_write = os.pipe()
        response_read, response_write = os.pipe()
        self._process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "local_runtime.worker",
                str(request_read),
                str(response_write),
                repr(time.time()),
            ],
            env=lambda_environment(self.spec, self.env_overrides),
            cwd=self.spec.directory,
            pass_fds=(request_read, response_write),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        priority.lower_process(self._process.pid, self.nice)
        os.close(request_read)
        os.close(response_write)
        self._requests = Connection(request_write, readable=False)
        self._responses = Connection(response_read, writable=False)
        # One poll object for the worker's life: Connection.poll() builds a new selector on
        # every call (four syscalls where one does).
        self._answers = select.poll()
        self._answers.register(response_read, select.POLLIN)
        threading.Thread(
            target=self._forward_output,
            args=(self._process,),
            daemon=True,
            name=f"{self.spec.name}-log",
        ).start()
        self.cold_starts += 1
        message = self._await(INIT_TIMEOUT_SECONDS, "Runtime.InitTimeout")
        if message["kind"] == protocol.INIT_ERROR:
            self.kill()
            error = message["error"]
            raise InvocationFailed(error["errorType"], error["errorMessage"], error)
        self._init_ms = float(message["init_ms"])
        return self._init_ms

    def invoke(self, event: dict[str, Any] | bytes, timeout: float | None = None) -> Invocation:
        """Invoke once; raises InvocationFailed on error, timeout (worker killed) or crash.

        `event` is the event itself or, from the mapping, its compact JSON.
        """
        if not self.alive:
            self.kill()  # a worker that died while idle: close its pipes now, not at GC
            self.start()
        assert self._requests is not None
        timeout = self.spec.timeout if timeout is None else timeout
        request_id = str(uuid.uuid4())
        began = time.monotonic()
        deadline_ms = int(time.time() * 1000 + timeout * 1000)
        init_ms, self._init_ms = self._init_ms, None
        try:
            encoded = event if isinstance(event, bytes) else protocol.encode(event)
            protocol.send_invoke(self._requests, request_id, encoded, deadline_ms)
        except OSError as exc:
            self.kill()
            raise InvocationFailed("Runtime.ExitError", f"worker exited: {exc}") from exc
        try:
            message = self._await(timeout, "Sandbox.Timedout", request_id=request_id)
        except InvocationFailed as failure:
            if failure.error_type == "Sandbox.Timedout":
                self._report_timeout(request_id, began, timeout, init_ms)
            raise
        if not message["ok"]:
            error = message["error"]
            raise InvocationFailed(error["errorType"], error["errorMessage"], error)
        duration_ms = float(message["duration_ms"])
        return Invocation(request_id, message.get("payload"), duration_ms, init_ms)

    def kill(self) -> None:
        process, self._process = self._process, None
        for conn in (self._requests, self._responses):
            if conn is not None:
                conn.close()
        self._requests = self._responses = None
        self._answers = None
        if process is not None and process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)  # the handler's own children go too
            process.wait()

    def stop(self, grace: float = 2.0) -> None:
        """Close the request pipe (the worker exits on EOF), then kill if it lingers."""
        process = self._process
        if self._requests is not None:
            self._requests.close()
            self._requests = None
        if process is not None:
            try:
                process.wait(grace)
            except subprocess.TimeoutExpired:
                LOGGER.warning(
                    "%s: worker %s did not exit, killing it", self.spec.name, process.pid
                )
        self.kill()

    def _await(
        self, timeout: float, timeout_type: str, request_id: str | None = None
    ) -> dict[str, Any]:
        assert self._responses is not None and self._answers is not None
        try:
            ready = self._answers.poll(math.ceil(max(0.0, timeout) * 1000))
            if ready:
                return protocol.receive(self._responses)
        except (EOFError, OSError):
            code = self._process.wait() if self._process else None
            self.kill()
            raise InvocationFailed(
                "Runtime.ExitError", f"worker exited with status {code} before answering"
            ) from None
        self.kill()
        raise InvocationFailed(timeout_type, f"no answer within {timeout:.2f} seconds")

    def _report_timeout(
        self, request_id: str, began: float, timeout: float, init_ms: float | None
    ) -> None:
        """The worker was killed before it could report: write its END and REPORT for it,
        with the Init Duration when the invocation was the worker's first."""
        elapsed = (time.monotonic() - began) * 1000
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
        init = "" if init_ms is None else f"\tInit Duration: {init_ms:.2f} ms"
        self._write(
            [
                f"{stamp}Z {request_id} Task timed out after {timeout:.2f} seconds",
                f"END RequestId: {request_id}",
                f"REPORT RequestId: {request_id}\tDuration: {elapsed:.2f} ms\t"
                f"Billed Duration: {math.ceil(elapsed + (init_ms or 0.0))} ms\t"
                f"Memory Size: {self.spec.memory_size} MB\tMax Memory Used: - MB{init}"
                "\tStatus: timeout",
            ]
        )

    def _forward_output(self, process: subprocess.Popen[bytes]) -> None:
        """Copy the worker's output, each line prefixed with the function's name, taking
        whatever the pipe holds at once: an invocation's lines cost one read and one write."""
        assert process.stdout is not None
        descriptor = process.stdout.fileno()
        partial = b""
        while True:
            try:
                chunk = os.read(descriptor, 65536)
            except OSError:
                chunk = b""
            if not chunk:
                break
            *lines, partial = (partial + chunk).split(b"\n")
            if lines:
                self._write([line.decode(errors="replace") for line in lines])
        if partial:
            self._write([partial.decode(errors="replace")])

    def _write(self, lines: list[str]) -> None:
        prefix = f"[{self.spec.name}] "
        text = "".join(f"{prefix}{line}\n" for line in lines)
        with _OUTPUT_LOCK:
            self.output.write(text)
            self.output.flush()


_OUTPUT_LOCK = threading.Lock()
