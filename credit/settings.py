"""One place that reads configuration: explicit argument > environment > secret > default.

On AWS, credentials live in Secrets Manager: when CREDIT_SECRET_ID names a secret, its JSON
object (setting name -> value, e.g. {"MYSQL_URL": "mysql://user:password@host/credit"}) is
read once per process and fills in what the environment does not set.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

AMQP_URL = "AMQP_URL"
REDIS_URL = "REDIS_URL"
MYSQL_URL = "MYSQL_URL"
RULES = "CREDIT_RULES"
TICKET_TTL = "TICKET_CACHE_TTL_SECONDS"
PENDING_TTL = "PENDING_CACHE_TTL_SECONDS"
DELIVERY_LIMIT = "RULE_DELIVERY_LIMIT"
MIN_AGE = "MIN_AGE"
MAX_VALUE = "MAX_VALUE"
SECRET_ID = "CREDIT_SECRET_ID"  # noqa: S105 - the name of a variable, not a secret
# How long MySQL may keep a session waiting on a lock before it aborts the statement itself
# (lock_wait_timeout, innodb_lock_wait_timeout; on MariaDB also max_statement_time). Shorter
# than TICKET_WRITE_TIMEOUT, so a stalled MySQL answers with an error, a known rollback.
MYSQL_LOCK_WAIT = "MYSQL_LOCK_WAIT_TIMEOUT_SECONDS"
# How long the driver waits for any reply: the backstop for a server that answers nothing.
MYSQL_READ_TIMEOUT = "MYSQL_READ_TIMEOUT_SECONDS"
# How long a commit whose reply never came is looked for before it is answered as unknown.
# On Lambda, a connect (3 s), the read timeout and this check (plus one more connect) must fit
# in the function's timeout (20 s), or the function could time out with the outcome unknown.
MYSQL_OUTCOME_CHECK = "MYSQL_OUTCOME_CHECK_SECONDS"
# How long a request waits for its group commit to be sent before it withdraws its ticket.
TICKET_WRITE_TIMEOUT = "TICKET_WRITE_TIMEOUT_SECONDS"
IDEMPOTENCY_TTL = "IDEMPOTENCY_KEY_TTL_SECONDS"

DEFAULTS: Mapping[str, str] = {
    AMQP_URL: "amqp://guest:guest@127.0.0.1:5672/%2F",
    REDIS_URL: "redis://127.0.0.1:6379/0",
    MYSQL_URL: "mysql://root@127.0.0.1:3306/credit",
    RULES: "age,value",
    TICKET_TTL: "86400",
    PENDING_TTL: "5",
    DELIVERY_LIMIT: "10",
    MIN_AGE: "18",
    MAX_VALUE: "100000",
    MYSQL_LOCK_WAIT: "5",
    MYSQL_READ_TIMEOUT: "6",
    MYSQL_OUTCOME_CHECK: "6",
    TICKET_WRITE_TIMEOUT: "10",
    IDEMPOTENCY_TTL: "86400",
}


class SettingsError(ValueError):
    """A setting has a value that cannot be used."""


def get(name: str, explicit: str | None = None, environ: Mapping[str, str] | None = None) -> str:
    """Return a setting: the explicit value if given, else the environment, else the default."""
    if explicit is not None:
        return explicit
    env = os.environ if environ is None else environ
    value = env.get(name)
    if value:
        return value
    secret_id = env.get(SECRET_ID)
    if secret_id:
        value = secret_values(secret_id).get(name)
        if value:
            return value
    return DEFAULTS[name]


@functools.cache
def secret_values(secret_id: str) -> dict[str, str]:
    """The settings stored in a Secrets Manager secret, fetched once per process."""
    import boto3
    import botocore.exceptions

    try:
        raw = boto3.client("secretsmanager").get_secret_value(SecretId=secret_id)["SecretString"]
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
        raise SettingsError(f"{SECRET_ID}={secret_id!r} cannot be read: {exc}") from exc
    try:
        values = json.loads(raw)
    except ValueError as exc:
        raise SettingsError(f"secret {secret_id!r} is not a JSON object") from exc
    if not isinstance(values, dict) or not all(isinstance(v, str) for v in values.values()):
        raise SettingsError(f"secret {secret_id!r} must map setting names to strings")
    return values


def get_int(
    name: str, explicit: int | None = None, environ: Mapping[str, str] | None = None
) -> int:
    """Return an integer setting, naming the variable when its value is not an integer."""
    if explicit is not None:
        return explicit
    raw = get(name, environ=environ)
    try:
        return int(raw)
    except ValueError as exc:
        raise SettingsError(f"{name} must be an integer, got {raw!r}") from exc


def get_float(
    name: str, explicit: float | None = None, environ: Mapping[str, str] | None = None
) -> float:
    """Return a positive number setting (seconds), naming the variable when it is not one."""
    if explicit is not None:
        return explicit
    raw = get(name, environ=environ)
    try:
        value = float(raw)
    except ValueError as exc:
        raise SettingsError(f"{name} must be a number, got {raw!r}") from exc
    if not 0 < value < float("inf"):
        raise SettingsError(f"{name} must be greater than 0, got {raw!r}")
    return value


def get_list(name: str, environ: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """Return a comma-separated setting as a tuple of non-empty, stripped items."""
    return tuple(item.strip() for item in get(name, environ=environ).split(",") if item.strip())


@dataclass(frozen=True)
class Settings:
    """The service URLs and knobs one process uses."""

    amqp_url: str = field(default_factory=lambda: get(AMQP_URL))
    redis_url: str = field(default_factory=lambda: get(REDIS_URL))
    mysql_url: str = field(default_factory=lambda: get(MYSQL_URL))
    rules: tuple[str, ...] = field(default_factory=lambda: get_list(RULES))
    ticket_ttl: int = field(default_factory=lambda: get_int(TICKET_TTL))
    pending_ttl: int = field(default_factory=lambda: get_int(PENDING_TTL))

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        """Build settings from a given environment mapping instead of os.environ."""
        return cls(
            amqp_url=get(AMQP_URL, environ=environ),
            redis_url=get(REDIS_URL, environ=environ),
            mysql_url=get(MYSQL_URL, environ=environ),
            rules=get_list(RULES, environ=environ),
            ticket_ttl=get_int(TICKET_TTL, environ=environ),
            pending_ttl=get_int(PENDING_TTL, environ=environ),
        )
