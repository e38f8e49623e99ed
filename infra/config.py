"""What one deployment (a stage) is made of: its stack, its options and their checks."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from infra.errors import LimitError, Violation

PROJECT = "credit"
STAGE_PATTERN = re.compile(r"^[a-z][a-z0-9-]{0,19}$")
# Stages whose broker and secrets outlive the stack (DeletionPolicy/UpdateReplacePolicy:
# Retain); any other stage is marked with --production.
PRODUCTION_STAGES = frozenset({"prod", "production"})
DEFAULT_LOG_RETENTION_DAYS = 14
PRODUCTION_LOG_RETENTION_DAYS = 90

# The root template's parameters that deploy fills in (names, ARNs and ids: no secret).
SUBNET_IDS = "SubnetIds"
SECURITY_GROUP_IDS = "SecurityGroupIds"
DATABASE_SECRET_ARN = "DatabaseSecretArn"  # noqa: S105 - a parameter name, not a secret
EXISTING_BROKER_ARN = "ExistingBrokerArn"
EXISTING_BROKER_SECRET_ARN = "ExistingBrokerSecretArn"  # noqa: S105 - a parameter name
EXISTING_BROKER_HOST = "ExistingBrokerHost"
LOG_RETENTION = "LogRetentionDays"


@dataclass(frozen=True)
class ExistingBroker:
    """An Amazon MQ broker the stack uses but does not own."""

    arn: str
    secret_arn: str  # a {"username", "password"} secret of a user on that broker
    host: str  # the AMQPS endpoint's host:port, e.g. b-1234.mq.eu-west-1.amazonaws.com:5671


@dataclass(frozen=True)
class StageConfig:
    """The options of one deployment; the stack's name and tags derive from the stage."""

    stage: str = "dev"
    region: str = "us-east-1"
    subnet_ids: tuple[str, ...] = ()
    security_group_ids: tuple[str, ...] = ()
    database_secret_arn: str = ""
    broker: ExistingBroker | None = None
    production: bool = False
    log_retention_days: int | None = None
    extra_tags: dict[str, str] = field(default_factory=dict)

    @property
    def stack_name(self) -> str:
        return f"{PROJECT}-{self.stage}"

    @property
    def is_production(self) -> bool:
        """Production keeps its broker and secrets when the stack goes (Retain)."""
        return self.production or self.stage in PRODUCTION_STAGES

    @property
    def retention_days(self) -> int:
        if self.log_retention_days is not None:
            return self.log_retention_days
        if self.is_production:
            return PRODUCTION_LOG_RETENTION_DAYS
        return DEFAULT_LOG_RETENTION_DAYS

    @property
    def tags(self) -> dict[str, str]:
        """Tags on the stack; CloudFormation copies them onto every resource it creates."""
        return {
            **self.extra_tags,
            "project": "credit-pipeline",
            "stage": self.stage,
            "production": str(self.is_production).lower(),
        }

    def parameters(self) -> dict[str, str]:
        """The stack parameters: ids and ARNs only; every password stays in Secrets Manager."""
        broker = self.broker
        return {
            SUBNET_IDS: ",".join(self.subnet_ids),
            SECURITY_GROUP_IDS: ",".join(self.security_group_ids),
            DATABASE_SECRET_ARN: self.database_secret_arn,
            EXISTING_BROKER_ARN: broker.arn if broker else "",
            EXISTING_BROKER_SECRET_ARN: broker.secret_arn if broker else "",
            EXISTING_BROKER_HOST: broker.host if broker else "",
            LOG_RETENTION: str(self.retention_days),
        }

    def check(self) -> None:
        """Raise LimitError naming every option AWS would refuse, before any AWS call."""
        violations = list(self.violations())
        if violations:
            raise LimitError(violations)

    def violations(self) -> list[Violation]:
        found = []
        if not STAGE_PATTERN.match(self.stage):
            found.append(
                Violation("option --stage", "stage", "must be 1-20 of a-z, 0-9, '-', from a-z")
            )
        if not self.subnet_ids or not self.security_group_ids:
            found.append(
                Violation(
                    "option --subnet-ids/--security-group-ids",
                    "VpcConfig",
                    "both are required: the databases and a private broker are reachable "
                    "only inside the VPC",
                )
            )
        if not self.database_secret_arn.startswith("arn:"):
            found.append(
                Violation(
                    "option --database-secret-arn",
                    DATABASE_SECRET_ARN,
                    "is required: the ARN of the secret holding MYSQL_URL and REDIS_URL",
                )
            )
        broker = self.broker
        if broker and not (broker.secret_arn.startswith("arn:") and broker.host):
            found.append(
                Violation(
                    "option --broker-arn",
                    EXISTING_BROKER_ARN,
                    "an existing broker needs --broker-secret-arn and --broker-host too",
                )
            )
        return found
