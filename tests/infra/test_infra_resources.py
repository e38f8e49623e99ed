"""Resource details AWS exhibits and moto does not: IAM propagation, slow brokers, drift."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from infra.errors import DeployError
from infra.resources import broker, function, role
from infra.resources.broker import BrokerRef


def client_error(code: str, message: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}}, "Operation")


class NoWait:
    def wait(self, **_: object) -> None:
        return None


class SlowRoleLambda:
    """create_function refuses until the new role has propagated, as IAM does for seconds."""

    def __init__(self, refusals: int) -> None:
        self.refusals = refusals
        self.attempts = 0

    def create_function(self, **arguments: object) -> dict[str, str]:
        self.attempts += 1
        if self.attempts <= self.refusals:
            raise client_error(
                "InvalidParameterValueException",
                "The role defined for the function cannot be assumed by Lambda.",
            )
        return {"FunctionArn": f"arn:aws:lambda:us-east-1:1:function:{arguments['FunctionName']}"}

    def get_function_configuration(self, FunctionName: str) -> dict[str, Any]:
        raise client_error("ResourceNotFoundException", f"Function not found: {FunctionName}")

    def get_waiter(self, name: str) -> NoWait:
        return NoWait()


class StartingBroker:
    """describe_broker reports the states a new broker goes through."""

    def __init__(self, states: list[str]) -> None:
        self.states = states

    def describe_broker(self, BrokerId: str) -> dict[str, object]:
        state = self.states.pop(0) if len(self.states) > 1 else self.states[0]
        return {
            "BrokerArn": f"arn:aws:mq:us-east-1:1:broker:b:{BrokerId}",
            "BrokerId": BrokerId,
            "BrokerState": state,
            "BrokerInstances": [{"Endpoints": ["amqps://b-1.mq.us-east-1.amazonaws.com:5671"]}],
        }


def test_function_creation_waits_for_a_new_role(specs, artifacts, config):
    lambda_client: Any = SlowRoleLambda(refusals=2)
    slept: list[float] = []

    _, arn = function.ensure(
        lambda_client,
        specs[0],
        config,
        artifacts["age_rule"],
        "arn:role",
        "arn:services",
        False,
        slept.append,
    )

    assert arn.endswith(":function:credit-test-age_rule")
    assert lambda_client.attempts == 3 and len(slept) == 2


def test_other_creation_errors_are_not_retried(specs, artifacts, config):
    class Refusing(SlowRoleLambda):
        def create_function(self, **arguments: object) -> dict[str, str]:
            self.attempts += 1
            raise client_error("CodeStorageExceededException", "out of code storage")

    client: Any = Refusing(0)

    with pytest.raises(DeployError, match="could not create lambda-function credit-test-age_rule"):
        function.ensure(
            client, specs[0], config, artifacts["age_rule"], "arn:role", "arn:services", False
        )
    assert client.attempts == 1


def test_waiting_for_a_broker_polls_until_it_runs():
    mq: Any = StartingBroker(["CREATION_IN_PROGRESS", "CREATION_IN_PROGRESS", "RUNNING"])
    slept: list[float] = []

    ready = broker.wait_until_running(
        mq, BrokerRef("arn", "b-1", "CREATION_IN_PROGRESS"), sleep=slept.append
    )

    assert ready.state == "RUNNING"
    assert ready.amqp_endpoint == "amqps://b-1.mq.us-east-1.amazonaws.com:5671"
    assert slept == [30, 30]


def test_a_broker_that_never_starts_is_an_error():
    mq: Any = StartingBroker(["CREATION_FAILED"])

    with pytest.raises(DeployError, match="CREATION_FAILED"):
        broker.wait_until_running(mq, BrokerRef("arn", "b-1", "X"), sleep=lambda _: None)


def test_function_differences_ignore_order_and_absent_defaults(specs, config):
    desired = function.desired_configuration(specs[0], config, "arn:role", "arn:services")
    current = {
        **{key: desired[key] for key in function.COMPARED},
        "Environment": {"Variables": dict(desired["Environment"]["Variables"])},
        "VpcConfig": {
            "SubnetIds": list(reversed(config.subnet_ids)),
            "SecurityGroupIds": list(config.security_group_ids),
            "VpcId": "vpc-1",
        },
    }

    assert function.differences(current, desired) == []
    assert function.differences({**current, "MemorySize": 128}, desired) == ["MemorySize"]
    assert function.differences({**current, "Environment": None}, desired) == ["Environment"]


def test_function_environment_is_the_declared_one_plus_the_secret_id(specs, config):
    desired = function.desired_configuration(specs[0], config, "arn:role", "arn:services")

    assert desired["Environment"]["Variables"] == {
        **specs[0].environment,
        "CREDIT_SECRET_ID": "arn:services",
    }


def test_policy_comparison_ignores_key_and_list_order(config):
    policy = role.execution_policy(config, "arn:secret", "arn:broker", "arn:services")
    reordered = {
        "Statement": [
            {**statement, "Action": sorted(statement["Action"], reverse=True)}
            if isinstance(statement["Action"], list)
            else statement
            for statement in reversed(policy["Statement"])
        ],
        "Version": "2012-10-17",
    }

    assert role._same(reordered, policy)
    assert not role._same({**policy, "Statement": policy["Statement"][:-1]}, policy)


def test_broker_arn_ends_with_the_broker_id():
    arn = "arn:aws:mq:eu-west-1:123456789012:broker:shared:b-1234-abcd"

    assert broker.broker_id(arn) == "b-1234-abcd"


def test_single_instance_broker_gets_one_subnet(config):
    from infra.config import BrokerCredentials

    arguments = broker.create_arguments(config, BrokerCredentials("credit", "p" * 16))

    assert arguments["SubnetIds"] == [config.subnet_ids[0]]
    assert arguments["EngineType"] == "RABBITMQ" and arguments["PubliclyAccessible"] is False
