"""The Amazon MQ for RabbitMQ broker: created for the stage, or an existing one given by ARN."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from infra.config import SINGLE_INSTANCE, BrokerCredentials, StageConfig
from infra.errors import DeployError
from infra.plan import Action, Change
from infra.resources.common import failed, is_not_found, pending

if TYPE_CHECKING:
    from mypy_boto3_mq import MQClient

LOGGER = logging.getLogger(__name__)
KIND = "mq-broker"
RUNNING = "RUNNING"
GONE_STATES = ("DELETION_IN_PROGRESS",)
FAILED_STATES = ("CREATION_FAILED", "CRITICAL_ACTION_REQUIRED")


@dataclass(frozen=True)
class BrokerRef:
    """What the mappings and the topology step need to know about the broker."""

    arn: str
    broker_id: str
    state: str
    endpoints: tuple[str, ...] = ()

    @property
    def amqp_endpoint(self) -> str | None:
        """The first amqps:// endpoint, once the broker is running."""
        return next((e for e in self.endpoints if e.startswith("amqps://")), None)


def broker_id(arn: str) -> str:
    """The broker id is the last field of its ARN."""
    return arn.rsplit(":", 1)[-1]


def ensure(
    client: MQClient, config: StageConfig, credentials: BrokerCredentials, dry_run: bool
) -> tuple[Change, BrokerRef]:
    """Use the broker given by ARN, or find the stage's broker by name, or create it."""
    if config.broker_arn is not None:
        ref = _describe(client, broker_id(config.broker_arn), config.broker_arn)
        if ref is None:
            raise DeployError(f"broker {config.broker_arn} (--broker-arn) was not found")
        return Change(KIND, ref.arn, Action.UNCHANGED, "given by --broker-arn; not managed"), ref
    name = config.broker_name
    found = find(client, name)
    if found is not None and found.state in GONE_STATES:
        raise DeployError(f"broker {name} is being deleted; run deploy again once it is gone")
    if found is not None:
        return Change(KIND, name, Action.UNCHANGED, f"state {found.state}"), found
    if dry_run:
        return Change(KIND, name, Action.CREATE), BrokerRef(pending(KIND, name), "", "PLANNED")
    return Change(KIND, name, Action.CREATE), _create(client, config, credentials)


def find(client: MQClient, name: str) -> BrokerRef | None:
    """The broker with this name, described, or None."""
    try:
        for page in client.get_paginator("list_brokers").paginate():
            for summary in page.get("BrokerSummaries", []):
                if summary.get("BrokerName") == name:
                    return _describe(client, summary["BrokerId"], name)
    except ClientError as exc:
        raise failed("list", KIND, name, exc) from exc
    return None


def wait_until_running(
    client: MQClient,
    ref: BrokerRef,
    timeout: float = 45 * 60,
    poll: float = 30,
    sleep: Callable[[float], None] = time.sleep,
) -> BrokerRef:
    """Poll until the broker runs (a new one takes about 20 minutes); its endpoints come with it."""
    waited = 0.0
    while True:
        current = _describe(client, ref.broker_id, ref.arn)
        if current is None:
            raise DeployError(f"broker {ref.arn} disappeared while waiting for it")
        if current.state == RUNNING:
            return current
        if current.state in FAILED_STATES or waited >= timeout:
            raise DeployError(f"broker {ref.arn} is {current.state} after {waited:.0f} s")
        LOGGER.info("broker %s is %s; waiting", ref.arn, current.state)
        sleep(poll)
        waited += poll


def delete(client: MQClient, config: StageConfig, dry_run: bool) -> Change:
    """Delete the stage's own broker; a broker given by ARN is never touched."""
    name = config.broker_name
    found = find(client, name)
    if found is None or found.state in GONE_STATES:
        return Change(KIND, name, Action.ABSENT)
    tags = _tags(client, found.broker_id, name)
    if not config.owns(tags):
        return Change(KIND, name, Action.SKIP, "not tagged as created by this stage")
    if not dry_run:
        try:
            client.delete_broker(BrokerId=found.broker_id)
        except ClientError as exc:
            raise failed("delete", KIND, name, exc) from exc
    return Change(KIND, name, Action.DELETE)


def create_arguments(config: StageConfig, credentials: BrokerCredentials) -> dict[str, Any]:
    """CreateBroker's parameters: a private RabbitMQ broker in the stage's subnets."""
    subnets = list(config.subnet_ids)
    if config.broker_deployment_mode == SINGLE_INSTANCE:
        subnets = subnets[:1]
    arguments: dict[str, Any] = {
        "BrokerName": config.broker_name,
        "EngineType": "RABBITMQ",
        "EngineVersion": config.broker_engine_version,
        "HostInstanceType": config.broker_instance_type,
        "DeploymentMode": config.broker_deployment_mode,
        "PubliclyAccessible": False,
        "AutoMinorVersionUpgrade": True,
        "Users": [{"Username": credentials.username, "Password": credentials.password}],
        "Tags": config.tags,
    }
    if subnets:
        arguments["SubnetIds"] = subnets
    if config.security_group_ids:
        arguments["SecurityGroups"] = list(config.security_group_ids)
    return arguments


def _create(client: MQClient, config: StageConfig, credentials: BrokerCredentials) -> BrokerRef:
    name = config.broker_name
    try:
        response = client.create_broker(**create_arguments(config, credentials))
    except ClientError as exc:
        raise failed("create", KIND, name, exc) from exc
    LOGGER.info("created broker %s (%s)", name, response["BrokerId"])
    return BrokerRef(response["BrokerArn"], response["BrokerId"], "CREATION_IN_PROGRESS")


def _describe(client: MQClient, identifier: str, label: str) -> BrokerRef | None:
    try:
        response = client.describe_broker(BrokerId=identifier)
    except ClientError as exc:
        if is_not_found(exc):
            return None
        raise failed("read", KIND, label, exc) from exc
    endpoints = [e for i in response.get("BrokerInstances", []) for e in i.get("Endpoints", [])]
    return BrokerRef(
        arn=response["BrokerArn"],
        broker_id=response["BrokerId"],
        state=str(response.get("BrokerState", "")),
        endpoints=tuple(endpoints),
    )


def _tags(client: MQClient, identifier: str, label: str) -> dict[str, str]:
    try:
        return dict(client.describe_broker(BrokerId=identifier).get("Tags", {}))
    except ClientError as exc:
        raise failed("read", KIND, label, exc) from exc
