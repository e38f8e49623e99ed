"""A Lambda function per declaration: configuration from function.json, code from its zip."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from infra.config import StageConfig, function_environment
from infra.package import Artifact
from infra.plan import Action, Change
from infra.resources.common import error_code, failed, is_not_found, pending
from local_runtime.declaration import FunctionSpec

if TYPE_CHECKING:
    from mypy_boto3_lambda import LambdaClient
    from mypy_boto3_lambda.type_defs import WaiterConfigTypeDef

LOGGER = logging.getLogger(__name__)
KIND = "lambda-function"
COMPARED = ("Runtime", "Handler", "Role", "Timeout", "MemorySize", "Description")
ROLE_RETRIES = 10  # a new IAM role takes a few seconds before Lambda can assume it
ROLE_RETRY_SECONDS = 3.0
WAIT: WaiterConfigTypeDef = {"Delay": 2, "MaxAttempts": 150}


def desired_configuration(
    spec: FunctionSpec, config: StageConfig, role_arn: str, secret_id: str
) -> dict[str, Any]:
    """The configuration the declaration asks for, in UpdateFunctionConfiguration's terms.

    The environment is the declared one plus CREDIT_SECRET_ID=secret_id: the service URLs
    and their passwords stay in Secrets Manager.
    """
    return {
        "FunctionName": config.function_name(spec.name),
        "Runtime": spec.runtime,
        "Handler": spec.handler,
        "Role": role_arn,
        "Timeout": int(spec.timeout),
        "MemorySize": spec.memory_size,
        "Description": spec.description,
        "Environment": {"Variables": function_environment(spec.environment, secret_id)},
        "VpcConfig": {
            "SubnetIds": list(config.subnet_ids),
            "SecurityGroupIds": list(config.security_group_ids),
        },
    }


def differences(current: Mapping[str, Any], desired: Mapping[str, Any]) -> list[str]:
    """Names of the configuration fields that differ (environment and VPC compared as sets)."""
    changed = [name for name in COMPARED if current.get(name) != desired[name]]
    current_env = (current.get("Environment") or {}).get("Variables") or {}
    if current_env != desired["Environment"]["Variables"]:
        changed.append("Environment")
    if _network(current.get("VpcConfig")) != _network(desired["VpcConfig"]):
        changed.append("VpcConfig")
    return changed


def ensure(
    client: LambdaClient,
    spec: FunctionSpec,
    config: StageConfig,
    artifact: Artifact,
    role_arn: str,
    secret_id: str,
    dry_run: bool,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[Change, str]:
    """Create the function or bring its code and configuration in line; returns its ARN."""
    desired = desired_configuration(spec, config, role_arn, secret_id)
    name = desired["FunctionName"]
    current = _get(client, name)
    if current is None:
        if dry_run:
            return Change(KIND, name, Action.CREATE), pending(KIND, name)
        arn = _create(client, desired, artifact, config, sleep)
        return Change(KIND, name, Action.CREATE), arn
    changed = differences(current, desired)
    code_changed = current.get("CodeSha256") != artifact.code_sha256
    arn = str(current["FunctionArn"])
    if not changed and not code_changed:
        return Change(KIND, name, Action.UNCHANGED), arn
    if not dry_run:
        _update(client, name, desired if changed else None, artifact if code_changed else None)
    detail = ", ".join([*changed, *(["code"] if code_changed else [])])
    return Change(KIND, name, Action.UPDATE, detail), arn


def owned(client: LambdaClient, config: StageConfig) -> list[str]:
    """Names of the functions this stage's deploy created (by name prefix and tags)."""
    names: list[str] = []
    try:
        for page in client.get_paginator("list_functions").paginate():
            for function in page.get("Functions", []):
                if function["FunctionName"].startswith(f"{config.prefix}-"):
                    tags = client.list_tags(Resource=function["FunctionArn"]).get("Tags", {})
                    if config.owns(dict(tags)):
                        names.append(function["FunctionName"])
    except ClientError as exc:
        raise failed("list", KIND, f"{config.prefix}-*", exc) from exc
    return sorted(names)


def delete(client: LambdaClient, name: str, dry_run: bool) -> Change:
    if not dry_run:
        try:
            client.delete_function(FunctionName=name)
        except ClientError as exc:
            if is_not_found(exc):
                return Change(KIND, name, Action.ABSENT)
            raise failed("delete", KIND, name, exc) from exc
    return Change(KIND, name, Action.DELETE)


def _create(
    client: LambdaClient,
    desired: dict[str, Any],
    artifact: Artifact,
    config: StageConfig,
    sleep: Callable[[float], None],
) -> str:
    name = desired["FunctionName"]
    arguments = {**desired, "Code": {"ZipFile": artifact.read()}, "Tags": config.tags}
    if not config.subnet_ids:
        del arguments["VpcConfig"]
    for attempt in range(1, ROLE_RETRIES + 1):
        try:
            response = client.create_function(**arguments)
            break
        except ClientError as exc:
            if not _role_not_ready(exc) or attempt == ROLE_RETRIES:
                raise failed("create", KIND, name, exc) from exc
            LOGGER.info("role not assumable yet for %s; retrying", name)
            sleep(ROLE_RETRY_SECONDS)
    client.get_waiter("function_active_v2").wait(FunctionName=name, WaiterConfig=WAIT)
    LOGGER.info("created function %s", name)
    return str(response["FunctionArn"])


def _update(
    client: LambdaClient,
    name: str,
    desired: dict[str, Any] | None,
    artifact: Artifact | None,
) -> None:
    waiter = client.get_waiter("function_updated_v2")
    try:
        if artifact is not None:
            client.update_function_code(FunctionName=name, ZipFile=artifact.read())
            waiter.wait(FunctionName=name, WaiterConfig=WAIT)
        if desired is not None:
            client.update_function_configuration(**desired)
            waiter.wait(FunctionName=name, WaiterConfig=WAIT)
    except ClientError as exc:
        raise failed("update", KIND, name, exc) from exc
    LOGGER.info("updated function %s", name)


def _get(client: LambdaClient, name: str) -> dict[str, Any] | None:
    try:
        return dict(client.get_function_configuration(FunctionName=name))
    except ClientError as exc:
        if is_not_found(exc):
            return None
        raise failed("read", KIND, name, exc) from exc


def _role_not_ready(exc: ClientError) -> bool:
    message = str(exc.response.get("Error", {}).get("Message", ""))
    return error_code(exc) == "InvalidParameterValueException" and "role" in message.lower()


def _network(vpc: Mapping[str, Any] | None) -> tuple[frozenset[str], frozenset[str]]:
    vpc = vpc or {}
    return frozenset(vpc.get("SubnetIds") or ()), frozenset(vpc.get("SecurityGroupIds") or ())
