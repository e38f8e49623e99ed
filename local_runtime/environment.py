"""The runtime's side of one execution environment: start, invoke with a deadline, kill."""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import math
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import IO, Any, TextIO

from declarations.model import Function
from local_runtime import priority, protocol, sandbox
from local_runtime.context import LOG_GROUP_VARIABLE, LOG_STREAM_VARIABLE, log_stream_name
from local_runtime.platform_log import SUCCESS, Outcome, PlatformLog

LOGGER = logging.getLogger(__name__)

INIT_TIMEOUT_SECONDS = 10.0  # Lambda's limit for the init phase
# What every execution environment gets from the runtime's own environment: enough to run
# Python (PATH, the locale, the interpreter's packages); nothing else leaks in unasked.
# HOME and TMPDIR are the environment's own (see local_runtime.sandbox), never the host's.
BASICS = ("PATH", "LANG", "LC_ALL", "VIRTUAL_ENV", "PYTHONPATH")


class InvocationFailed(Exception):
    """The invocation did not return a result: handler error, timeout, crash or bad init."""

    def __init__(self, error_type: str, message: str, body: dict[str, Any] | None = None) -> None:
        self.error_type, self.body = error_type, body or {}
        super().__init__(f"{error_type}: {message}")


@dataclass(frozen=True)
class Invocation:
    """A result: the handler's response as Lambda marshalled it, and its timings."""

    request_id: str
    raw: bytes  # the marshalled response
    content_type: str  # application/json, or application/unknown for bytes the handler returned
    duration_ms: float
    init_ms: float | None

    @property
    def payload(self) -> Any:
        """The response as the caller of a synchronous invoke reads it."""
        return json.loads(self.raw) if self.content_type == "application/json" else self.raw


@dataclass(frozen=True)
class Site:
    """Where functions run: the region and account their ARNs name, and what the user chose
    to pass in from outside the template."""

    region: str = "us-east-1"
    account: str = "000000000000"
    inherit: tuple[str, ...] = ()  # --inherit-env: taken from the runtime's own environment
    # --env-vars, SAM CLI's format: {"Parameters": {...}} for all, {"<LogicalId>": {...}} for one
    env_vars: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    def overrides(self, function: Function) -> dict[str, str]:
        """The --env-vars values for a function: only variables its template declares, as
        SAM CLI does (an undeclared one is named by `undeclared()`)."""
        chosen = {
            **self.env_vars.get("Parameters", {}),
            **self.env_vars.get(function.logical_id, {}),
        }
        return {name: str(value) for name, value in chosen.items() if name in function.environment}

    def undeclared(self, function: Function) -> list[str]:
        chosen = {
            **self.env_vars.get("Parameters", {}),
            **self.env_vars.get(function.logical_id, {}),
        }
        return sorted(set(chosen) - set(function.environment))


def function_arn(name: str, site: Site) -> str:
    return f"arn:aws:lambda:{site.region}:{site.account}:function:{name}"


def lambda_environment(function: Function, site: Site) -> dict[str, str]:
    """The environment one execution environment sees: a few basics from the runtime's own,
    the function's declared variables (with --env-vars and --inherit-env applied), then
    Lambda's reserved ones. Each call names a new log stream: one per environment, as on AWS."""
    env = {name: os.environ[name] for name in BASICS if name in os.environ}
    env.update(function.environment)
    env.update(site.overrides(function))
    env.update({name: os.environ[name] for name in site.inherit if name in os.environ})
    env.update(
        {
            "AWS_LAMBDA_FUNCTION_NAME": function.name,
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(function.memory_size),
            "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
            LOG_GROUP_VARIABLE: function.logging.log_group or f"/aws/lambda/{function.name}",
            LOG_STREAM_VARIABLE: log_stream_name(),
            "AWS_REGION": site.region,
            "AWS_DEFAULT_REGION": site.region,
            "AWS_EXECUTION_ENV": f"AWS_Lambda_{function.runtime}",
            "LAMBDA_TASK_ROOT": str(function.code_dir),
            "LAMBDA_RUNTIME_DIR": os.path.dirname(sys.executable),
            "_HANDLER": function.handler,
            "TZ": ":UTC",
            "PYTHONUNBUFFERED": "1",
            # Lambda's task root is read-only, so no bytecode is written beside the code; here
            # that also keeps a file edited twice within a second (watch mode) from running
            # from a stale .pyc of the same size and mtime.
            "PYTHONDONTWRITEBYTECODE": "1",
            # As SAM CLI sets it: code may tell it runs locally (and pick local endpoints).
            "AWS_SAM_LOCAL": "true",
        }
    )
    if function.logging.log_format == "JSON":
        # As Lambda sets them for a function with LoggingConfig's JSON format.
        env["AWS_LAMBDA_LOG_FORMAT"] = "JSON"
        env["AWS_LAMBDA_LOG_LEVEL"] = function.logging.application_log_level or "INFO"
    if function.layers:
        paths = [
            str(layer / "python") if (layer / "python").is_dir() else str(layer)
            for layer in function.layers
        ]
        env["PYTHONPATH"] = os.pathsep.join([*paths, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


@dataclass
class _Init:
    """How one init attempt ended: READY (ok), an error document, or the deadline passed."""

    duration_ms: float
    error: dict[str, Any] | None = None
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None and not self.timed_out

    @property
    def outcome(self) -> Outcome:
        if self.timed_out:
            return Outcome("timeout")
        assert self.error is not None
        return Outcome("error", self.error["errorType"])


@dataclass
class ExecutionEnvironment:
    """A worker process for one function; started lazily, replaced after a crash or timeout.

    Its init phase is Lambda's on-demand one: INIT_START, then the handler's import under a
    10 s limit. An init that fails or times out is written up (INIT_REPORT) and tried again
    inside the first invocation, under the function's own timeout, as Lambda does; if that
    fails too, the invocation fails with the init's error.
    """

    spec: Function
    output: TextIO = field(default_factory=lambda: sys.stdout)
    site: Site = field(default_factory=Site)
    _process: subprocess.Popen[bytes] | None = None
    _requests: Connection | None = None
    _responses: Connection | None = None
    _answers: select.poll | None = None
    _output: _WorkerOutput | None = None
    _init_ms: float | None = None
    _private: str | None = None  # the fallback HOME and TMPDIR, when there is no namespace
    cold_starts: int = 0
    nice: int = 0  # how far below normal priority the worker runs (see local_runtime.priority)
    init_timeout: float = INIT_TIMEOUT_SECONDS  # Lambda's; tests may shorten it

    def __post_init__(self) -> None:
        self.platform = PlatformLog(
            self.spec.name, self.spec.memory_size, self.site.region, self.spec.logging, self._write
        )

    @property
    def function_arn(self) -> str:
        return function_arn(self.spec.name, self.site)

    @property
    def alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def start(self) -> float:
        """The init phase alone: start the worker and wait (10 s at most) for the handler's
        import; returns its Init Duration, or raises InvocationFailed with the init's error."""
        attempt = self._init(self.init_timeout, "init")
        if not attempt.ok:
            raise self._init_failure(attempt)
        return attempt.duration_ms

    def _init(self, limit: float, phase: str) -> _Init:
        self._spawn()
        began = time.monotonic()
        self._write(self.platform.init_start())
        try:
            message = self._await(limit, "Sandbox.Timedout")
        except InvocationFailed as failure:
            elapsed = (time.monotonic() - began) * 1000
            timed_out = failure.error_type == "Sandbox.Timedout"
            error = None if timed_out else failure.body
            attempt = _Init(elapsed, error, timed_out)
        else:
            if message["kind"] == protocol.INIT_ERROR:
                self.kill()
                attempt = _Init(float(message.get("init_ms", 0.0)), message["error"])
            else:
                self._init_ms = float(message["init_ms"])
                _note_sandbox(message.get("sandbox"))
                return _Init(self._init_ms)
        assert self._output is not None
        self._output.pump(finish_line=True)
        self._write(self.platform.init_report(attempt.duration_ms, phase, attempt.outcome))
        return attempt

    def _init_failure(self, attempt: _Init) -> InvocationFailed:
        if attempt.error is not None:
            error = attempt.error
            return InvocationFailed(error["errorType"], error["errorMessage"], error)
        message = f"INIT phase timed out after {attempt.duration_ms / 1000:.2f} seconds"
        return InvocationFailed(
            "Sandbox.Timedout", message, {"errorType": "Sandbox.Timedout", "errorMessage": message}
        )

    def _spawn(self) -> None:
        request_read, request_write = os.pipe()
        response_read, response_write = os.pipe()
        self._private = tempfile.mkdtemp(prefix=f"local-runtime-{self.spec.name}-")
        env = lambda_environment(self.spec, self.site)
        env[sandbox.PRIVATE_DIR_VARIABLE] = self._private
        env[sandbox.EPHEMERAL_VARIABLE] = str(self.spec.ephemeral_storage)
        self._process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "local_runtime.worker",
                str(request_read),
                str(response_write),
                repr(time.time()),
                self.function_arn,
            ],
            env=env,
            cwd=self.spec.code_dir,
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
        assert self._process.stdout is not None
        self._output = _WorkerOutput(self._process.stdout, self._write)
        threading.Thread(
            target=self._output.forward, daemon=True, name=f"{self.spec.name}-log"
        ).start()
        self.cold_starts += 1

    def invoke(self, event: dict[str, Any] | bytes, timeout: float | None = None) -> Invocation:
        """Invoke once; raises InvocationFailed on error, timeout (worker killed) or crash.

        `event` is the event itself or, from the mapping, its compact JSON.
        """
        timeout = self.spec.timeout if timeout is None else timeout
        request_id = str(uuid.uuid4())
        began = time.monotonic()
        if not self.alive:
            self.kill()  # a worker that died while idle: close its pipes now, not at GC
            self._cold_start(request_id, began, timeout)
        assert self._requests is not None and self._output is not None
        output = self._output
        deadline = began + timeout
        deadline_ms = int(time.time() * 1000 + (deadline - time.monotonic()) * 1000)
        init_ms, self._init_ms = self._init_ms, None
        # Written before the worker has the event, so nothing it prints can come before it.
        self._write(self.platform.start(request_id))
        try:
            encoded = event if isinstance(event, bytes) else protocol.encode(event)
            protocol.send_invoke(self._requests, request_id, encoded, deadline_ms)
        except OSError as exc:
            process = self._process
            self.kill()
            failure = self._exited(request_id, process.returncode if process else None)
            self._report_failure(output, failure, request_id, began, timeout, init_ms)
            raise failure from exc
        try:
            message = self._await(deadline - time.monotonic(), "Sandbox.Timedout", request_id)
        except InvocationFailed as failure:
            self._report_failure(output, failure, request_id, began, timeout, init_ms)
            raise
        duration_ms = float(message["duration_ms"])
        if not message["ok"]:
            error = message["error"]
            self._end(
                output,
                request_id,
                duration_ms,
                message.get("max_memory_mb"),
                init_ms,
                Outcome("error", error["errorType"]),
            )
            raise InvocationFailed(error["errorType"], error["errorMessage"], error)
        self._end(output, request_id, duration_ms, message.get("max_memory_mb"), init_ms)
        return Invocation(
            request_id, _payload(message), message["content_type"], duration_ms, init_ms
        )

    def _cold_start(self, request_id: str, began: float, timeout: float) -> None:
        """The init phase, and Lambda's second try inside the invocation when it fails."""
        if self._init(self.init_timeout, "init").ok:
            return
        began = time.monotonic()  # the invocation's own time starts with its init
        attempt = self._init(timeout, "invoke")
        if attempt.ok:
            self._init_ms = None  # a suppressed init is part of the invocation's Duration
            return
        failure = self._init_failure(attempt)
        elapsed = (time.monotonic() - began) * 1000
        lines = self.platform.start(request_id)
        if attempt.timed_out:
            lines += self.platform.timed_out(request_id, timeout)
        else:
            lines += self.platform.init_failed(failure.error_type)
        lines += self.platform.end(request_id, elapsed, None, None, attempt.outcome)
        self._write(lines)
        raise failure

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
        private, self._private = self._private, None
        if private is not None:
            shutil.rmtree(private, ignore_errors=True)  # the environment's /tmp goes with it

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
            raise self._exited(request_id, code) from None
        self.kill()
        raise InvocationFailed(timeout_type, f"no answer within {timeout:.2f} seconds")

    @staticmethod
    def _exited(request_id: str | None, code: int | None) -> InvocationFailed:
        """Runtime.ExitError with the error document AWS returns for a runtime that exited."""
        message = f"Runtime exited with error: {exit_status(code)}"
        if request_id is not None:
            message = f"RequestId: {request_id} Error: {message}"
        return InvocationFailed(
            "Runtime.ExitError",
            message,
            {"errorType": "Runtime.ExitError", "errorMessage": message},
        )

    def _report_failure(
        self,
        output: _WorkerOutput,
        failure: InvocationFailed,
        request_id: str,
        began: float,
        timeout: float,
        init_ms: float | None,
    ) -> None:
        """The worker was killed at its deadline, or died, before it answered: the lines
        AWS's platform writes for a timeout or for a runtime that exited."""
        elapsed = (time.monotonic() - began) * 1000
        if failure.error_type == "Sandbox.Timedout":
            self._end(
                output,
                request_id,
                elapsed,
                None,
                init_ms,
                Outcome("timeout"),
                before=self.platform.timed_out(request_id, timeout),
            )
        else:
            self._end(
                output,
                request_id,
                elapsed,
                None,
                init_ms,
                Outcome("error", "Runtime.ExitError"),
                after=[failure.body["errorMessage"], "Runtime.ExitError"],
            )

    def _end(
        self,
        output: _WorkerOutput,
        request_id: str,
        duration_ms: float,
        max_memory_mb: int | None,
        init_ms: float | None,
        outcome: Outcome = SUCCESS,
        before: Sequence[str] = (),
        after: Sequence[str] = (),
    ) -> None:
        """Close an invocation's log frame: what the handler printed last, then END and
        REPORT (with a Status when the invocation did not succeed)."""
        output.pump(finish_line=True)
        ended = self.platform.end(request_id, duration_ms, max_memory_mb, init_ms, outcome)
        self._write([*before, *ended, *after])

    def _write(self, lines: list[str]) -> None:
        if not lines:
            return
        prefix = f"[{self.spec.name}] "
        text = "".join(f"{prefix}{line}\n" for line in lines)
        with _OUTPUT_LOCK:
            self.output.write(text)
            self.output.flush()


_SANDBOX_NOTED: set[str] = set()


def _note_sandbox(refused: str | None) -> None:
    """Say once per runtime when workers cannot have Lambda's filesystem, and why."""
    if refused and refused not in _SANDBOX_NOTED:
        _SANDBOX_NOTED.add(refused)
        LOGGER.info(
            "no private /tmp or read-only code folder for functions here (%s): each execution "
            "environment gets a private HOME and TMPDIR instead",
            refused,
        )


def _payload(message: dict[str, Any]) -> bytes:
    return base64.b64decode(message["payload_b64"])


_OUTPUT_LOCK = threading.Lock()


def exit_status(code: int | None) -> str:
    """A process's end as AWS's platform words it: 'exit status 1', 'signal: killed'."""
    if code is None:
        return "unknown"
    if code < 0:
        try:
            name = signal.strsignal(-code) or f"signal {-code}"
        except ValueError:
            name = f"signal {-code}"
        return f"signal: {name[:1].lower()}{name[1:]}"
    return f"exit status {code}"


class _WorkerOutput:
    """A worker's stdout and stderr, copied to the runtime's output with the function's
    prefix. A thread copies whatever arrives; an invocation that has its result copies what
    is left before it writes END, so a handler's lines always come before its END."""

    def __init__(self, stream: IO[bytes], write: Callable[[list[str]], None]) -> None:
        self._stream = stream
        self._descriptor = stream.fileno()
        os.set_blocking(self._descriptor, False)
        self._write = write
        self._lock = threading.Lock()
        self._partial = b""
        self._ended = False

    def forward(self) -> None:
        """The copying thread: sleeps until the pipe has data or closes; ends at EOF."""
        waiter = select.poll()
        waiter.register(self._descriptor, select.POLLIN)
        try:
            while not self._ended:
                waiter.poll()
                self.pump()
        finally:
            # Only this thread closes the pipe, and only once pump() will no longer read it:
            # a descriptor number closed under a reader could be reused by another file.
            with self._lock:
                self._ended = True
                self._stream.close()

    def pump(self, finish_line: bool = False) -> None:
        """Copy what the pipe holds now, taking it all at once: an invocation's lines cost
        one read and one write. `finish_line` writes an unfinished last line too."""
        with self._lock:
            if self._ended:
                return
            chunks = [self._partial]
            while True:
                try:
                    chunk = os.read(self._descriptor, 65536)
                except BlockingIOError:
                    break
                except OSError:
                    chunk = b""
                if not chunk:
                    self._ended = True
                    break
                chunks.append(chunk)
            *lines, self._partial = b"".join(chunks).split(b"\n")
            if self._partial and (finish_line or self._ended):
                lines.append(self._partial)
                self._partial = b""
            if lines:
                self._write([line.decode(errors="replace") for line in lines])
