"""The stage's Secrets Manager secrets.

- `credit-<stage>/broker`: the broker user, which the mappings' BASIC_AUTH points at.
- `credit-<stage>/services`: the service URLs, credentials included ({"MYSQL_URL": ...}), which
  credit.settings reads through CREDIT_SECRET_ID, so no credential is a Lambda variable.
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from infra.config import BrokerCredentials, StageConfig
from infra.errors import DeployError
from infra.plan import Action, Change
from infra.resources.common import failed, is_not_found, pending

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient

LOGGER = logging.getLogger(__name__)
KIND = "secret"


@dataclass(frozen=True)
class SecretRef:
    """The secret's ARN and the credentials it holds."""

    arn: str
    credentials: BrokerCredentials


def new_credentials(username: str) -> BrokerCredentials:
    """A broker user with a password Amazon MQ accepts (12+ characters, no ',', ':' or '=')."""
    return BrokerCredentials(username, secrets.token_urlsafe(24))


def ensure(
    client: SecretsManagerClient,
    config: StageConfig,
    dry_run: bool,
    generate: Callable[[str], BrokerCredentials] = new_credentials,
) -> tuple[Change, SecretRef]:
    """Create the secret, or update it when credentials were given and differ; never regenerate."""
    name = config.secret_name
    current = _describe(client, name)
    if current is None:
        return _create(client, config, dry_run, generate)
    arn = str(current["ARN"])
    stored = _stored_credentials(client, arn, name)
    given = config.broker_credentials
    if given is None or given == stored:
        return Change(KIND, name, Action.UNCHANGED), SecretRef(arn, stored)
    if not dry_run:
        _put(client, arn, name, given.secret_string())
    return Change(KIND, name, Action.UPDATE, "broker credentials"), SecretRef(arn, given)


def ensure_services(
    client: SecretsManagerClient,
    config: StageConfig,
    wanted: Mapping[str, str | None],
    dry_run: bool,
) -> tuple[Change, str]:
    """Make the services secret hold `wanted`; returns the change and the secret's ARN.

    A None value is one this run cannot tell: the stored value, if any, is kept. The plan
    names the settings that change, never their values.
    """
    name = config.services_secret_name
    current = _describe(client, name)
    stored = None if current is None else _stored_settings(client, str(current["ARN"]), name)
    kept = stored or {}
    values = {key: value or kept[key] for key, value in wanted.items() if value or key in kept}
    missing = ", ".join(sorted(key for key in wanted if key not in values))
    without = f"without {missing}" if missing else ""
    if current is None:
        if dry_run:
            return Change(KIND, name, Action.CREATE, without), pending(KIND, name)
        description = f"Service URLs of the {config.stage} stage, read via CREDIT_SECRET_ID"
        arn = _create_secret(client, config, name, description, _settings_string(values))
        return Change(KIND, name, Action.CREATE, without), arn
    arn = str(current["ARN"])
    if stored == values:
        return Change(KIND, name, Action.UNCHANGED, without), arn
    if stored is None:
        detail = "held no JSON object of strings"
    else:
        keys = set(values) | set(stored)
        detail = ", ".join(sorted(key for key in keys if stored.get(key) != values.get(key)))
    if not dry_run:
        _put(client, arn, name, _settings_string(values))
    return Change(KIND, name, Action.UPDATE, "; ".join(filter(None, [detail, without]))), arn


def delete(client: SecretsManagerClient, config: StageConfig, name: str, dry_run: bool) -> Change:
    """Delete one of the stage's secrets now (no recovery window: a new deploy reuses the name)."""
    current = _describe(client, name)
    if current is None or current.get("DeletedDate"):
        return Change(KIND, name, Action.ABSENT)
    tags = {tag["Key"]: tag["Value"] for tag in current.get("Tags", [])}
    if not config.owns(tags):
        return Change(KIND, name, Action.SKIP, "not tagged as created by this stage")
    if not dry_run:
        try:
            client.delete_secret(SecretId=str(current["ARN"]), ForceDeleteWithoutRecovery=True)
        except ClientError as exc:
            raise failed("delete", KIND, name, exc) from exc
    return Change(KIND, name, Action.DELETE)


def _create(
    client: SecretsManagerClient,
    config: StageConfig,
    dry_run: bool,
    generate: Callable[[str], BrokerCredentials],
) -> tuple[Change, SecretRef]:
    name = config.secret_name
    if config.broker_credentials is None and not config.manages_broker:
        raise DeployError(
            f"secret {name} does not exist and the broker was given by ARN: set "
            "CREDIT_BROKER_USERNAME and CREDIT_BROKER_PASSWORD to that broker's user"
        )
    credentials = config.broker_credentials or generate(config.broker_username)
    change = Change(KIND, name, Action.CREATE)
    if dry_run:
        return change, SecretRef(pending(KIND, name), credentials)
    description = f"Amazon MQ broker user for the {config.stage} stage's event sources"
    arn = _create_secret(client, config, name, description, credentials.secret_string())
    return change, SecretRef(arn, credentials)


def _create_secret(
    client: SecretsManagerClient,
    config: StageConfig,
    name: str,
    description: str,
    secret_string: str,
) -> str:
    try:
        response = client.create_secret(
            Name=name,
            Description=description,
            SecretString=secret_string,
            Tags=[{"Key": key, "Value": value} for key, value in config.tags.items()],
        )
    except ClientError as exc:
        raise failed("create", KIND, name, exc) from exc
    LOGGER.info("created secret %s", name)
    return str(response["ARN"])


def _describe(client: SecretsManagerClient, name: str) -> dict[str, Any] | None:
    try:
        return dict(client.describe_secret(SecretId=name))
    except ClientError as exc:
        if is_not_found(exc):
            return None
        raise failed("read", KIND, name, exc) from exc


def _stored_credentials(client: SecretsManagerClient, arn: str, name: str) -> BrokerCredentials:
    try:
        raw = client.get_secret_value(SecretId=arn)["SecretString"]
        value = json.loads(raw)
        return BrokerCredentials(str(value["username"]), str(value["password"]))
    except ClientError as exc:
        raise failed("read", KIND, name, exc) from exc
    except (KeyError, TypeError, ValueError) as exc:
        raise DeployError(f"secret {name} must hold JSON with username and password") from exc


def _stored_settings(client: SecretsManagerClient, arn: str, name: str) -> dict[str, str] | None:
    """The services secret's settings; None when it holds no JSON object of strings (or none)."""
    try:
        raw = client.get_secret_value(SecretId=arn).get("SecretString")
    except ClientError as exc:
        if is_not_found(exc):  # a secret created without a value has no AWSCURRENT version
            return None
        raise failed("read", KIND, name, exc) from exc
    try:
        value = json.loads(raw or "")
    except ValueError:
        return None
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        return None
    return value


def _settings_string(values: Mapping[str, str]) -> str:
    return json.dumps(dict(values), sort_keys=True)


def _put(client: SecretsManagerClient, arn: str, name: str, secret_string: str) -> None:
    try:
        client.put_secret_value(SecretId=arn, SecretString=secret_string)
    except ClientError as exc:
        raise failed("update", KIND, name, exc) from exc
    LOGGER.info("updated secret %s", name)
