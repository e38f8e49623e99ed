"""One execution environment: a process that imports the handler once, then serves invocations.

Started by the runtime as `python -m local_runtime.worker`, with the function's own environment
variables, its folder as the task root (first on sys.path) and two pipe descriptors.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import json
import logging
import math
import os
import resource
import sys
import time
import traceback
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

from local_runtime import protocol
from local_runtime.context import LambdaContext

Handler = Callable[[Any, Any], Any]
MEMORY_VARIABLE = "AWS_LAMBDA_FUNCTION_MEMORY_SIZE"


def error_body(exc: BaseException, error_type: str | None = None) -> dict[str, Any]:
    """The error document Lambda returns for an unhandled exception."""
    return {
        "errorMessage": str(exc),
        "errorType": error_type or type(exc).__name__,
        "requestId": "",
        "stackTrace": traceback.format_list(traceback.extract_tb(exc.__traceback__)),
    }


def max_memory_mb() -> int:
    return math.ceil(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def load_handler(task_root: str, spec: str) -> Handler:
    sys.path.insert(0, task_root)
    module_name, function_name = spec.rsplit(".", 1)
    module = importlib.import_module(module_name)
    handler: Handler = getattr(module, function_name)
    return handler


def invoke(
    handler: Handler, message: dict[str, Any], memory_mb: int, function_arn: str
) -> tuple[bool, Any]:
    """Run the handler once; returns (ok, payload or Lambda error document)."""
    context = LambdaContext(
        function_name=os.environ["AWS_LAMBDA_FUNCTION_NAME"],
        memory_limit_in_mb=os.environ.get(MEMORY_VARIABLE, str(memory_mb)),
        aws_request_id=message["request_id"],
        deadline_ms=message["deadline_ms"],
        invoked_function_arn=function_arn,
    )
    try:
        payload = handler(message["event"], context)
        json.dumps(payload)
    except Exception as exc:  # any handler error fails the invocation, as on AWS
        error_type = "Runtime.MarshalError" if isinstance(exc, TypeError) else None
        body = error_body(exc, error_type)
        body["requestId"] = message["request_id"]
        print(f"[ERROR] {body['errorType']}: {body['errorMessage']}", flush=True)
        traceback.print_exc(file=sys.stdout)
        return False, body
    return True, payload


class _RequestIdFilter(logging.Filter):
    """Adds the current request id to every record, as Lambda's log handler does."""

    request_id = ""

    def filter(self, record: logging.LogRecord) -> bool:
        record.aws_request_id = self.request_id
        return True


REQUEST_ID = _RequestIdFilter()


def configure_logging() -> None:
    """Root logger like Lambda's Python runtime: level, time, request id, message; to stdout."""
    handler = logging.StreamHandler(sys.stdout)
    handler.addFilter(REQUEST_ID)
    handler.setFormatter(
        logging.Formatter(
            "[%(levelname)s]\t%(asctime)s.%(msecs)03dZ\t%(aws_request_id)s\t%(message)s",
            "%Y-%m-%dT%H:%M:%S",
        )
    )
    logging.Formatter.converter = time.gmtime
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(os.environ.get("AWS_LAMBDA_LOG_LEVEL", "WARNING").upper())


def serve(
    requests: Connection,
    responses: Connection,
    spawned_at: float | None = None,
    function_arn: str = "",
) -> None:
    """Import the handler (the init phase), then answer invocations until the pipe closes.

    Init Duration counts from when the runtime spawned this process, as AWS's counts the
    runtime's own start-up along with the handler module's import. The worker's own output
    is only the handler's: the runtime writes each invocation's START, END and REPORT lines,
    from what it sent and what the result says.
    """
    configure_logging()
    memory_mb = int(os.environ.get(MEMORY_VARIABLE, "128"))
    started = time.perf_counter() - (max(0.0, time.time() - spawned_at) if spawned_at else 0.0)
    try:
        handler = load_handler(os.environ["LAMBDA_TASK_ROOT"], os.environ["_HANDLER"])
    except Exception as exc:  # reported to the runtime as Runtime.ImportModuleError
        traceback.print_exc(file=sys.stdout)
        error = error_body(exc, "Runtime.ImportModuleError")
        protocol.send(responses, protocol.INIT_ERROR, error=error)
        return
    init_ms = (time.perf_counter() - started) * 1000
    gc.freeze()  # the handler's modules stay for the worker's life: not the collector's work
    protocol.send(responses, protocol.READY, init_ms=init_ms)
    while True:
        try:
            message = protocol.receive(requests)
        except EOFError:
            return
        request_id = message["request_id"]
        REQUEST_ID.request_id = request_id
        began = time.perf_counter()
        ok, payload = invoke(handler, message, memory_mb, function_arn)
        duration_ms = (time.perf_counter() - began) * 1000
        _flush_output()  # the runtime writes END once the result is in: output goes first
        fields = {"payload": payload} if ok else {"error": payload}
        protocol.send(
            responses,
            protocol.RESULT,
            request_id=request_id,
            ok=ok,
            duration_ms=duration_ms,
            max_memory_mb=max_memory_mb(),
            **fields,
        )


def _flush_output() -> None:
    """Push what the handler left in Python's buffers (a line without its newline, say)
    into the pipe; a handler that replaced or closed a stream does not fail the result."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError, AttributeError):
            stream.flush()


def main() -> None:
    requests = Connection(int(sys.argv[1]), writable=False)
    responses = Connection(int(sys.argv[2]), readable=False)
    spawned_at = float(sys.argv[3]) if len(sys.argv) > 3 else None
    function_arn = sys.argv[4] if len(sys.argv) > 4 else ""
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    serve(requests, responses, spawned_at, function_arn)


if __name__ == "__main__":
    main()
