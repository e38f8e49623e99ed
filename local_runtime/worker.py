"""One execution environment: a process that imports the handler once, then serves invocations.

Started by the runtime as `python -m local_runtime.worker`, with the function's own environment
variables, its folder as the task root (first on sys.path) and two pipe descriptors.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import math
import os
import resource
import sys
import time
from multiprocessing.connection import Connection
from typing import Any

from local_runtime import protocol, python_runtime, sandbox
from local_runtime.context import LambdaContext

MEMORY_VARIABLE = "AWS_LAMBDA_FUNCTION_MEMORY_SIZE"


def max_memory_mb() -> int:
    return math.ceil(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def invoke(
    handler: python_runtime.Handler, message: dict[str, Any], memory_mb: int, function_arn: str
) -> tuple[bool, Any]:
    """Run the handler once; returns (True, (marshalled bytes, content type)) or (False,
    Lambda's error document). A TypeError the handler raises is a TypeError; only a result
    that cannot be marshalled is a Runtime.MarshalError, as on AWS."""
    request_id = message["request_id"]
    context = LambdaContext(
        function_name=os.environ["AWS_LAMBDA_FUNCTION_NAME"],
        memory_limit_in_mb=os.environ.get(MEMORY_VARIABLE, str(memory_mb)),
        aws_request_id=request_id,
        deadline_ms=message["deadline_ms"],
        invoked_function_arn=function_arn,
    )
    try:
        return True, python_runtime.marshal(handler(message["event"], context))
    except Exception as exc:  # any handler error fails the invocation, as on AWS
        document = python_runtime.error_document(exc, request_id)
        python_runtime.log_error(document)
        return False, document


def serve(
    requests: Connection,
    responses: Connection,
    spawned_at: float | None = None,
    function_arn: str = "",
) -> None:
    """Import the handler (the init phase), then answer invocations until the pipe closes.

    Init Duration counts from when the runtime spawned this process, as AWS's counts the
    runtime's own start-up along with the handler module's import. The worker's own output
    is only the handler's: the runtime writes the platform's lines (INIT_START, START, END,
    REPORT) from what it sent and what the result says.
    """
    refused = sandbox.enter(os.environ["LAMBDA_TASK_ROOT"])
    python_runtime.configure_logging()
    memory_mb = int(os.environ.get(MEMORY_VARIABLE, "128"))
    started = time.perf_counter() - (max(0.0, time.time() - spawned_at) if spawned_at else 0.0)
    sys.path.insert(0, os.environ["LAMBDA_TASK_ROOT"])
    try:
        handler = python_runtime.get_handler(os.environ["_HANDLER"])
    except Exception as exc:  # the init failed: AWS logs a warning and the error, and exits
        document = python_runtime.error_document(exc)
        logging.warning(python_runtime.LAMBDA_WARNING)
        python_runtime.log_error(document)
        _flush_output()
        init_ms = (time.perf_counter() - started) * 1000
        protocol.send(responses, protocol.INIT_ERROR, error=document, init_ms=init_ms)
        return
    init_ms = (time.perf_counter() - started) * 1000
    gc.freeze()  # the handler's modules stay for the worker's life: not the collector's work
    protocol.send(responses, protocol.READY, init_ms=init_ms, sandbox=refused)
    while True:
        try:
            message = protocol.receive(requests)
        except EOFError:
            return
        request_id = message["request_id"]
        python_runtime.REQUEST_ID.value = request_id
        began = time.perf_counter()
        ok, outcome = invoke(handler, message, memory_mb, function_arn)
        duration_ms = (time.perf_counter() - began) * 1000
        _flush_output()  # the runtime writes END once the result is in: output goes first
        head = {
            "request_id": request_id,
            "ok": ok,
            "duration_ms": duration_ms,
            "max_memory_mb": max_memory_mb(),
        }
        if ok:
            payload, content_type = outcome
            protocol.send_result(responses, head, payload, content_type)
        else:
            protocol.send(responses, protocol.RESULT, error=outcome, **head)


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
