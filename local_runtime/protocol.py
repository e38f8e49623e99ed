"""Messages between the runtime and a worker process: length-prefixed JSON over two pipes."""

from __future__ import annotations

import json
from multiprocessing.connection import Connection
from typing import Any

# Worker -> runtime
READY = "ready"  # {"init_ms": float} after the handler module imported
INIT_ERROR = "init_error"  # {"error": {...}} when the import failed
RESULT = "result"  # {"request_id", "ok": bool, "payload" | "error", "duration_ms", "max_memory_mb"}
# Runtime -> worker
INVOKE = "invoke"  # {"request_id", "event", "deadline_ms"}


def send(conn: Connection, kind: str, **fields: Any) -> None:
    conn.send_bytes(json.dumps({"kind": kind, **fields}, separators=(",", ":")).encode())


def receive(conn: Connection) -> dict[str, Any]:
    message: dict[str, Any] = json.loads(conn.recv_bytes())
    return message
