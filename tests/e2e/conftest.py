"""Starts the real system against the test services: the app's set-up (`python -m credit
setup`), then the runtime on the project's template (`python -m local_runtime start`)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pika
import pytest

from tests.helpers import ROOT, TEST_URLS, TEST_VHOST, ensure_vhost


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class System:
    """A running runtime process and an HTTP client for it."""

    vhost: str
    template: Path = ROOT
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    environment: dict[str, str] = field(default_factory=dict)  # over the test services' URLs

    @property
    def amqp_url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:5672/{self.vhost}"

    def start(self, log_path: Path, *functions: str) -> None:
        ensure_vhost(self.vhost)
        env = {**os.environ, **TEST_URLS, "AMQP_URL": self.amqp_url, **self.environment}
        subprocess.run(
            [sys.executable, "-m", "credit", "setup"], env=env, check=True, capture_output=True
        )
        self._purge()
        self.log_path = log_path
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "local_runtime",
                "--template",
                str(self.template),
                "start",
                "--port",
                str(self.port),
                "--inherit-env",
                ",".join(sorted({"AMQP_URL", "REDIS_URL", "MYSQL_URL", *self.environment})),
                *functions,
            ],
            env=env,
            cwd=ROOT,
            stdout=log_path.open("wb"),
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"runtime exited early:\n{log_path.read_text()}")
            try:
                if self.request("GET", "/health")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"runtime did not become healthy:\n{log_path.read_text()}")

    def stop(self) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(60)

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        timeout: float = 10,
    ) -> tuple[int, dict[str, str], Any]:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}", data=body, method=method, headers=headers or {}
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - local test server
                raw, status, out_headers = response.read(), response.status, dict(response.headers)
        except urllib.error.HTTPError as exc:
            raw, status, out_headers = exc.read(), exc.code, dict(exc.headers)
        return status, out_headers, json.loads(raw) if raw else None

    def post(
        self, payload: object, headers: dict[str, str] | None = None, timeout: float = 10
    ) -> tuple[int, dict[str, str], Any]:
        """POST a body: bytes or str as they are, anything else as JSON."""
        body = payload if isinstance(payload, bytes) else None
        if body is None:
            body = (payload if isinstance(payload, str) else json.dumps(payload)).encode()
        return self.request(
            "POST",
            "/credit-request",
            body,
            {"Content-Type": "application/json", **(headers or {})},
            timeout,
        )

    def ticket(self, ticket: str) -> Any:
        return self.request("GET", f"/credit-validation?ticket={ticket}")[2]

    def wait_decided(self, ticket: str, timeout: float = 20) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            body = self.ticket(ticket)
            if body["status"] != "PENDING":
                return body
            time.sleep(0.05)
        raise AssertionError(f"ticket {ticket} still PENDING after {timeout}s: {body}")

    def channel(self) -> pika.adapters.blocking_connection.BlockingChannel:
        return pika.BlockingConnection(pika.URLParameters(self.amqp_url)).channel()

    def _purge(self) -> None:
        try:
            channel = self.channel()
        except pika.exceptions.AMQPError:
            return
        for queue in ("rule.age", "rule.value", "rule.age.dlq", "rule.value.dlq"):
            try:
                channel.queue_purge(queue)
            except pika.exceptions.ChannelClosedByBroker:
                channel = self.channel()
        channel.connection.close()


@pytest.fixture(scope="module")
def system(tmp_path_factory, services_ready):
    running = System(vhost=f"{TEST_VHOST}-e2e")
    running.start(tmp_path_factory.mktemp("e2e") / "runtime.log")
    yield running
    code = running.stop()
    assert code == 0, "the runtime must exit cleanly on SIGTERM"
