"""What one deployment (a stage) is made of: options, resource names and tags."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from credit import settings

PROJECT = "credit"
MANAGED_BY = "credit-infra"
MANAGED_BY_TAG = "managed-by"
STAGE_TAG = "stage"
STAGE_PATTERN = re.compile(r"^[a-z][a-z0-9-]{0,19}$")

# Environment variables the deploy command reads; distinct from the services' own AMQP_URL,
# MYSQL_URL and REDIS_URL, so a developer's local settings are never deployed by accident.
DEPLOY_MYSQL_URL = "CREDIT_DEPLOY_MYSQL_URL"
DEPLOY_REDIS_URL = "CREDIT_DEPLOY_REDIS_URL"
BROKER_USERNAME = "CREDIT_BROKER_USERNAME"
BROKER_PASSWORD = "CREDIT_BROKER_PASSWORD"  # noqa: S105 - the variable's name, not a secret

SINGLE_INSTANCE = "SINGLE_INSTANCE"
CLUSTER_MULTI_AZ = "CLUSTER_MULTI_AZ"
DEFAULT_BROKER_INSTANCE_TYPE = "mq.t3.micro"
DEFAULT_BROKER_ENGINE_VERSION = "3.13"  # quorum queues on Amazon MQ need 3.13 or later

# Settings that carry credentials: deploy keeps them in the stage's services secret, which
# credit.settings reads through CREDIT_SECRET_ID; they never go into a Lambda environment.
SERVICE_SETTINGS = (settings.AMQP_URL, settings.MYSQL_URL, settings.REDIS_URL)


@dataclass(frozen=True)
class BrokerCredentials:
    """The broker user the event source mappings log in as, stored in Secrets Manager."""

    username: str
    password: str

    def secret_string(self) -> str:
        """The JSON Lambda's Amazon MQ event source mapping expects in a BASIC_AUTH secret."""
        return json.dumps({"username": self.username, "password": self.password})

    def __repr__(self) -> str:
        return f"BrokerCredentials(username={self.username!r}, password='***')"


@dataclass(frozen=True)
class StageConfig:
    """The options of one deployment; every AWS name is derived from the stage."""

    stage: str = "dev"
    region: str = "us-east-1"
    broker_arn: str | None = None
    subnet_ids: tuple[str, ...] = ()
    security_group_ids: tuple[str, ...] = ()
    mysql_url: str | None = None
    redis_url: str | None = None
    broker_credentials: BrokerCredentials | None = None
    broker_instance_type: str = DEFAULT_BROKER_INSTANCE_TYPE
    broker_engine_version: str = DEFAULT_BROKER_ENGINE_VERSION
    broker_deployment_mode: str = SINGLE_INSTANCE
    broker_username: str = "credit"
    extra_tags: dict[str, str] = field(default_factory=dict)

    @property
    def prefix(self) -> str:
        return f"{PROJECT}-{self.stage}"

    @property
    def role_name(self) -> str:
        return f"{self.prefix}-functions"

    @property
    def policy_name(self) -> str:
        return f"{self.prefix}-functions"

    @property
    def secret_name(self) -> str:
        """The broker user's secret, which the event source mappings log in with."""
        return f"{self.prefix}/broker"

    @property
    def services_secret_name(self) -> str:
        """The service URLs' secret, which the functions and the API read via CREDIT_SECRET_ID."""
        return f"{self.prefix}/services"

    @property
    def broker_name(self) -> str:
        return self.prefix

    @property
    def manages_broker(self) -> bool:
        """True when infra creates the broker; False when an existing one is given by ARN."""
        return self.broker_arn is None

    def function_name(self, declared_name: str) -> str:
        return f"{self.prefix}-{declared_name}"

    @property
    def tags(self) -> dict[str, str]:
        """Tags on every resource; teardown deletes only what carries them."""
        return {
            **self.extra_tags,
            "project": "credit-pipeline",
            STAGE_TAG: self.stage,
            MANAGED_BY_TAG: MANAGED_BY,
        }

    def owns(self, tags: dict[str, str]) -> bool:
        """Whether a resource's tags say this stage's deploy created it."""
        return tags.get(MANAGED_BY_TAG) == MANAGED_BY and tags.get(STAGE_TAG) == self.stage

    def service_settings(self, amqp_url: str | None = None) -> dict[str, str | None]:
        """What the services secret holds, under the names credit.settings reads.

        None stands for a value this run cannot tell (AMQP_URL before the broker has an
        endpoint, a URL left out of a dry run); the secret then keeps what it holds.
        """
        return {
            settings.AMQP_URL: amqp_url,
            settings.MYSQL_URL: self.mysql_url,
            settings.REDIS_URL: self.redis_url,
        }


def function_environment(declared: Mapping[str, str], secret_id: str) -> dict[str, str]:
    """A function's Lambda environment: its declared variables and where its settings are.

    The service URLs are not in it: credit.settings fetches them from the secret.
    """
    return {**declared, settings.SECRET_ID: secret_id}
