"""Messages between the runtime and a worker process: length-prefixed JSON over two pipes."""

from __future__ import annotations

import json
from multiprocessing.connection import Connection
from typing import Any

import orjson

# Worker -> runtime
READY = "ready"  # {"init_ms": float} after the handler module imported
INIT_ERROR = "init_error"  # {"error": {...}} when the import failed
RESULT = "result"  # {"request_id", "ok": bool, "payload" | "error", "duration_ms", "max_memory_mb"}
# Runtime -> worker
INVOKE = "invoke"  # {"request_id", "event", "deadline_ms"}


def encode(value: object) -> bytes:
    """Compact JSON of anything json.dumps takes."""
    try:
        return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS)
    except TypeError:  # what orjson refuses and json takes (integers over 64 bits)
        return json.dumps(value, separators=(",", ":")).encode()


def send(conn: Connection, kind: str, **fields: Any) -> None:
    conn.send_bytes(encode({"kind": kind, **fields}))


def send_invoke(conn: Connection, request_id: str, event: bytes, deadline_ms: int) -> None:
    """An INVOKE whose event is already compact JSON: spliced in, not encoded again."""
    head = orjson.dumps({"kind": INVOKE, "request_id": request_id, "deadline_ms": deadline_ms})
    conn.send_bytes(b"".join((head[:-1], b',"event":', event, b"}")))


def receive(conn: Connection) -> dict[str, Any]:
    message: dict[str, Any] = orjson.loads(conn.recv_bytes())
    return message
