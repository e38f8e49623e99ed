"""Teardown removes what deploy created, only that, and can be run again safely."""

from __future__ import annotations

import dataclasses
import json

import boto3

from infra.config import BrokerCredentials
from infra.deploy import deploy
from infra.plan import Action
from infra.teardown import teardown

AGE, VALUE = "credit-test-age_rule", "credit-test-value_rule"
SERVICES = "credit-test/services"


def deployed(specs, artifacts, config, clients, stubs) -> None:
    stubs.expect_create(AGE, "rule.age")
    stubs.expect_create(VALUE, "rule.value")
    deploy(specs, artifacts, config, clients)


def expect_teardown(stubs) -> None:
    for name in (AGE, VALUE):
        stubs.expect_list(name)
        stubs.expect_delete(name)


def test_teardown_deletes_everything_deploy_created(specs, artifacts, config, clients, stubs):
    deployed(specs, artifacts, config, clients, stubs)
    expect_teardown(stubs)

    plan = teardown(specs, config, clients)

    assert {change.action for change in plan.changes} == {Action.DELETE}
    assert plan.find("secret", "credit-test/broker").action is Action.DELETE
    assert plan.find("secret", SERVICES).action is Action.DELETE
    assert clients.lambda_.list_functions()["Functions"] == []
    assert clients.mq.list_brokers()["BrokerSummaries"] == []
    assert clients.secrets.list_secrets()["SecretList"] == []
    assert clients.iam.list_roles()["Roles"] == []
    assert stubs.mappings == {}
    stubs.stubber.assert_no_pending_responses()


def test_second_teardown_finds_nothing_and_writes_nothing(
    specs, artifacts, config, clients, stubs, calls
):
    deployed(specs, artifacts, config, clients, stubs)
    expect_teardown(stubs)
    teardown(specs, config, clients)
    calls.clear()

    plan = teardown(specs, config, clients)

    assert {change.action for change in plan.changes} == {Action.ABSENT}
    assert {change.name for change in plan.changes} >= {
        AGE, VALUE, "credit-test-functions", "credit-test/broker", SERVICES
    }  # fmt: skip
    assert calls.writes == []


def test_teardown_dry_run_lists_deletions_without_deleting(
    specs, artifacts, config, clients, stubs, calls
):
    deployed(specs, artifacts, config, clients, stubs)
    stubs.expect_list(AGE)
    stubs.expect_list(VALUE)
    calls.clear()

    plan = teardown(specs, config, clients, dry_run=True)

    assert plan.find("lambda-function", AGE).action is Action.DELETE
    assert plan.find("event-source", f"{AGE} <- rule.age").action is Action.DELETE
    assert plan.find("secret", SERVICES).action is Action.DELETE
    assert calls.writes == []
    assert len(clients.lambda_.list_functions()["Functions"]) == 2
    assert clients.secrets.describe_secret(SecretId=SERVICES)["Name"] == SERVICES


def test_teardown_leaves_other_stages_and_untagged_resources(
    specs, artifacts, config, clients, stubs
):
    deployed(specs, artifacts, config, clients, stubs)
    iam = boto3.client("iam", region_name="us-east-1")
    policy = {"Version": "2012-10-17", "Statement": []}
    iam.create_role(RoleName="credit-other-functions", AssumeRolePolicyDocument=json.dumps(policy))
    clients.secrets.create_secret(Name="credit-other/services", SecretString="{}")
    other = dataclasses.replace(config, stage="other")

    plan = teardown(specs, other, clients)

    assert plan.find("iam-role", "credit-other-functions").action is Action.SKIP
    assert plan.find("secret", "credit-other/services").action is Action.SKIP
    assert clients.secrets.describe_secret(SecretId="credit-other/services")
    assert clients.secrets.describe_secret(SecretId=SERVICES)
    assert plan.find("lambda-function", "credit-other-age_rule").action is Action.ABSENT
    assert len(clients.lambda_.list_functions()["Functions"]) == 2
    assert iam.get_role(RoleName="credit-other-functions")


def test_teardown_never_deletes_a_broker_given_by_arn(specs, artifacts, config, clients, stubs):
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
    deployed(specs, artifacts, given, clients, stubs)
    expect_teardown(stubs)

    plan = teardown(specs, given, clients)

    assert "mq-broker" not in {change.kind for change in plan.changes}
    assert [b["BrokerName"] for b in mq.list_brokers()["BrokerSummaries"]] == ["shared"]
