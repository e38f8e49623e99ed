"""The compose stack without a Docker engine: each service booted as its image would boot it.

The machine's own RabbitMQ, MariaDB and Redis binaries run as private instances (the ones of
tests/support/services.py, on ports of their own), configured from the resolved compose file:

- RabbitMQ reads exactly the files mounted into /etc/rabbitmq/conf.d (with every mounted
  container path in them mapped to the repository file mounted there) and the image's
  environment variables (RABBITMQ_DEFAULT_USER, ...), which the server itself reads;
- MariaDB is initialised from the MARIADB_* variables the way the image's entrypoint does it;
- Redis runs the service's own command line.

What cannot be reproduced without an engine: the images' own defaults files and scripts
(rabbitmq's 10-defaults.conf, mariadb's healthcheck.sh), container networking (service names
become 127.0.0.1 and a private port) and the other server versions (RabbitMQ 3.13 and Redis 7
in the images, the distribution's here).
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import ClassVar

import pika
import pika.exceptions
import pymysql
import redis

from tests.compose.composefile import Service
from tests.support.services import PrivateMariaDB, PrivateRabbitMQ, PrivateRedis, ServiceError

RABBITMQ_CONF_DIR = "/etc/rabbitmq/conf.d/"
RABBITMQ_MAIN_CONF = "/etc/rabbitmq/rabbitmq.conf"


def mounted_text(service: Service, container_path: str) -> str:
    """A mounted file's text, each container path in it replaced by the host file behind it."""
    text = service.volumes[container_path].read_text()
    for target, source in service.volumes.items():
        text = text.replace(target, str(source))
    return text


class ComposeRabbitMQ(PrivateRabbitMQ):
    """The compose file's broker: its mounted configuration and its environment."""

    def __init__(self, service: Service) -> None:
        super().__init__()
        self.service = service

    def _prepare(self, timeout: float) -> None:
        super()._prepare(timeout)
        for target in self.service.volumes:
            if target.startswith(RABBITMQ_CONF_DIR) or target == RABBITMQ_MAIN_CONF:
                # conf.d files are read after the private node's own file (its listener).
                copy = self.base_dir / "conf.d" / Path(target).name
                copy.write_text(mounted_text(self.service, target))

    def _environment(self) -> dict[str, str]:
        env = super()._environment()
        env.update(self.service.environment)
        return env

    def _probe(self) -> bool:
        """Up once it answers AMQP; refusing a made-up user counts (the users are under test)."""
        parameters = self.connection_parameters(timeout=3)
        parameters.credentials = pika.PlainCredentials("probe", secrets.token_hex(8))
        try:
            pika.BlockingConnection(parameters).close()
        except pika.exceptions.ProbableAuthenticationError:
            return True
        except Exception:
            return False
        return True

    def ctl(self, *args: str) -> list[str]:
        """A rabbitmqctl command line for this node (run it with node_environment())."""
        return [str(Path(self.server_script).with_name("rabbitmqctl")), "-n", self.node_name, *args]

    def node_environment(self) -> dict[str, str]:
        """The environment the node runs with: its cookie, config and plugin folders."""
        return self._environment()


class ComposeRedis(PrivateRedis):
    """The compose file's Redis: the service's command line, on a private port."""

    def __init__(self, service: Service) -> None:
        super().__init__()
        command = service.command or []
        if not command or Path(command[0]).name != "redis-server":
            raise ServiceError(f"the redis service does not run redis-server: {command}")
        self.arguments = command[1:]

    def _command(self) -> list[str]:
        # Later options win in redis-server: the private port, address and folder come last.
        return [
            self.server_binary,
            *self.arguments,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.base_dir),
            "--daemonize", "no",
            "--logfile", "",
        ]  # fmt: skip

    def _probe(self) -> bool:
        """Up once it answers; NOAUTH counts (the password is under test)."""
        client = self.client(timeout=1)
        try:
            return bool(client.ping())
        except redis.AuthenticationError:
            return True
        except redis.RedisError:
            return False
        finally:
            client.close()


class ComposeMariaDB(PrivateMariaDB):
    """The compose file's MariaDB, set up from MARIADB_* as the image's entrypoint does.

    Root has a password once set up, so a restart (whose probe logs in as root without one) is
    not supported.
    """

    #: The entrypoint's refusal when no root password option is given.
    root_options: ClassVar[tuple[str, ...]] = (
        "MARIADB_ROOT_PASSWORD",
        "MARIADB_ROOT_PASSWORD_HASH",
        "MARIADB_ALLOW_EMPTY_ROOT_PASSWORD",
        "MARIADB_RANDOM_ROOT_PASSWORD",
    )

    def __init__(self, service: Service) -> None:
        super().__init__()
        self.variables = _mariadb_variables(service.environment)
        if not any(self.variables.get(name) for name in self.root_options):
            raise ServiceError(
                "Database is uninitialized and password option is not specified: the image "
                f"needs one of {', '.join(self.root_options)}"
            )
        if self.variables.get("MARIADB_ROOT_PASSWORD_HASH") or self.variables.get(
            "MARIADB_PASSWORD_HASH"
        ):
            raise ServiceError("password hashes are not reproduced by this test")

    def _on_ready(self, first: bool) -> None:
        if not first:
            return
        conn = pymysql.connect(
            unix_socket=str(self.socket_path), user="root", password="", autocommit=True
        )
        try:
            with conn.cursor() as cursor:
                for statement, args in self.setup_statements():
                    cursor.execute(statement, args)
        finally:
            conn.close()

    def setup_statements(self) -> list[tuple[str, tuple[str, ...]]]:
        """docker-entrypoint.sh's docker_setup_db: root, then the database and its user."""
        v = self.variables
        root_password = v.get("MARIADB_ROOT_PASSWORD", "")
        if v.get("MARIADB_RANDOM_ROOT_PASSWORD"):
            root_password = secrets.token_urlsafe(24)
        root_host = v.get("MARIADB_ROOT_HOST") or "%"
        statements: list[tuple[str, tuple[str, ...]]] = [
            ("DROP USER IF EXISTS root@'127.0.0.1', root@'::1'", ()),
            ("SET PASSWORD FOR 'root'@'localhost' = PASSWORD(%s)", (root_password,)),
        ]
        if root_host != "localhost":
            statements += [
                ("CREATE USER 'root'@%s IDENTIFIED BY %s", (root_host, root_password)),
                ("GRANT ALL ON *.* TO 'root'@%s WITH GRANT OPTION", (root_host,)),
            ]
        database, user, password = (
            v.get("MARIADB_DATABASE"),
            v.get("MARIADB_USER"),
            v.get("MARIADB_PASSWORD"),
        )
        if database:
            statements.append((f"CREATE DATABASE IF NOT EXISTS {_quoted(database)}", ()))
        if user and password:
            statements.append(("CREATE USER %s@'%%' IDENTIFIED BY %s", (user, password)))
            if database:
                pattern = _quoted(database.replace("_", "\\_"))
                statements.append((f"GRANT ALL ON {pattern}.* TO %s@'%%'", (user,)))
        return statements


def _mariadb_variables(environment: dict[str, str]) -> dict[str, str]:
    """MARIADB_* with the MYSQL_* spellings the entrypoint also accepts filled in."""
    variables = dict(environment)
    for name, value in environment.items():
        if name.startswith("MYSQL_"):
            variables.setdefault("MARIADB_" + name.removeprefix("MYSQL_"), value)
    if "MYSQL_ALLOW_EMPTY_PASSWORD" in environment:
        variables.setdefault(
            "MARIADB_ALLOW_EMPTY_ROOT_PASSWORD", environment["MYSQL_ALLOW_EMPTY_PASSWORD"]
        )
    return variables


def _quoted(identifier: str) -> str:
    return "`" + identifier.replace("`", "``") + "`"


def simulator(service: Service) -> type[ComposeRabbitMQ | ComposeRedis | ComposeMariaDB]:
    """Which private server stands in for a service, by the image it runs."""
    name = service.image.split("/")[-1].split(":")[0]
    kinds: dict[str, type[ComposeRabbitMQ | ComposeRedis | ComposeMariaDB]] = {
        "rabbitmq": ComposeRabbitMQ,
        "redis": ComposeRedis,
        "mariadb": ComposeMariaDB,
        "mysql": ComposeMariaDB,
    }
    if name not in kinds:
        raise ServiceError(f"service {service.name}: no private server stands in for {name!r}")
    return kinds[name]


#: The port each image's server listens on inside its container.
CONTAINER_PORTS = {ComposeRabbitMQ: 5672, ComposeRedis: 6379, ComposeMariaDB: 3306}
