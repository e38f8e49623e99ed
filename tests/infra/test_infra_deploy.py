"""Deploy against moto (IAM, Secrets Manager, MQ, Lambda), the mappings on botocore's Stubber."""

from __future__ import annotations

import dataclasses
import json

import boto3
import pytest

from infra.config import BrokerCredentials, StageConfig
from infra.deploy import Options, deploy
from infra.errors import DeployError
from infra.plan import Action
from local_runtime.declaration import FunctionSpec

AGE, VALUE = "credit-test-age_rule", "credit-test-value_rule"


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


def test_first_deploy_creates_every_resource(specs, artifacts, config, clients, stubs):
    expect_first_deploy(stubs)

    plan = deploy(specs, artifacts, config, clients)

    assert set(actions(plan).values()) == {Action.CREATE}
    assert [change.kind for change in plan.changes] == [
        "secret", "mq-broker", "iam-role", "iam-policy",
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
        "MYSQL_URL": config.mysql_url,
        "REDIS_URL": config.redis_url,
    }
    assert set(age["VpcConfig"]["SubnetIds"]) == set(config.subnet_ids)
    assert age["VpcConfig"]["SecurityGroupIds"] == list(config.security_group_ids)
    assert age["CodeSha256"] == artifacts["age_rule"].code_sha256
    assert age["Role"].endswith(":role/credit-test-functions")
    tags = clients.lambda_.list_tags(Resource=age["FunctionArn"])["Tags"]
    assert tags["stage"] == "test" and tags["managed-by"] == "credit-infra"


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
        assert "MaximumBatchingWindowInSeconds" not in request  # 0.5 s is AWS's own default
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
    assert not plan.changed
    assert calls.writes == []
    stubs.stubber.assert_no_pending_responses()


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
    assert calls.operations and calls.writes == []
    assert clients.lambda_.list_functions()["Functions"] == []
    assert clients.mq.list_brokers()["BrokerSummaries"] == []
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
