"""The topology custom resource against the real RabbitMQ: what it declares, and what it
answers CloudFormation on the pre-signed URL (a local HTTPS server stands in for S3)."""

from __future__ import annotations

import datetime
import importlib.util
import ipaddress
import json
import socket
import ssl
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any

import pika
import pika.exceptions
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from infra.template import TOPOLOGY_CODE
from tests.helpers import TEST_VHOST, delete_vhost, ensure_vhost

pytestmark = pytest.mark.integration
BROKER = "amqp://guest:guest@127.0.0.1:5672"


class Answers(ThreadingHTTPServer):
    """What CloudFormation's pre-signed URL receives: each PUT's path and JSON body."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Recorder)
        self.received: list[tuple[str, dict[str, Any]]] = []
        self.arrived = threading.Condition()

    def wait(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        with self.arrived:
            self.arrived.wait_for(lambda: len(self.received) >= count, timeout)
        return [body for _, body in self.received]


class _Recorder(BaseHTTPRequestHandler):
    server: Answers

    def do_PUT(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with self.server.arrived:
            self.server.received.append((self.path, body))
            self.server.arrived.notify_all()
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the test reads what arrived, not the access log."""


def _certificate(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1, trusted by the handler through SSL_CERT_FILE."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


@pytest.fixture
def answers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Answers]:
    cert_file, key_file = _certificate(tmp_path)
    server = Answers()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert_file))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def vhost(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    name = f"{TEST_VHOST}-topology-{uuid.uuid4().hex[:8]}"
    ensure_vhost(name)
    monkeypatch.setenv("AMQP_URL", f"{BROKER}/{name}")
    yield name
    delete_vhost(name)


@pytest.fixture
def resource() -> ModuleType:
    """The handler as Lambda imports it: handler.py at the root of its task root."""
    spec = importlib.util.spec_from_file_location("topology_handler", TOPOLOGY_CODE / "handler.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Context:
    """The Lambda context fields crhelper reads."""

    def __init__(self, seconds: float = 60.0) -> None:
        self.deadline = time.monotonic() + seconds
        self.aws_request_id = str(uuid.uuid4())
        self.function_name = "credit-dev-TopologyFunction"

    def get_remaining_time_in_millis(self) -> int:
        return int((self.deadline - time.monotonic()) * 1000)


def request(
    answers: Answers, kind: str, rules: Any, physical_id: str | None = None
) -> dict[str, Any]:
    """A CloudFormation custom resource request, as the service sends it."""
    port = answers.server_address[1]
    event: dict[str, Any] = {
        "RequestType": kind,
        "ServiceToken": "arn:aws:lambda:us-east-1:123456789012:function:topology",
        "ResponseURL": f"https://127.0.0.1:{port}/cloudformation-custom-resource-response?sig=x",
        "StackId": "arn:aws:cloudformation:us-east-1:123456789012:stack/credit-dev/guid",
        "RequestId": str(uuid.uuid4()),
        "LogicalResourceId": "BrokerTopology",
        "ResourceType": "Custom::BrokerTopology",
        "ResourceProperties": {"ServiceToken": "arn", "Rules": rules},
    }
    if physical_id is not None:
        event["PhysicalResourceId"] = physical_id
    if kind == "Update":
        event["OldResourceProperties"] = {"ServiceToken": "arn", "Rules": ["age"]}
    return event


def channel(vhost: str) -> Any:
    connection = pika.BlockingConnection(pika.URLParameters(f"{BROKER}/{vhost}"))
    return connection, connection.channel()


def queue_exists(vhost: str, queue: str) -> bool:
    connection, ch = channel(vhost)
    try:
        ch.queue_declare(queue, passive=True)
        return True
    except pika.exceptions.ChannelClosedByBroker:
        return False
    finally:
        if connection.is_open:
            connection.close()


def test_create_declares_the_topology_and_answers_success(resource, answers, vhost):
    event = request(answers, "Create", ["age", "value"])

    resource.handler(event, Context())

    [answer] = answers.wait(1)
    assert answer["Status"] == "SUCCESS", answer["Reason"]
    assert answer["PhysicalResourceId"] == f"topology:127.0.0.1:{vhost}"
    assert (answer["RequestId"], answer["LogicalResourceId"]) == (
        event["RequestId"],
        "BrokerTopology",
    )
    assert answer["StackId"] == event["StackId"]
    connection, ch = channel(vhost)
    ch.confirm_delivery()
    ch.basic_publish("credit-requests", "value", b"{}", mandatory=True)  # routed, or it raises
    assert ch.queue_declare("rule.value", passive=True).method.message_count == 1
    assert ch.queue_declare("rule.age.dlq", passive=True).method.message_count == 0
    connection.close()


def test_update_adds_a_new_rules_queue_under_the_same_physical_id(resource, answers, vhost):
    resource.handler(request(answers, "Create", ["age"]), Context())
    physical_id = answers.wait(1)[0]["PhysicalResourceId"]

    resource.handler(request(answers, "Update", ["age", "income"], physical_id), Context())

    update = answers.wait(2)[1]
    assert update["Status"] == "SUCCESS", update["Reason"]
    assert update["PhysicalResourceId"] == physical_id  # not a replacement
    assert queue_exists(vhost, "rule.income") and queue_exists(vhost, "rule.income.dlq")


def test_delete_answers_at_once_and_keeps_the_queues_and_their_messages(resource, answers, vhost):
    resource.handler(request(answers, "Create", ["age"]), Context())
    physical_id = answers.wait(1)[0]["PhysicalResourceId"]
    started = time.monotonic()

    resource.handler(request(answers, "Delete", ["age"], physical_id), Context(seconds=300))

    answer = answers.wait(2)[1]
    assert answer["Status"] == "SUCCESS"
    assert answer["PhysicalResourceId"] == physical_id
    assert time.monotonic() - started < 10  # crhelper's default waits two minutes first
    assert queue_exists(vhost, "rule.age")


def test_a_queue_the_broker_holds_with_other_arguments_fails_with_the_brokers_reason(
    resource, answers, vhost
):
    connection, ch = channel(vhost)
    ch.queue_declare("rule.age", durable=True)  # a classic queue: quorum cannot redeclare it
    connection.close()

    resource.handler(request(answers, "Create", ["age"]), Context())

    [answer] = answers.wait(1)
    assert answer["Status"] == "FAILED"
    assert "PRECONDITION_FAILED" in answer["Reason"]


def test_a_resource_without_rules_fails_and_says_why(resource, answers, vhost):
    resource.handler(request(answers, "Create", None), Context())

    [answer] = answers.wait(1)
    assert answer["Status"] == "FAILED"
    assert "Rules must be a non-empty list" in answer["Reason"]


def test_an_unreachable_broker_fails_naming_where_it_was_tried(resource, answers, monkeypatch):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nothing listens there once closed
    monkeypatch.setenv("AMQP_URL", f"amqp://guest:guest@127.0.0.1:{port}/%2F?connection_attempts=1")

    resource.handler(request(answers, "Create", ["age"]), Context())

    [answer] = answers.wait(1)
    assert answer["Status"] == "FAILED"
    assert f"cannot connect to the broker at 127.0.0.1:{port}/" in answer["Reason"]


def test_a_broker_that_never_answers_still_gets_cloudformation_an_answer_in_time(
    resource, answers, monkeypatch
):
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen()  # accepts TCP, never speaks AMQP
    port = silent.getsockname()[1]
    query = "connection_attempts=1&socket_timeout=3&stack_timeout=3"
    monkeypatch.setenv("AMQP_URL", f"amqp://guest:guest@127.0.0.1:{port}/%2F?{query}")
    started = time.monotonic()
    worker = threading.Thread(
        target=resource.handler, args=(request(answers, "Create", ["age"]), Context(seconds=2.0))
    )
    worker.start()

    first = answers.wait(1, timeout=4.0)
    answered_after = time.monotonic() - started

    worker.join(timeout=15)
    silent.close()
    assert first and first[0]["Status"] == "FAILED"
    assert first[0]["Reason"] == "Execution timed out"
    assert answered_after < 2.0  # before Lambda would have killed the function
