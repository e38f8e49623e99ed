"""The services secret (what CREDIT_SECRET_ID names) and the AMQP_URL it carries, on moto."""

from __future__ import annotations

import json

import boto3
import pika
import pytest

from infra.config import BrokerCredentials
from infra.deploy import service_settings
from infra.plan import Action
from infra.resources import secret, topology
from infra.resources.broker import BrokerRef
from infra.resources.secret import SecretRef
from tests.infra.conftest import REGION

SERVICES = "credit-test/services"
ENDPOINT = "amqps://b-1234.mq.us-east-1.amazonaws.com:5671"


@pytest.fixture
def client(aws):
    return boto3.client("secretsmanager", region_name=REGION)


def stored(client) -> dict[str, str]:
    return json.loads(client.get_secret_value(SecretId=SERVICES)["SecretString"])


def wanted(config, amqp_url=None) -> dict[str, str | None]:
    return config.service_settings(amqp_url)


def test_created_without_amqp_url_until_the_broker_has_an_endpoint(client, config):
    change, arn = secret.ensure_services(client, config, wanted(config), dry_run=False)

    assert (change.action, change.detail) == (Action.CREATE, "without AMQP_URL")
    assert arn == client.describe_secret(SecretId=SERVICES)["ARN"]
    assert stored(client) == {"MYSQL_URL": config.mysql_url, "REDIS_URL": config.redis_url}


def test_amqp_url_is_added_later_and_kept_while_unknown(client, config):
    secret.ensure_services(client, config, wanted(config), dry_run=False)
    url = "amqps://credit:pw-123456789012@b-1:5671/%2F"

    added, _ = secret.ensure_services(client, config, wanted(config, url), dry_run=False)
    kept, _ = secret.ensure_services(client, config, wanted(config), dry_run=False)
    again, _ = secret.ensure_services(client, config, wanted(config, url), dry_run=False)

    assert (added.action, added.detail) == (Action.UPDATE, "AMQP_URL")
    assert (kept.action, kept.detail) == (Action.UNCHANGED, "")
    assert again.action is Action.UNCHANGED
    assert stored(client)["AMQP_URL"] == url


def test_a_dry_run_without_urls_keeps_what_the_secret_holds(client, config, calls):
    secret.ensure_services(client, config, wanted(config), dry_run=False)
    calls.watch(client)
    bare = {key: None for key in wanted(config)}

    change, _ = secret.ensure_services(client, config, bare, dry_run=True)

    assert (change.action, change.detail) == (Action.UNCHANGED, "without AMQP_URL")
    assert calls.writes == []


def test_a_secret_holding_something_else_is_overwritten(client, config):
    client.create_secret(Name=SERVICES, SecretString="mysql://not-json")

    change, _ = secret.ensure_services(client, config, wanted(config), dry_run=False)

    assert (change.action, change.detail) == (
        Action.UPDATE,
        "held no JSON object of strings; without AMQP_URL",
    )
    assert set(stored(client)) == {"MYSQL_URL", "REDIS_URL"}


def test_keys_deploy_does_not_manage_are_removed_and_named(client, config):
    extra = {"MYSQL_URL": config.mysql_url, "REDIS_URL": config.redis_url, "OLD": "x"}
    client.create_secret(Name=SERVICES, SecretString=json.dumps(extra))

    change, _ = secret.ensure_services(client, config, wanted(config), dry_run=False)

    assert (change.action, change.detail) == (Action.UPDATE, "OLD; without AMQP_URL")
    assert "OLD" not in stored(client)


def test_delete_is_idempotent_and_spares_untagged_secrets(client, config):
    secret.ensure_services(client, config, wanted(config), dry_run=False)

    first = secret.delete(client, config, SERVICES, dry_run=False)
    second = secret.delete(client, config, SERVICES, dry_run=False)
    client.create_secret(Name=SERVICES, SecretString="{}")
    untagged = secret.delete(client, config, SERVICES, dry_run=False)

    assert [first.action, second.action, untagged.action] == [
        Action.DELETE,
        Action.ABSENT,
        Action.SKIP,
    ]
    assert client.describe_secret(SecretId=SERVICES)["Name"] == SERVICES


def test_amqp_url_round_trips_through_pika_like_the_topology_connection():
    credentials = BrokerCredentials("ops", "p@ss/w%rd#1?x")

    url = topology.amqp_url(ENDPOINT, credentials, "credit")
    parsed = pika.URLParameters(url)
    direct = topology.broker_parameters(ENDPOINT, credentials, "credit")

    assert url.startswith("amqps://ops:p%40ss%2Fw%25rd%231%3Fx@b-1234.mq.")
    assert (parsed.host, parsed.port, parsed.virtual_host) == (
        direct.host,
        direct.port,
        direct.virtual_host,
    )
    assert parsed.credentials == direct.credentials
    assert parsed.ssl_options is not None


def test_amqp_url_uses_the_default_port_and_root_vhost():
    url = topology.amqp_url("amqps://b-1.mq.example.com", BrokerCredentials("u", "p"))

    assert url == "amqps://u:p@b-1.mq.example.com:5671/%2F"


def test_amqp_url_is_left_out_until_the_broker_has_an_endpoint(specs, config):
    credentials = SecretRef("arn:broker-secret", BrokerCredentials("credit", "p" * 16))
    starting = BrokerRef("arn:broker", "b-1", "CREATION_IN_PROGRESS")
    running = BrokerRef("arn:broker", "b-1", "RUNNING", (ENDPOINT,))

    assert service_settings(specs, config, credentials, starting)["AMQP_URL"] is None
    url = service_settings(specs, config, credentials, running)["AMQP_URL"]
    assert url == f"amqps://credit:{'p' * 16}@b-1234.mq.us-east-1.amazonaws.com:5671/%2F"


def test_publishers_use_the_one_vhost_the_event_sources_share(specs):
    import dataclasses

    def on(spec, vhost):
        assert spec.event_source is not None
        source = dataclasses.replace(spec.event_source, virtual_host=vhost)
        return dataclasses.replace(spec, event_source=source)

    assert topology.default_vhost(specs) == "/"
    assert topology.default_vhost([on(s, "credit") for s in specs]) == "credit"
    assert topology.default_vhost([on(specs[0], "a"), on(specs[1], "b")]) == "/"
