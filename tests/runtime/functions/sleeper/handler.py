"""Sleeps $SLEEP_SECONDS on a first delivery (past its timeout, by default), records in
$RECORD_FILE when it starts and when it finishes, with the remaining time each time."""

from __future__ import annotations

import json
import os
import time
from typing import Any


def record(kind: str, **fields: Any) -> None:
    line = json.dumps({"kind": kind, "pid": os.getpid(), "time": time.time(), **fields})
    descriptor = os.open(os.environ["RECORD_FILE"], os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        os.write(descriptor, (line + "\n").encode())
    finally:
        os.close(descriptor)


record("import")


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    messages = [m for batch in event["rmqMessagesByQueue"].values() for m in batch]
    redelivered = [m["redelivered"] for m in messages]
    record(
        "start",
        request_id=context.aws_request_id,
        redelivered=redelivered,
        data=[m["data"] for m in messages],
        remaining_ms=context.get_remaining_time_in_millis(),
    )
    if os.environ.get("SLEEP_ALWAYS") or not any(redelivered):
        print(f"sleeping in {context.aws_request_id}", flush=True)
        time.sleep(0.2)
        middle = context.get_remaining_time_in_millis()
        record("middle", request_id=context.aws_request_id, remaining_ms=middle)
        time.sleep(float(os.environ.get("SLEEP_SECONDS", "30")))
    record(
        "end",
        request_id=context.aws_request_id,
        remaining_ms=context.get_remaining_time_in_millis(),
    )
    return {"slept": not any(redelivered)}
