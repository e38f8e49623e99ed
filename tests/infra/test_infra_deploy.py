"""Deploy against moto (IAM, Secrets Manager, MQ, Lambda), the mappings on botocore's Stubber."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator

import boto3
import pika
import pytest

from credit import settings
from infra.config import BrokerCredentials, StageConfig
from infra.deploy import Options, deploy
from infra.errors import DeployError
from infra.plan import Action
from local_runtime.declaration import FunctionSpec
from tests.infra.conftest import MYSQL_PASSWORD, REDIS_PASSWORD

AGE, VALUE = "credit-test-age_rule", "credit-test-value_rule"
SERVICES = "credit-test/services"


@pytest.fixture
def fresh_settings_cache() -> Iterator[None]:
    """credit.settings caches a secret per process; start and end each test without it."""
    settings.secret_values.cache_clear()
    yield
    settings.secret_values.cache_clear()


def expect_first_deploy(stubs) -> None:
    stubs.expect_create(AGE, "rule.age")
    stubs.expect_create(VALUE, "rule.value")


def expect_listing(stubs) -> None:
    stubs.expect_list(AGE)
    stubs.expect_list(VALUE)


def actions(plan) -> dict[tuple[str, str], Action]:
    return {(change.kind, change.name): change.action for change in plan.changes}


def with_event_source(spec: FunctionSpec, **changes) -> FunctionSpec:
    assert spec.event_source is not None
    return dataclasses.replace(spec, event_source=dataclasses.replace(spec.event_source, **changes))


def stored(clients, secret_id: str) -> dict[str, str]:
    return json.loads(clients.secrets.get_secret_value(SecretId=secret_id)["SecretString"])


def services_arn(clients) -> str:
    return clients.secrets.describe_secret(SecretId=SERVICES)["ARN"]


def assert_no_credentials(variables: dict[str, str], config: StageConfig, clients) -> None:
    """No Lambda variable holds a service URL, a password or the broker's password."""
    broker_password = stored(clients, "credit-test/broker")["password"]
    for name, value in variables.items():
        assert "://" not in value, name
        for password in (MYSQL_PASSWORD, REDIS_PASSWORD, broker_password):
            assert password not in value, name
        assert name not in ("AMQP_URL", "MYSQL_URL", "REDIS_URL")


def test_first_deploy_creates_every_resource(specs, artifacts, config, clients, stubs):
    expect_first_deploy(stubs)

    plan = deploy(specs, artifacts, config, clients)

    assert set(actions(plan).values()) == {Action.CREATE}
    assert [(change.kind, change.name) for change in plan.changes[:5]] == [
        ("secret", "credit-test/broker"),
        ("mq-broker", "credit-test"),
        ("secret", SERVICES),
        ("iam-role", "credit-test-functions"),
        ("iam-policy", "credit-test-functions"),
    ]
    assert [change.kind for change in plan.changes[5:]] == [
        "lambda-function", "event-source", "lambda-function", "event-source",
    ]  # fmt: skip
    stubs.stubber.assert_no_pending_responses()


def test_functions_carry_the_declared_configuration(specs, artifacts, config, clients, stubs):
    expect_first_deploy(stubs)
    deploy(specs, artifacts, config, clients)

    age = clients.lambda_.get_function_configuration(FunctionName=AGE)
    assert (age["Runtime"], age["Handler"]) == ("python3.11", "handler.handler")
    assert (age["Timeout"], age["MemorySize"]) == (30, 256)
    assert age["Environment"]["Variables"] == {
        "MIN_AGE": "18",
        "CREDIT_SECRET_ID": services_arn(clients),
    }
    assert set(age["VpcConfig"]["SubnetIds"]) == set(config.subnet_ids)
    assert age["VpcConfig"]["SecurityGroupIds"] == list(config.security_group_ids)
    assert age["CodeSha256"] == artifacts["age_rule"].code_sha256
    assert age["Role"].endswith(":role/credit-test-functions")
    tags = clients.lambda_.list_tags(Resource=age["FunctionArn"])["Tags"]
    assert tags["stage"] == "test" and tags["managed-by"] == "credit-infra"


def test_no_function_variable_holds_a_credential(specs, artifacts, config, clients, stubs):
    expect_first_deploy(stubs)
    deploy(specs, artifacts, config, clients)

    for name in (AGE, VALUE):
        current = clients.lambda_.get_function_configuration(FunctionName=name)
        variables = current["Environment"]["Variables"]
        assert variables["CREDIT_SECRET_ID"] == services_arn(clients)
        assert_no_credentials(variables, config, clients)


def test_services_secret_holds_the_urls_and_the_broker_url(
    specs, artifacts, config, clients, stubs
):
    expect_first_deploy(stubs)
    deploy(specs, artifacts, config, clients)

    values = stored(clients, SERVICES)
    broker_user = stored(clients, "credit-test/broker")
    assert values == {
        "MYSQL_URL": config.mysql_url,
        "REDIS_URL": config.redis_url,
        "AMQP_URL": f"amqps://credit:{broker_user['password']}@mockmq:5671/%2F",
    }
    amqp = pika.URLParameters(values["AMQP_URL"])
    assert (amqp.host, amqp.port, amqp.virtual_host) == ("mockmq", 5671, "/")
    assert amqp.credentials.username == broker_user["username"]
    assert amqp.credentials.password == broker_user["password"]
    assert amqp.ssl_options is not None
    tags = {
        t["Key"]: t["Value"] for t in clients.secrets.describe_secret(SecretId=SERVICES)["Tags"]
    }
    assert tags["stage"] == "test" and tags["managed-by"] == "credit-infra"


def test_settings_read_through_a_functions_environment_find_the_urls(
    specs, artifacts, config, clients, stubs, fresh_settings_cache
):
    expect_first_deploy(stubs)
    deploy(specs, artifacts, config, clients)
    current = clients.lambda_.get_function_configuration(FunctionName=AGE)

    read = settings.Settings.from_env(current["Environment"]["Variables"])

    assert (read.mysql_url, read.redis_url) == (config.mysql_url, config.redis_url)
    assert read.amqp_url == stored(clients, SERVICES)["AMQP_URL"]


def test_mappings_point_at_the_broker_queue_and_secret(specs, artifacts, config, clients, stubs):
    expect_first_deploy(stubs)
    deploy(specs, artifacts, config, clients)

    broker_arn = clients.mq.list_brokers()["BrokerSummaries"][0]["BrokerArn"]
    secret_arn = clients.secrets.describe_secret(SecretId="credit-test/broker")["ARN"]
    created = stubs.requested("CreateEventSourceMapping")
    assert [(m["FunctionName"], m["Queues"]) for m in created] == [
        (AGE, ["rule.age"]),
        (VALUE, ["rule.value"]),
    ]
    for request in created:
        assert request["EventSourceArn"] == broker_arn
        assert request["BatchSize"] == 100
        assert request["MaximumBatchingWindowInSeconds"] == 0  # as function.json declares
        assert request["SourceAccessConfigurations"] == [
            {"Type": "BASIC_AUTH", "URI": secret_arn},
            {"Type": "VIRTUAL_HOST", "URI": "/"},
        ]


def test_broker_is_a_private_rabbitmq_broker_whose_user_is_in_the_secret(
    specs, artifacts, config, clients, stubs
):
    expect_first_deploy(stubs)
    deploy(specs, artifacts, config, clients)

    summary = clients.mq.list_brokers()["BrokerSummaries"][0]
    broker = clients.mq.describe_broker(BrokerId=summary["BrokerId"])
    assert (broker["BrokerName"], broker["EngineType"]) == ("credit-test", "RABBITMQ")
    assert broker["PubliclyAccessible"] is False
    assert broker["DeploymentMode"] == "SINGLE_INSTANCE"
    assert broker["Tags"]["stage"] == "test"
    secret = json.loads(
        clients.secrets.get_secret_value(SecretId="credit-test/broker")["SecretString"]
    )
    assert set(secret) == {"username", "password"}
    assert broker["Users"] == [{"Username": secret["username"]}]
    assert len(secret["password"]) >= 12 and not set(secret["password"]) & set(",:=")


def test_role_policy_grants_what_the_mq_event_source_needs(
    specs, artifacts, config, clients, stubs
):
    expect_first_deploy(stubs)
    deploy(specs, artifacts, config, clients)

    document = clients.iam.get_role_policy(
        RoleName="credit-test-functions", PolicyName="credit-test-functions"
    )["PolicyDocument"]
    statements = {s["Sid"]: s for s in document["Statement"]}
    secret_arn = clients.secrets.describe_secret(SecretId="credit-test/broker")["ARN"]
    assert statements["BrokerSecret"]["Action"] == "secretsmanager:GetSecretValue"
    assert statements["BrokerSecret"]["Resource"] == secret_arn
    assert statements["ServicesSecret"]["Action"] == "secretsmanager:GetSecretValue"
    assert statements["ServicesSecret"]["Resource"] == services_arn(clients)
    assert statements["Broker"]["Action"] == "mq:DescribeBroker"
    assert "ec2:CreateNetworkInterface" in statements["Network"]["Action"]
    assert "logs:PutLogEvents" in statements["Logs"]["Action"]


def test_second_deploy_changes_nothing(specs, artifacts, config, clients, stubs, calls):
    expect_first_deploy(stubs)
    deploy(specs, artifacts, config, clients)
    calls.clear()
    expect_listing(stubs)

    plan = deploy(specs, artifacts, config, clients)

    assert set(actions(plan).values()) == {Action.UNCHANGED}
    assert plan.find("secret", SERVICES).detail == ""  # every setting known, none missing
    assert not plan.changed
    assert calls.writes == []
    stubs.stubber.assert_no_pending_responses()


def test_a_new_database_url_updates_only_the_secret(
    specs, artifacts, config, clients, stubs, calls
):
    expect_first_deploy(stubs)
    deploy(specs, artifacts, config, clients)
    moved = dataclasses.replace(
        config, mysql_url=config.mysql_url.replace("cluster-x", "cluster-y")
    )
    calls.clear()
    expect_listing(stubs)

    plan = deploy(specs, artifacts, moved, clients)

    change = plan.find("secret", SERVICES)
    assert (change.action, change.detail) == (Action.UPDATE, "MYSQL_URL")
    assert MYSQL_PASSWORD not in plan.render("deploy")  # the plan names settings, not values
    assert [c for c in plan.changes if c.action is not Action.UNCHANGED] == [change]
    assert calls.writes == ["PutSecretValue"]
    assert stored(clients, SERVICES)["MYSQL_URL"] == moved.mysql_url


def test_functions_deployed_with_urls_in_their_environment_lose_them(
    specs, artifacts, config, clients, stubs
):
    expect_first_deploy(stubs)
    deploy(specs, artifacts, config, clients)
    old = {"MIN_AGE": "18", "MYSQL_URL": config.mysql_url, "REDIS_URL": config.redis_url}
    clients.lambda_.update_function_configuration(FunctionName=AGE, Environment={"Variables": old})
    expect_listing(stubs)

    plan = deploy(specs, artifacts, config, clients)

    assert plan.find("lambda-function", AGE).detail == "Environment"
    variables = clients.lambda_.get_function_configuration(FunctionName=AGE)["Environment"]
    assert variables["Variables"] == {"MIN_AGE": "18", "CREDIT_SECRET_ID": services_arn(clients)}


def test_changed_declaration_updates_only_what_changed(specs, artifacts, config, clients, stubs):
    expect_first_deploy(stubs)
    deploy(specs, artifacts, config, clients)
    age, value = specs
    age = dataclasses.replace(age, timeout=60.0)
    value = with_event_source(value, batch_size=500, maximum_batching_window=5.0)
    expect_listing(stubs)
    [value_mapping] = stubs.of(VALUE)
    stubs.expect_update(value_mapping["UUID"], BatchSize=500, MaximumBatchingWindowInSeconds=5)

    plan = deploy([age, value], artifacts, config, clients)

    assert plan.find("lambda-function", AGE).action is Action.UPDATE
    assert plan.find("lambda-function", AGE).detail == "Timeout"
    assert plan.find("lambda-function", VALUE).action is Action.UNCHANGED
    assert plan.find("event-source", f"{AGE} <- rule.age").action is Action.UNCHANGED
    changed = plan.find("event-source", f"{VALUE} <- rule.value")
    assert changed.action is Action.UPDATE
    assert changed.detail == "BatchSize, MaximumBatchingWindowInSeconds"
    assert clients.lambda_.get_function_configuration(FunctionName=AGE)["Timeout"] == 60
    stubs.stubber.assert_no_pending_responses()


def test_a_new_queue_replaces_the_mapping(specs, artifacts, config, clients, stubs):
    expect_first_deploy(stubs)
    deploy(specs, artifacts, config, clients)
    age, value = specs
    moved = with_event_source(age, queue="rule.age.v2")
    stubs.expect_list(AGE)
    stubs.expect_delete(AGE)
    stubs.expect_create(AGE, "rule.age.v2")
    stubs.expect_list(VALUE)

    plan = deploy([moved, value], artifacts, config, clients)

    assert plan.find("event-source", f"{AGE} <- rule.age.v2").action is Action.REPLACE
    stubs.stubber.assert_no_pending_responses()


def test_changed_code_is_uploaded_again(specs, artifacts, config, clients, stubs, tmp_path):
    from infra.package import build_zip

    expect_first_deploy(stubs)
    deploy(specs, artifacts, config, clients)
    source = tmp_path / "age_rule"
    source.mkdir()
    for name in ("handler.py", "rule.py"):
        (source / name).write_text((specs[0].directory / name).read_text())
    (source / "rule.py").write_text((source / "rule.py").read_text() + "\n# changed\n")
    changed = build_zip(dataclasses.replace(specs[0], directory=source), tmp_path / "age.zip")
    expect_listing(stubs)

    plan = deploy(specs, {**artifacts, "age_rule": changed}, config, clients)

    assert plan.find("lambda-function", AGE).action is Action.UPDATE
    assert plan.find("lambda-function", AGE).detail == "code"
    current = clients.lambda_.get_function_configuration(FunctionName=AGE)
    assert current["CodeSha256"] == changed.code_sha256


def test_dry_run_on_an_empty_account_calls_no_write_api(
    specs, artifacts, config, clients, stubs, calls
):
    plan = deploy(specs, artifacts, config, clients, Options(dry_run=True))

    assert plan.dry_run
    assert set(actions(plan).values()) == {Action.CREATE}
    services = plan.find("secret", SERVICES)
    assert services.detail == "without AMQP_URL"  # no broker endpoint before the broker exists
    assert calls.operations and calls.writes == []
    assert clients.lambda_.list_functions()["Functions"] == []
    assert clients.mq.list_brokers()["BrokerSummaries"] == []
    assert clients.secrets.list_secrets()["SecretList"] == []
    assert "plan (dry run: nothing was changed)" in plan.render("deploy test")


def test_dry_run_after_a_change_plans_the_update_without_applying_it(
    specs, artifacts, config, clients, stubs, calls
):
    expect_first_deploy(stubs)
    deploy(specs, artifacts, config, clients)
    calls.clear()
    age, value = specs
    expect_listing(stubs)

    plan = deploy(
        [dataclasses.replace(age, memory_size=512), value],
        artifacts,
        config,
        clients,
        Options(dry_run=True),
    )

    assert plan.find("lambda-function", AGE).action is Action.UPDATE
    assert calls.writes == []
    assert clients.lambda_.get_function_configuration(FunctionName=AGE)["MemorySize"] == 256


def test_dry_run_plans_a_secret_update_without_writing_it(
    specs, artifacts, config, clients, stubs, calls
):
    expect_first_deploy(stubs)
    deploy(specs, artifacts, config, clients)
    before = stored(clients, SERVICES)
    calls.clear()
    expect_listing(stubs)
    moved = dataclasses.replace(config, redis_url=config.redis_url.replace("6379/0", "6379/1"))

    plan = deploy(specs, artifacts, moved, clients, Options(dry_run=True))

    assert plan.find("secret", SERVICES).action is Action.UPDATE
    assert plan.find("secret", SERVICES).detail == "REDIS_URL"
    assert calls.writes == []
    assert stored(clients, SERVICES) == before


def test_missing_service_urls_are_warnings_in_a_dry_run(specs, artifacts, clients, stubs):
    bare = StageConfig(stage="test", region="us-east-1")

    plan = deploy(specs, artifacts, bare, clients, Options(dry_run=True))

    assert any("MYSQL_URL" in warning for warning in plan.warnings)
    rendered = plan.render("deploy")
    assert "warning: option --mysql-url: MYSQL_URL: is required" in rendered
    assert "warning: option --subnet-ids/--security-group-ids: VpcConfig: is required" in rendered


def test_existing_broker_given_by_arn_is_used_not_managed(specs, artifacts, config, clients, stubs):
    mq = boto3.client("mq", region_name="us-east-1")
    existing = mq.create_broker(
        BrokerName="shared",
        EngineType="RABBITMQ",
        EngineVersion="3.13",
        HostInstanceType="mq.m5.large",
        DeploymentMode="SINGLE_INSTANCE",
        PubliclyAccessible=False,
        AutoMinorVersionUpgrade=True,
        Users=[{"Username": "ops", "Password": "a-long-password-1"}],
    )
    given = dataclasses.replace(
        config,
        broker_arn=existing["BrokerArn"],
        broker_credentials=BrokerCredentials("ops", "a-long-password-1"),
    )
    expect_first_deploy(stubs)

    plan = deploy(specs, artifacts, given, clients)

    change = plan.find("mq-broker", existing["BrokerArn"])
    assert change.action is Action.UNCHANGED and "not managed" in change.detail
    assert [b["BrokerName"] for b in mq.list_brokers()["BrokerSummaries"]] == ["shared"]
    created = stubs.requested("CreateEventSourceMapping")
    assert {m["EventSourceArn"] for m in created} == {existing["BrokerArn"]}
    secret = clients.secrets.get_secret_value(SecretId="credit-test/broker")["SecretString"]
    assert json.loads(secret) == {"username": "ops", "password": "a-long-password-1"}
    assert stored(clients, SERVICES)["AMQP_URL"] == "amqps://ops:a-long-password-1@mockmq:5671/%2F"


def test_unknown_broker_arn_fails_before_anything_is_written(
    specs, artifacts, config, clients, stubs, calls
):
    given = dataclasses.replace(
        config,
        broker_arn="arn:aws:mq:us-east-1:123456789012:broker:gone:b-0000",
        broker_credentials=BrokerCredentials("ops", "a-long-password-1"),
    )

    with pytest.raises(DeployError, match="was not found"):
        deploy(specs, artifacts, given, clients, Options(dry_run=True))
    assert calls.writes == []


def test_existing_broker_without_credentials_is_refused_before_any_write(
    specs, artifacts, config, clients, stubs, calls
):
    given = dataclasses.replace(config, broker_arn="arn:aws:mq:us-east-1:123456789012:broker:x:b-1")

    with pytest.raises(DeployError, match="CREDIT_BROKER_USERNAME"):
        deploy(specs, artifacts, given, clients)
    assert calls.writes == []


def test_given_credentials_update_the_secret(specs, artifacts, config, clients, stubs):
    expect_first_deploy(stubs)
    deploy(specs, artifacts, config, clients)
    rotated = dataclasses.replace(
        config, broker_credentials=BrokerCredentials("credit", "rotated-password-123")
    )
    expect_listing(stubs)

    plan = deploy(specs, artifacts, rotated, clients)

    assert plan.find("secret", "credit-test/broker").action is Action.UPDATE
    secret = clients.secrets.get_secret_value(SecretId="credit-test/broker")["SecretString"]
    assert json.loads(secret)["password"] == "rotated-password-123"
    assert plan.find("secret", SERVICES).detail == "AMQP_URL"  # the URL carries the password
    assert "rotated-password-123" in stored(clients, SERVICES)["AMQP_URL"]
