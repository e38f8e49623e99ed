"""A running runtime's control socket: the CLI asks it for status or to trigger a schedule.

Each `start` listens on a Unix socket of its own, in a folder only its user can enter, named
after the template it runs and its process id: `credit-runtime status` (and `trigger`) in
another terminal find every runtime of that template and ask each. One JSON line each way.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import socket
import socketserver
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

LOGGER = logging.getLogger(__name__)
Command = Callable[[list[str]], Any]
MAX_REQUEST_BYTES = 64 * 1024


class ControlError(RuntimeError):
    """No runtime is running for the template, or it refused the command."""


def socket_dir() -> Path:
    base = os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()
    folder = Path(base) / f"local-runtime-{os.getuid()}"
    folder.mkdir(mode=0o700, exist_ok=True)
    return folder


def _prefix(template: Path) -> str:
    return hashlib.sha256(str(template.resolve()).encode()).hexdigest()[:16]


def socket_path(template: Path, pid: int | None = None) -> Path:
    return socket_dir() / f"{_prefix(template)}-{pid or os.getpid()}.sock"


def sockets_for(template: Path) -> list[Path]:
    """The sockets of the runtimes now running this template (stale ones are removed)."""
    found = []
    for path in sorted(socket_dir().glob(f"{_prefix(template)}-*.sock")):
        pid = int(path.stem.rsplit("-", 1)[1])
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            path.unlink(missing_ok=True)
            continue
        except PermissionError:
            pass
        found.append(path)
    return found


def send(path: Path, command: str, args: list[str], timeout: float = 30) -> Any:
    """Run a command on one runtime; its result, or ControlError with its refusal."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        client.settimeout(timeout)
        client.connect(str(path))
        client.sendall(json.dumps({"command": command, "args": args}).encode() + b"\n")
        reply = client.makefile("rb").readline()
    answer = json.loads(reply)
    if not answer.get("ok"):
        raise ControlError(answer.get("error", "refused"))
    return answer.get("result")


class ControlServer:
    """Answers commands on a Unix socket from a thread of its own."""

    def __init__(self, path: Path, commands: dict[str, Command]) -> None:
        self.path = path
        self._commands = commands
        self._server: socketserver.ThreadingUnixStreamServer | None = None

    def start(self) -> None:
        self.path.unlink(missing_ok=True)
        commands = self._commands

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                line = self.rfile.readline(MAX_REQUEST_BYTES)
                try:
                    request = json.loads(line)
                    command = commands[request["command"]]
                    answer = {"ok": True, "result": command(list(request.get("args", [])))}
                except KeyError as exc:
                    answer = {"ok": False, "error": str(exc).strip("'\"")}
                except (ValueError, TypeError) as exc:
                    answer = {"ok": False, "error": str(exc)}
                self.wfile.write(json.dumps(answer).encode() + b"\n")

        self._server = socketserver.ThreadingUnixStreamServer(str(self.path), Handler)
        self._server.daemon_threads = True
        os.chmod(self.path, 0o600)
        threading.Thread(target=self._server.serve_forever, name="control", daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        with contextlib.suppress(OSError):
            self.path.unlink()
