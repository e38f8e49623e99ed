"""A message that makes the handler raise every time ends in the DLQ; later tickets still flow."""

import shutil
import time
import uuid

import pika
import pytest

from tests.e2e.conftest import System
from tests.helpers import FUNCTIONS, ROOT, TEST_VHOST, delete_vhost

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

POISON_HANDLER = '''
"""The real age handler, wrapped so a marked message makes it raise every time."""
import base64

from handler import handler as real_handler


def handler(event, context):
    for records in event["rmqMessagesByQueue"].values():
        for record in records:
            if b"poison" in base64.b64decode(record["data"]):
                raise RuntimeError("poison message")
    return real_handler(event, context)
'''


@pytest.fixture(scope="module")
def poisoned_system(tmp_path_factory, services_ready):
    project = tmp_path_factory.mktemp("project")
    shutil.copy(ROOT / "template.yaml", project / "template.yaml")
    for name in ("api", "age_rule", "value_rule"):
        shutil.copytree(FUNCTIONS / name, project / "functions" / name)
    age_rule = project / "functions" / "age_rule"
    (age_rule / "poison_handler.py").write_text(POISON_HANDLER)
    fragment = age_rule / "template.yaml"
    fragment.write_text(
        fragment.read_text().replace("Handler: handler.handler", "Handler: poison_handler.handler")
    )
    running = System(
        vhost=f"{TEST_VHOST}-poison-{uuid.uuid4().hex[:8]}",
        template=project,
        environment={"RULE_DELIVERY_LIMIT": "3"},
    )
    running.start(tmp_path_factory.mktemp("poison") / "runtime.log")
    yield running
    assert running.stop() == 0
    delete_vhost(running.vhost)


def test_poison_ends_in_the_dlq_and_later_tickets_are_decided(poisoned_system):
    channel = poisoned_system.channel()
    channel.basic_publish(
        "credit-requests",
        "age",
        b'{"poison": true}',
        pika.BasicProperties(
            content_type="application/json", delivery_mode=2, message_id="poison-1"
        ),
    )
    deadline = time.monotonic() + 30
    while channel.queue_declare("rule.age.dlq", passive=True).method.message_count < 1:
        assert time.monotonic() < deadline, "poison never reached rule.age.dlq"
        time.sleep(0.2)
    _, props, body = channel.basic_get("rule.age.dlq", auto_ack=True)
    assert body == b'{"poison": true}' and props.message_id == "poison-1"
    assert props.headers["x-death"][0]["queue"] == "rule.age"
    channel.connection.close()

    tickets = [poisoned_system.post({"age": age, "value": 50})[2]["ticket"] for age in (16, 40)]
    statuses = [poisoned_system.wait_decided(ticket)["status"] for ticket in tickets]
    assert statuses == ["NOT_APPROVED", "APPROVED"]
    log = poisoned_system.log_path.read_text()
    assert "RuntimeError: poison message" in log
    assert log.count("Task timed out") == 0
