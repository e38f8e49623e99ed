"""A gateway in a process of its own, serving the small test app."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import psutil
import pytest

from tests.gateway.client import RawClient
from tests.helpers import ROOT


@dataclass
class Gateway:
    process: subprocess.Popen[str]
    port: int

    @property
    def address(self) -> tuple[str, int]:
        return ("127.0.0.1", self.port)

    def client(self, timeout: float = 5.0) -> RawClient:
        return RawClient(self.address, timeout)

    def threads(self) -> int:
        return psutil.Process(self.process.pid).num_threads()

    def peers(self) -> set[tuple[str, int]]:
        """The client addresses of the server's open TCP connections."""
        connections = psutil.Process(self.process.pid).net_connections("tcp")
        return {(c.raddr.ip, c.raddr.port) for c in connections if c.raddr}

    def rss_mb(self) -> float:
        return psutil.Process(self.process.pid).memory_info().rss / 2**20

    def stop(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start_gateway(*options: str) -> Gateway:
    """`python -m tests.gateway.app OPTIONS...`, once it listens."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.gateway.app", *options],
        cwd=ROOT,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line.startswith("READY "):
        process.kill()
        raise RuntimeError(f"the gateway did not start (exit code {process.wait()})")
    return Gateway(process, int(line.split()[1]))


@pytest.fixture(scope="module", params=["epoll", "selector"])
def dispatcher(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def gateway(dispatcher: str) -> Iterator[Gateway]:
    """Default limits, save short deadlines."""
    running = start_gateway(
        "--dispatcher",
        dispatcher,
        "--head-timeout",
        "2",
        "--body-timeout",
        "2",
        "--idle-timeout",
        "2",
        "--send-timeout",
        "2",
        "--linger",
        "0.5",
    )
    yield running
    running.stop()
