"""The API runs in a process of its own, started, watched and stopped by the runtime."""

import os
import signal
import time
import uuid

import psutil
import pytest

from tests.e2e.conftest import System
from tests.helpers import TEST_VHOST, delete_vhost

pytestmark = pytest.mark.e2e


def _api_children(runtime_pid: int) -> list[psutil.Process]:
    children = []
    for child in psutil.Process(runtime_pid).children():
        try:
            if child.environ().get("LOCAL_RUNTIME_PROCESS") == "api":
                children.append(child)
        except psutil.Error:
            continue
    return children


def _wait(condition, timeout: float = 20.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False


@pytest.fixture
def own_system(tmp_path, services_ready):
    running = System(vhost=f"{TEST_VHOST}-api-{uuid.uuid4().hex[:8]}")
    running.start(tmp_path / "runtime.log")
    yield running
    if running.process is not None and running.process.poll() is None:
        running.stop()
    delete_vhost(running.vhost)


def _healthy(system: System) -> bool:
    try:
        return system.request("GET", "/health")[0] == 200
    except OSError:
        return False


def test_a_killed_api_process_is_started_again_and_tickets_still_flow(own_system):
    assert own_system.process is not None
    (api,) = _api_children(own_system.process.pid)
    os.kill(api.pid, signal.SIGKILL)
    assert _wait(
        lambda: [p.pid for p in _api_children(own_system.process.pid)] not in ([], [api.pid])
    )
    assert _wait(lambda: _healthy(own_system))
    status, _, body = own_system.post({"age": 30, "value": 10})
    assert status == 202
    assert own_system.wait_decided(body["ticket"])["status"] == "APPROVED"


def test_sigterm_stops_the_runtime_and_its_api_process_cleanly(own_system):
    assert own_system.process is not None
    (api,) = _api_children(own_system.process.pid)
    assert own_system.stop() == 0
    assert _wait(lambda: not api.is_running() or api.status() == psutil.STATUS_ZOMBIE, 5)


def test_the_api_process_does_not_outlive_a_killed_runtime(own_system):
    assert own_system.process is not None
    (api,) = _api_children(own_system.process.pid)
    own_system.process.kill()
    own_system.process.wait(10)
    assert _wait(lambda: not api.is_running() or api.status() == psutil.STATUS_ZOMBIE, 10)
    assert not _healthy(own_system)
