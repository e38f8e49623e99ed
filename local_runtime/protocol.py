"""Messages between the runtime and a worker process: length-prefixed JSON over two pipes."""

from __future__ import annotations

import base64
import json
from multiprocessing.connection import Connection
from typing import Any

import orjson

# Worker -> runtime
READY = "ready"  # {"init_ms": float} after the handler module imported
INIT_ERROR = "init_error"  # {"error": {...}} when the import failed
# {"request_id", "ok", "duration_ms", "max_memory_mb"} and, when ok, "content_type" and the
# marshalled payload in base64 ("payload_b64"), else "error" (Lambda's error document)
RESULT = "result"
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


def send_result(conn: Connection, head: dict[str, Any], payload: bytes, content_type: str) -> None:
    """A successful RESULT with the payload as the runtime marshalled it, byte for byte
    (base64, so no JSON parser on the way can change a Decimal's digits)."""
    fields = {"kind": RESULT, **head, "content_type": content_type}
    fields["payload_b64"] = base64.b64encode(payload).decode("ascii")
    conn.send_bytes(orjson.dumps(fields))


def receive(conn: Connection) -> dict[str, Any]:
    data = conn.recv_bytes()
    try:
        message: dict[str, Any] = orjson.loads(data)
    except orjson.JSONDecodeError:  # what the marshaller writes and orjson refuses (NaN)
        message = json.loads(data)
    return message
