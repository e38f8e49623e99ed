"""The runtime service run as its container would run it, from the wheel-installed package.

The image's files are laid out under a folder of their own (what the final stage COPYs from
the build context, at its paths), the process starts in the image's WORKDIR with the image's
ENV and the service's environment and no other variable, and runs the service's command (the
image's CMD when the service has none). Container networking is mapped: a URL naming a compose
service reaches that service's private instance, the container's own port is a free one, and
0.0.0.0 is 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.compose.composefile import ROOT, Image, Service, map_url
from tests.compose.install import UNREACHABLE, Installed
from tests.support.services import free_port

START_SECONDS = 90.0
STOP_SECONDS = 30.0
ALL_INTERFACES = "0.0.0.0"  # noqa: S104 - what the container binds, mapped to 127.0.0.1


def lay_out(image: Image, root: Path) -> Path:
    """Copy what the final stage COPYs from the build context; return the WORKDIR."""
    for source, target in image.copies:
        origin, destination = ROOT / source, root / target.lstrip("/")
        if origin.is_dir():
            ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
            shutil.copytree(origin, destination, ignore=ignore, dirs_exist_ok=True)
        else:
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(origin, destination)
    workdir = root / image.workdir.lstrip("/")
    workdir.mkdir(parents=True, exist_ok=True)
    return workdir


def map_argv(argv: Sequence[str], container_port: int, host_port: int) -> list[str]:
    """The command with the container's port and its 0.0.0.0 mapped to the host's."""
    mapped = []
    for arg in argv:
        arg = arg.replace(f"127.0.0.1:{container_port}", f"127.0.0.1:{host_port}")
        arg = arg.replace(f"localhost:{container_port}", f"127.0.0.1:{host_port}")
        mapped.append("127.0.0.1" if arg == ALL_INTERFACES else arg)
    for flag in ("--port", "-p"):
        if flag in mapped[:-1]:
            index = mapped.index(flag) + 1
            if mapped[index] == str(container_port):
                mapped[index] = str(host_port)
    return mapped


@dataclass
class RuntimeContainer:
    """One `docker compose up runtime`, without the engine."""

    service: Service
    image: Image
    installed: Installed
    hosts: dict[str, int]  # compose service name -> its private instance's port
    root: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def argv(self) -> list[str]:
        command = self.service.command or self.image.cmd
        if not command:
            raise AssertionError("the runtime service has neither a command nor an image CMD")
        return map_argv(command, self.container_port, self.port)

    @property
    def environment(self) -> dict[str, str]:
        env = {
            "PATH": f"{self.installed.bin}:/usr/local/bin:/usr/bin:/bin",
            "HOME": str(self.root),
            "LANG": "C.UTF-8",
            # A default URL (127.0.0.1) is the container itself, where nothing listens.
            **UNREACHABLE,
        }
        env.update(self.image.env)
        env.update({k: map_url(v, self.hosts) for k, v in self.service.environment.items()})
        return env

    @property
    def log_path(self) -> Path:
        return self.root / "runtime.log"

    def run(self, timeout: float = START_SECONDS) -> subprocess.CompletedProcess[str]:
        """Run the service's command to its end, as a one-shot service's container does."""
        workdir = lay_out(self.image, self.root / "image")
        return subprocess.run(
            self.argv,
            cwd=workdir,
            env=self.environment,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=timeout,
            check=False,
        )

    @property
    def container_port(self) -> int:
        published = self.service.ports
        return published[0].target if published else 0

    def start(self) -> None:
        workdir = lay_out(self.image, self.root / "image")
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                self.argv,
                cwd=workdir,
                env=self.environment,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + START_SECONDS
        while self.request("GET", "/health")[0] != 200:
            if self.process.poll() is not None:
                raise AssertionError(
                    f"the runtime exited with {self.process.returncode}:\n{self.log}"
                )
            if time.monotonic() > deadline:
                raise AssertionError(f"the runtime was not healthy in time:\n{self.log}")
            time.sleep(0.25)

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-6000:]

    def healthcheck(self) -> subprocess.CompletedProcess[str]:
        """The image's HEALTHCHECK command, in the container's environment."""
        if not self.image.healthcheck:
            raise AssertionError("the image has no HEALTHCHECK")
        return subprocess.run(
            map_argv(self.image.healthcheck, self.container_port, self.port),
            env=self.environment,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """(status, JSON answer); status 0 while nothing listens."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        headers = {"Content-Type": "application/json"} if body is not None else {}
        try:
            connection.request(method, path, None if body is None else json.dumps(body), headers)
            response = connection.getresponse()
            return response.status, json.loads(response.read() or b"null")
        except OSError:
            return 0, None
        finally:
            connection.close()

    def stop(self) -> int:
        """SIGTERM, as `docker compose stop` sends; the exit code (-9 if it had to be killed).

        Whatever the runtime left of its process group (its API process, its workers) is
        killed afterwards, as the engine does when the container's main process ends.
        """
        if self.process is None:
            return 0
        self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(STOP_SECONDS)
        except subprocess.TimeoutExpired:
            code = -signal.SIGKILL
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()
        return code
