"""`docker compose up` works: the file validates, and its services, booted as it says, serve.

Each service is booted the way the file configures it (tests/compose/stack.py says what is and
is not reproduced without a Docker engine), and the runtime answers the README's requests.
"""

from __future__ import annotations

import subprocess
import time
import uuid
from typing import Any
from urllib.parse import unquote, urlsplit

import pika
import pika.exceptions
import pymysql
import pytest
import redis

from tests.compose import composefile
from tests.compose.composefile import ROOT, Service, map_url
from tests.compose.container import RuntimeContainer
from tests.compose.stack import CONTAINER_PORTS, ComposeRabbitMQ

pytestmark = [pytest.mark.integration, pytest.mark.slow]

APPROVED = {"age": 20, "value": 100000}
NOT_APPROVED = {"age": 17, "value": 500000}


def runtime_service(services: dict[str, Service]) -> Service:
    """The long-running service built from the repository (the set-up one runs once)."""
    [built] = [
        service
        for service in services.values()
        if "build" in service.raw and service.raw.get("restart") != "no"
    ]
    return built


def hosts(backing: dict[str, Any]) -> dict[str, int]:
    """Compose service name -> the port of the private instance standing in for it."""
    return {name: server.port for name, server in backing.items()}


def runtime_url(services: dict[str, Service], backing: dict[str, Any], variable: str) -> str:
    """A URL the runtime service is given, pointed at the private instances."""
    return map_url(runtime_service(services).environment[variable], hosts(backing))


def port_of(url: str) -> int:
    port = urlsplit(url).port
    assert port is not None, url
    return port


def mysql_connect(url: str, database: str) -> pymysql.Connection:
    """A connection as the URL's user (not root), to the given database."""
    parts = urlsplit(url)
    return pymysql.connect(
        host="127.0.0.1",
        port=port_of(url),
        user=unquote(parts.username or ""),
        password=unquote(parts.password or ""),
        database=database,
        connect_timeout=5,
    )


def amqp_parameters(url: str) -> pika.URLParameters:
    parameters = pika.URLParameters(url)
    parameters.connection_attempts = 1
    parameters.socket_timeout = 5
    return parameters


# --- the file itself -------------------------------------------------------------------


def test_the_file_validates_with_the_committed_development_defaults(compose_config):
    assert set(compose_config["services"]) >= {"rabbitmq", "redis", "mysql", "runtime"}


def test_the_hosts_shell_does_not_redirect_the_containers():
    shell = composefile.clean_environment(
        AMQP_URL="amqp://guest:guest@127.0.0.1:5672/%2F",
        REDIS_URL="redis://127.0.0.1:6379/0",
        MYSQL_URL="mysql://root@127.0.0.1:3306/credit",
    )
    try:
        exported = composefile.services(composefile.resolved(shell))
        clean = composefile.services(composefile.resolved())
    except composefile.ComposeUnavailable as exc:
        pytest.skip(str(exc))

    assert runtime_service(exported).environment == runtime_service(clean).environment
    for variable in ("AMQP_URL", "REDIS_URL", "MYSQL_URL"):
        host = urlsplit(runtime_service(clean).environment[variable]).hostname
        assert host in clean, f"{variable} names {host}, not a compose service"


def test_every_published_port_binds_the_loopback_interface_only(compose_services):
    published = [(s.name, p) for s in compose_services.values() for p in s.ports]

    assert published
    assert [(name, port.host_ip) for name, port in published] == [
        (name, "127.0.0.1") for name, _ in published
    ]


def test_the_runtime_waits_for_every_service_it_uses_to_be_healthy(compose_services):
    runtime = runtime_service(compose_services)
    used = {
        str(urlsplit(runtime.environment[variable]).hostname)
        for variable in ("AMQP_URL", "REDIS_URL", "MYSQL_URL")
    }

    assert {name: compose_services[name].healthcheck is not None for name in used} == dict.fromkeys(
        used, True
    )
    assert {name: runtime.depends_on.get(name) for name in used} == dict.fromkeys(
        used, "service_healthy"
    )


def test_the_runtime_starts_only_after_the_apps_set_up_succeeded(compose_services):
    setup = compose_services["setup"]
    assert setup.command == ["python", "-m", "credit", "setup"]
    assert runtime_service(compose_services).depends_on["setup"] == (
        "service_completed_successfully"
    )
    assert setup.environment == runtime_service(compose_services).environment
    assert {name: setup.depends_on.get(name) for name in ("rabbitmq", "mysql")} == dict.fromkeys(
        ("rabbitmq", "mysql"), "service_healthy"
    )


def test_no_service_uses_an_empty_or_guest_credential(compose_services):
    runtime = runtime_service(compose_services).environment
    amqp = urlsplit(runtime["AMQP_URL"])
    mysql = urlsplit(runtime["MYSQL_URL"])
    redis_url = urlsplit(runtime["REDIS_URL"])

    assert amqp.username not in (None, "", "guest") and amqp.password not in (None, "", "guest")
    assert mysql.username not in (None, "", "root") and mysql.password
    assert redis_url.password


def test_env_holds_the_credentials_and_each_fits_in_a_url_unescaped():
    assert composefile.ENV_FILE.is_file()
    unsafe = {
        name: value
        for name, value in composefile.env_file_values().items()
        if not value or any(not (c.isalnum() or c in "-._~") for c in value)
    }

    assert unsafe == {}


# --- the image -------------------------------------------------------------------------


def test_the_image_installs_its_dependencies_before_it_copies_any_source():
    steps = composefile.final_stage().steps
    first_install = next(
        i for i, (verb, args) in enumerate(steps) if verb == "RUN" and "pip install" in args
    )
    copied_before = [args for verb, args in steps[:first_install] if verb == "COPY"]

    assert all(args.split()[0] == "pyproject.toml" for args in copied_before), copied_before
    assert not any("--editable" in a or " -e " in a for verb, a in steps if verb == "RUN")


def test_the_image_runs_as_a_user_other_than_root_and_checks_its_health():
    image = composefile.final_stage()

    assert image.user not in (None, "", "root", "0")
    assert image.healthcheck and any("/health" in arg for arg in image.healthcheck)


def test_the_build_context_leaves_out_the_venv_git_and_env():
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]

    def ignored(path: str) -> bool:
        verdict = False
        for pattern in patterns:
            negated = pattern.startswith("!")
            if _matches(path, pattern.lstrip("!")):
                verdict = not negated
        return verdict

    copied = [source for source, _ in composefile.final_stage().copies]
    assert [path for path in (".venv/bin/python", ".git/HEAD", ".env") if not ignored(path)] == []
    assert [path for path in copied if ignored(path)] == []


def _matches(path: str, pattern: str) -> bool:
    """A path, or a folder holding it, matches (fnmatch's * also spans '/', as ** does)."""
    from fnmatch import fnmatch

    parts = path.split("/")
    return any(fnmatch("/".join(parts[:n]), pattern) for n in range(1, len(parts) + 1))


# --- the services, booted as configured ------------------------------------------------


def test_the_broker_lets_in_the_user_the_runtime_is_given(compose_services, backing):
    url = runtime_url(compose_services, backing, "AMQP_URL")

    try:
        pika.BlockingConnection(amqp_parameters(url)).close()
    except pika.exceptions.AMQPError as exc:
        pytest.fail(f"the broker refuses {urlsplit(url).username!r}: {exc!r}")


def test_mariadb_has_the_runtimes_user_and_database_and_no_passwordless_root(
    compose_services, backing
):
    url = runtime_url(compose_services, backing, "MYSQL_URL")
    database = urlsplit(url).path.lstrip("/")

    conn = mysql_connect(url, database=database)
    with conn.cursor() as cursor:
        cursor.execute("SELECT CURRENT_USER(), DATABASE()")
        assert cursor.fetchone() == (f"{urlsplit(url).username}@%", database)
    conn.close()
    with pytest.raises(pymysql.err.OperationalError, match="Access denied"):
        pymysql.connect(host="127.0.0.1", port=port_of(url), user="root", password="")


def test_redis_answers_only_with_the_password_the_runtime_is_given(compose_services, backing):
    url = runtime_url(compose_services, backing, "REDIS_URL")
    anonymous = redis.Redis(host="127.0.0.1", port=port_of(url), socket_timeout=5)

    with pytest.raises(redis.AuthenticationError):
        anonymous.ping()
    assert redis.Redis.from_url(url, socket_timeout=5).ping() is True


def test_dev_compose_env_reaches_the_services_through_their_published_ports(
    compose_services, backing
):
    result = subprocess.run(
        [str(ROOT / "dev"), "compose-env"],
        env=composefile.clean_environment(),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines and all(line.startswith("export ") for line in lines), result.stdout
    exported = dict(line.removeprefix("export ").split("=", 1) for line in lines)
    published = {
        port.published: backing[name].port
        for name, service in compose_services.items()
        if name in backing
        for port in service.ports
    }

    def local(url: str) -> str:
        parts = urlsplit(url.strip("'"))
        assert parts.hostname == "127.0.0.1" and parts.port in published, url
        return url.strip("'").replace(f":{parts.port}/", f":{published[parts.port]}/")

    pika.BlockingConnection(amqp_parameters(local(exported["AMQP_URL"]))).close()
    assert redis.Redis.from_url(local(exported["REDIS_URL"]), socket_timeout=5).ping()
    mysql = local(exported["MYSQL_URL"])
    mysql_connect(mysql, database=urlsplit(mysql).path.lstrip("/")).close()


def test_the_mounted_definitions_import_into_the_broker(compose_services, backing):
    [broker] = [server for server in backing.values() if isinstance(server, ComposeRabbitMQ)]
    [definitions] = [
        target for target in broker.service.volumes if target.endswith("definitions.json")
    ]
    command = broker.ctl("import_definitions", str(broker.service.volumes[definitions]))

    result = subprocess.run(
        command, env=broker.node_environment(), capture_output=True, text=True, timeout=120
    )

    assert result.returncode == 0, result.stdout + result.stderr
    connection = pika.BlockingConnection(
        amqp_parameters(runtime_url(compose_services, backing, "AMQP_URL"))
    )
    try:
        deadline = time.monotonic() + 30  # the import runs on after the command returns
        while True:
            channel = connection.channel()
            try:
                channel.queue_declare("rule.age", passive=True)
                break
            except pika.exceptions.ChannelClosedByBroker:
                assert time.monotonic() < deadline, "definitions.json's queues never appeared"
                time.sleep(0.2)
    finally:
        connection.close()


def test_the_runtime_container_serves_the_readme_examples(
    compose_services, backing, installed, tmp_path
):
    setup = RuntimeContainer(
        service=compose_services["setup"],
        image=composefile.final_stage(),
        installed=installed,
        hosts=hosts(backing),
        root=tmp_path / "setup",
    )
    finished = setup.run()
    assert finished.returncode == 0, finished.stdout
    container = RuntimeContainer(
        service=runtime_service(compose_services),
        image=composefile.final_stage(),
        installed=installed,
        hosts=hosts(backing),
        root=tmp_path / "runtime",
    )
    try:
        container.start()
        check = container.healthcheck()
        assert check.returncode == 0, check.stdout + check.stderr

        status, health = container.request("GET", "/health")
        assert status == 200, health
        approved = decided(container, APPROVED)
        not_approved = decided(container, NOT_APPROVED)
    finally:
        code = container.stop()
    assert code == 0, container.log
    assert approved["status"] == "APPROVED"
    assert {rule: v["status"] for rule, v in approved["rules"].items()} == {
        "age": "PASSED",
        "value": "PASSED",
    }
    assert not_approved["status"] == "NOT_APPROVED"
    assert {rule: v["status"] for rule, v in not_approved["rules"].items()} == {
        "age": "FAILED",
        "value": "FAILED",
    }


def decided(container: RuntimeContainer, body: dict[str, Any]) -> dict[str, Any]:
    """POST the request, then GET its ticket until it is no longer PENDING."""
    status, answer = container.request("POST", "/credit-request", body)
    assert status == 202 and answer["status"] == "PENDING", (status, answer)
    uuid.UUID(answer["ticket"])
    deadline = time.monotonic() + 30
    while True:
        status, view = container.request("GET", f"/credit-validation?ticket={answer['ticket']}")
        assert status == 200, view
        if view["status"] != "PENDING":
            return dict(view)
        assert time.monotonic() < deadline, f"still PENDING after 30 s:\n{container.log}"
        time.sleep(0.1)


def test_each_service_stands_in_on_its_containers_port(compose_services, backing):
    # The URLs the runtime is given name each service's port inside its container.
    runtime = runtime_service(compose_services).environment
    for variable in ("AMQP_URL", "REDIS_URL", "MYSQL_URL"):
        parts = urlsplit(runtime[variable])
        assert parts.port == CONTAINER_PORTS[type(backing[parts.hostname])], variable
