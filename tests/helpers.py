"""Test helpers: isolated service URLs, loading a function like Lambda does, building events."""

from __future__ import annotations

import base64
import importlib
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
EVENTS = Path(__file__).resolve().parent / "events"
FUNCTIONS = ROOT / "functions"

# Tests never touch the development database, cache or vhost.
# TEST_VHOST names the broker vhost (and prefixes the throwaway ones), so two checkouts can run
# their suites against one broker at once; give each its own TEST_MYSQL_URL and TEST_REDIS_URL.
TEST_VHOST = os.environ.get("TEST_VHOST", "credit-test")
TEST_URLS = {
    "AMQP_URL": os.environ.get("TEST_AMQP_URL", f"amqp://guest:guest@127.0.0.1:5672/{TEST_VHOST}"),
    "REDIS_URL": os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15"),
    "MYSQL_URL": os.environ.get("TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306/credit_test"),
}


def ensure_vhost(vhost: str = TEST_VHOST) -> None:
    """Create the test vhost on the local broker (idempotent) and let guest use it."""
    for command in (
        ["rabbitmqctl", "-q", "add_vhost", vhost],
        ["rabbitmqctl", "-q", "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"],
    ):
        subprocess.run(command, check=False, capture_output=True, timeout=60)


def delete_vhost(vhost: str) -> None:
    """Remove a throwaway vhost and its quorum queues, so test runs leave nothing behind."""
    subprocess.run(
        ["rabbitmqctl", "-q", "delete_vhost", vhost], check=False, capture_output=True, timeout=60
    )


def load_function(name: str) -> ModuleType:
    """Import functions/<name>/handler.py with its folder as task root, as Lambda does.

    Every function has modules called `handler` and `rule`; they are dropped from
    sys.modules first so two functions can be loaded in one test process.
    """
    return _import_from(name, "handler")


def load_rule(name: str) -> ModuleType:
    """Import functions/<name>/rule.py, the function's pure rule."""
    return _import_from(name, "rule")


def _import_from(name: str, module: str) -> ModuleType:
    directory = str(FUNCTIONS / name)
    for stale in ("handler", "rule"):
        sys.modules.pop(stale, None)
    sys.path.insert(0, directory)
    try:
        return importlib.import_module(module)
    finally:
        sys.path.remove(directory)
        sys.modules.pop("rule", None)


def rmq_event(queue: str, bodies: list[bytes], redelivered: bool = False) -> dict[str, Any]:
    """An aws:rmq event shaped like AWS's sample (tests/events), with our bodies as data."""
    sample = json.loads((EVENTS / "aws-rmq-sample.json").read_text())
    template = next(iter(sample["rmqMessagesByQueue"].values()))[0]
    records = []
    for body in bodies:
        record = json.loads(json.dumps(template))
        record["data"] = base64.b64encode(body).decode()
        record["redelivered"] = redelivered
        record["basicProperties"]["contentType"] = "application/json"
        record["basicProperties"]["bodySize"] = len(body)
        record["basicProperties"]["messageId"] = str(uuid.uuid4())
        records.append(record)
    sample["rmqMessagesByQueue"] = {f"{queue}::/": records}
    return sample
