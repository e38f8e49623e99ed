"""Records every event it receives, and its context, as JSON lines in $RECORD_FILE.

Message bodies steer it: POISON always raises, FAIL_ONCE raises unless the message is a
redelivery, EXIT_ONCE ends the process unless it is a redelivery, PRINT writes a line to the
log, PARTIAL writes text with no newline (left in Python's buffer), FLOOD prints 5,000
numbered lines (more than a pipe holds). Importing the module
records an `import` line, so tests can count cold starts per process.
"""

from __future__ import annotations

import base64
import json
import os
import sys
import time
from typing import Any

SMALL_EVENT_BYTES = 64 * 1024  # larger events are recorded by size only


def record(kind: str, **fields: Any) -> None:
    line = json.dumps({"kind": kind, "pid": os.getpid(), "time": time.time(), **fields})
    descriptor = os.open(os.environ["RECORD_FILE"], os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        os.write(descriptor, (line + "\n").encode())
    finally:
        os.close(descriptor)


record("import")


def context_fields(context: Any) -> dict[str, Any]:
    return {
        "function_name": context.function_name,
        "function_version": context.function_version,
        "invoked_function_arn": context.invoked_function_arn,
        "memory_limit_in_mb": context.memory_limit_in_mb,
        "aws_request_id": context.aws_request_id,
        "log_group_name": context.log_group_name,
        "log_stream_name": context.log_stream_name,
        "identity": {
            "cognito_identity_id": context.identity.cognito_identity_id,
            "cognito_identity_pool_id": context.identity.cognito_identity_pool_id,
        },
        "client_context": context.client_context,
        "tenant_id": getattr(context, "tenant_id", "(missing)"),
        "environment_log_stream": os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME"),
        "remaining_ms": context.get_remaining_time_in_millis(),
    }


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    started = time.time()
    size = len(json.dumps(event, separators=(",", ":")))
    messages = [
        {"queue_key": key, "message": message}
        for key, batch in event["rmqMessagesByQueue"].items()
        for message in batch
    ]
    bodies = [base64.b64decode(item["message"]["data"]) for item in messages]
    record(
        "invoke",
        started=started,
        event_bytes=size,
        event=event if size <= SMALL_EVENT_BYTES else None,
        bodies=[body[:200].decode(errors="replace") for body in bodies],
        body_sizes=[len(body) for body in bodies],
        redelivered=[item["message"]["redelivered"] for item in messages],
        context=context_fields(context),
    )
    for item, body in zip(messages, bodies, strict=True):
        if b"PRINT" in body:
            print(f"handler output for {context.aws_request_id}")
        if b"FLOOD" in body:
            for number in range(5000):
                print(f"flood {number:04d} {'x' * 60}")
        if b"PARTIAL" in body:
            sys.stdout.write(f"unfinished line of {context.aws_request_id}")
        if b"POISON" in body:
            raise ValueError("poison message")
        if b"FAIL_ONCE" in body and not item["message"]["redelivered"]:
            raise RuntimeError("failing the first delivery")
        if b"EXIT_ONCE" in body and not item["message"]["redelivered"]:
            os._exit(3)
    return {"messages": len(messages)}
