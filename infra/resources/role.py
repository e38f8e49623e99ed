"""The functions' IAM execution role and its inline policy (logs, secrets, VPC, broker)."""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from infra.config import StageConfig
from infra.plan import Action, Change
from infra.resources.common import failed, is_not_found, pending

if TYPE_CHECKING:
    from mypy_boto3_iam import IAMClient

LOGGER = logging.getLogger(__name__)
ROLE = "iam-role"
POLICY = "iam-policy"

TRUST_POLICY: dict[str, Any] = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"Service": "lambda.amazonaws.com"},
            "Action": "sts:AssumeRole",
        }
    ],
}
# What Lambda needs to run a function in a VPC and to poll an Amazon MQ broker for it.
NETWORK_ACTIONS = [
    "ec2:CreateNetworkInterface",
    "ec2:DeleteNetworkInterface",
    "ec2:DescribeNetworkInterfaces",
    "ec2:DescribeSecurityGroups",
    "ec2:DescribeSubnets",
    "ec2:DescribeVpcs",
]


def execution_policy(
    config: StageConfig, secret_arn: str, broker_arn: str, services_secret_arn: str
) -> dict[str, Any]:
    """The inline policy, scoped to this stage's log groups, secrets and broker.

    BrokerSecret is for Lambda's MQ poller (BASIC_AUTH); ServicesSecret is for the functions'
    own code, which reads the service URLs through CREDIT_SECRET_ID.
    """
    log_group = f"arn:aws:logs:{config.region}:*:log-group:/aws/lambda/{config.prefix}-*"
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "Logs",
                "Effect": "Allow",
                "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
                "Resource": [log_group, f"{log_group}:*"],
            },
            {
                "Sid": "BrokerSecret",
                "Effect": "Allow",
                "Action": "secretsmanager:GetSecretValue",
                "Resource": secret_arn,
            },
            {
                "Sid": "ServicesSecret",
                "Effect": "Allow",
                "Action": "secretsmanager:GetSecretValue",
                "Resource": services_secret_arn,
            },
            {
                "Sid": "Broker",
                "Effect": "Allow",
                "Action": "mq:DescribeBroker",
                "Resource": broker_arn,
            },
            {"Sid": "Network", "Effect": "Allow", "Action": NETWORK_ACTIONS, "Resource": "*"},
        ],
    }


def ensure(
    client: IAMClient, config: StageConfig, policy: dict[str, Any], dry_run: bool
) -> tuple[list[Change], str]:
    """Create or update the role and its policy; returns both changes and the role's ARN."""
    name = config.role_name
    role = _get_role(client, name)
    if role is None:
        if not dry_run:
            role = _create_role(client, config)
        arn = pending(ROLE, name) if role is None else str(role["Arn"])
        role_change = Change(ROLE, name, Action.CREATE)
    else:
        arn = str(role["Arn"])
        role_change = _ensure_trust(client, name, role, dry_run)
    policy_change = _ensure_policy(client, config, policy, role is None, dry_run)
    return [role_change, policy_change], arn


def delete(client: IAMClient, config: StageConfig, dry_run: bool) -> list[Change]:
    """Delete the inline policy and the role, if this stage created them."""
    name = config.role_name
    role = _get_role(client, name)
    if role is None:
        return [
            Change(POLICY, config.policy_name, Action.ABSENT),
            Change(ROLE, name, Action.ABSENT),
        ]
    tags = {tag["Key"]: tag["Value"] for tag in role.get("Tags", [])}
    if not config.owns(tags):
        return [Change(ROLE, name, Action.SKIP, "not tagged as created by this stage")]
    try:
        policies = client.list_role_policies(RoleName=name)["PolicyNames"]
        if not dry_run:
            for policy_name in policies:
                client.delete_role_policy(RoleName=name, PolicyName=policy_name)
            client.delete_role(RoleName=name)
    except ClientError as exc:
        raise failed("delete", ROLE, name, exc) from exc
    changes = [Change(POLICY, policy_name, Action.DELETE) for policy_name in policies]
    return [*changes, Change(ROLE, name, Action.DELETE)]


def _ensure_trust(client: IAMClient, name: str, role: dict[str, Any], dry_run: bool) -> Change:
    if _same(role.get("AssumeRolePolicyDocument"), TRUST_POLICY):
        return Change(ROLE, name, Action.UNCHANGED)
    if not dry_run:
        try:
            client.update_assume_role_policy(RoleName=name, PolicyDocument=json.dumps(TRUST_POLICY))
        except ClientError as exc:
            raise failed("update", ROLE, name, exc) from exc
    return Change(ROLE, name, Action.UPDATE, "trust policy")


def _ensure_policy(
    client: IAMClient, config: StageConfig, policy: dict[str, Any], new_role: bool, dry_run: bool
) -> Change:
    name = config.policy_name
    current = None if new_role else _get_policy(client, config.role_name, name)
    if current is not None and _same(current, policy):
        return Change(POLICY, name, Action.UNCHANGED)
    action = Action.CREATE if current is None else Action.UPDATE
    if not dry_run:
        try:
            client.put_role_policy(
                RoleName=config.role_name, PolicyName=name, PolicyDocument=json.dumps(policy)
            )
        except ClientError as exc:
            raise failed("write", POLICY, name, exc) from exc
    return Change(POLICY, name, action)


def _create_role(client: IAMClient, config: StageConfig) -> dict[str, Any]:
    try:
        response = client.create_role(
            RoleName=config.role_name,
            AssumeRolePolicyDocument=json.dumps(TRUST_POLICY),
            Description=f"Execution role of the credit {config.stage} functions",
            Tags=[{"Key": key, "Value": value} for key, value in config.tags.items()],
        )
    except ClientError as exc:
        raise failed("create", ROLE, config.role_name, exc) from exc
    LOGGER.info("created role %s", config.role_name)
    return dict(response["Role"])


def _get_role(client: IAMClient, name: str) -> dict[str, Any] | None:
    try:
        return dict(client.get_role(RoleName=name)["Role"])
    except ClientError as exc:
        if is_not_found(exc):
            return None
        raise failed("read", ROLE, name, exc) from exc


def _get_policy(client: IAMClient, role: str, name: str) -> Any:
    try:
        return client.get_role_policy(RoleName=role, PolicyName=name)["PolicyDocument"]
    except ClientError as exc:
        if is_not_found(exc):
            return None
        raise failed("read", POLICY, name, exc) from exc


def _same(current: Any, desired: dict[str, Any]) -> bool:
    """IAM hands documents back decoded (boto3) or as JSON text; compare them canonically."""
    if isinstance(current, str):
        try:
            current = json.loads(current)
        except ValueError:
            return False
    return _canonical(current) == _canonical(desired)


def _canonical(document: Any) -> Any:
    if isinstance(document, dict):
        return {key: _canonical(value) for key, value in sorted(document.items())}
    if isinstance(document, list):
        items = [_canonical(item) for item in document]
        return sorted(items, key=lambda item: json.dumps(item, sort_keys=True))
    return document
