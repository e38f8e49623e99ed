"""The application's set-up: the MySQL schema and the broker topology, both idempotent.

`python -m credit setup` creates the database and applies the migrations, then declares the
exchange, the rules' quorum queues and their dead-letter queues on the broker. The local
runtime runs whatever the template declares and consumes queues that exist; it is this step
(or docker-compose's broker definitions, or the deployed stack's topology resource) that makes
them exist.
"""

from __future__ import annotations

import argparse
import logging
import sys

import pika
import pika.exceptions

from credit import mysql, settings, topology
from credit.errors import CreditError
from credit.publisher import connection_parameters, describe


def setup(amqp_url: str | None = None, mysql_url: str | None = None) -> list[str]:
    """Apply the schema and declare the topology; returns the migrations applied now."""
    applied = mysql.migrate(mysql_url)
    connection = pika.BlockingConnection(connection_parameters(amqp_url))
    try:
        queues = [topology.queue_for_rule(rule) for rule in settings.get_list(settings.RULES)]
        topology.declare(connection.channel(), queues)
    finally:
        connection.close()
    return applied


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m credit", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("setup", help="apply the MySQL migrations and declare the topology")
    parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    logging.getLogger("pika").setLevel(logging.WARNING)
    try:
        applied = setup()
    except CreditError as exc:
        sys.exit(f"error: {exc}")
    except (pika.exceptions.AMQPError, OSError) as exc:
        sys.exit(f"error: RabbitMQ is not reachable at {describe()}: {exc!r}")
    print(f"migrations applied: {', '.join(applied) if applied else 'none, schema is current'}")
    print(f"topology declared for rules: {', '.join(settings.get_list(settings.RULES))}")
