"""One Amazon MQ event source mapping per function: broker, queue, batching and credentials."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from infra.limits import batching_window
from infra.plan import Action, Change
from infra.resources.common import failed, is_not_found
from local_runtime.declaration import FunctionSpec

if TYPE_CHECKING:
    from mypy_boto3_lambda import LambdaClient

LOGGER = logging.getLogger(__name__)
KIND = "event-source"


def desired_mapping(
    spec: FunctionSpec, function_name: str, broker_arn: str, secret_arn: str
) -> dict[str, Any]:
    """CreateEventSourceMapping's parameters for the function's declared event source."""
    source = spec.event_source
    assert source is not None
    desired: dict[str, Any] = {
        "FunctionName": function_name,
        "EventSourceArn": broker_arn,
        "Queues": [source.queue],
        "BatchSize": source.batch_size,
        "Enabled": True,
        "SourceAccessConfigurations": [
            {"Type": "BASIC_AUTH", "URI": secret_arn},
            {"Type": "VIRTUAL_HOST", "URI": source.virtual_host},
        ],
    }
    window = batching_window(spec)
    if window is not None:
        desired["MaximumBatchingWindowInSeconds"] = window
    return desired


def label(desired: Mapping[str, Any]) -> str:
    """How the plan names a mapping: function <- queue."""
    return f"{desired['FunctionName']} <- {desired['Queues'][0]}"


def differences(current: Mapping[str, Any], desired: Mapping[str, Any]) -> list[str]:
    """Fields UpdateEventSourceMapping can change that differ from the declaration."""
    changed = []
    if current.get("BatchSize") != desired["BatchSize"]:
        changed.append("BatchSize")
    window = desired.get("MaximumBatchingWindowInSeconds")
    if window is not None and current.get("MaximumBatchingWindowInSeconds") != window:
        changed.append("MaximumBatchingWindowInSeconds")
    if _access(current.get("SourceAccessConfigurations")) != _access(
        desired["SourceAccessConfigurations"]
    ):
        changed.append("SourceAccessConfigurations")
    if current.get("State") in ("Disabled", "Disabling"):
        changed.append("Enabled")
    return changed


def ensure(
    client: LambdaClient, desired: dict[str, Any], function_exists: bool, dry_run: bool
) -> Change:
    """Create the mapping, update it in place, or replace it when its broker or queue changed."""
    name = label(desired)
    existing = list_mappings(client, desired["FunctionName"]) if function_exists else []
    keep = [m for m in existing if _same_source(m, desired)]
    stale = [m for m in existing if not _same_source(m, desired)]
    if not dry_run:
        for mapping in stale:
            _delete(client, mapping["UUID"], name)
    if not keep:
        if not dry_run:
            _create(client, desired, name)
        action = Action.REPLACE if stale else Action.CREATE
        return Change(KIND, name, action, "broker or queue changed" if stale else "")
    changed = differences(keep[0], desired)
    if changed and not dry_run:
        _update(client, keep[0]["UUID"], desired, name)
    if stale:
        changed.append("removed mappings of another broker or queue")
    if not changed:
        return Change(KIND, name, Action.UNCHANGED)
    return Change(KIND, name, Action.UPDATE, ", ".join(changed))


def list_mappings(client: LambdaClient, function_name: str) -> list[dict[str, Any]]:
    """The function's Amazon MQ mappings (mappings from other sources are left alone)."""
    mappings: list[dict[str, Any]] = []
    try:
        paginator = client.get_paginator("list_event_source_mappings")
        for page in paginator.paginate(FunctionName=function_name):
            mappings += [
                dict(m)
                for m in page.get("EventSourceMappings", [])
                if _is_broker(str(m.get("EventSourceArn", "")))
            ]
    except ClientError as exc:
        if is_not_found(exc):
            return []
        raise failed("list", KIND, function_name, exc) from exc
    return mappings


def delete_all(client: LambdaClient, function_name: str, dry_run: bool) -> list[Change]:
    """Delete every Amazon MQ mapping of the function."""
    changes = []
    for mapping in list_mappings(client, function_name):
        queue = (mapping.get("Queues") or ["?"])[0]
        name = f"{function_name} <- {queue}"
        if not dry_run:
            _delete(client, mapping["UUID"], name)
        changes.append(Change(KIND, name, Action.DELETE))
    return changes


def _is_broker(arn: str) -> bool:
    """arn:<partition>:mq:... (Amazon MQ), as opposed to SQS, Kinesis, Kafka sources."""
    parts = arn.split(":")
    return len(parts) > 2 and parts[2] == "mq"


def _same_source(current: Mapping[str, Any], desired: Mapping[str, Any]) -> bool:
    return current.get("EventSourceArn") == desired["EventSourceArn"] and list(
        current.get("Queues") or []
    ) == list(desired["Queues"])


def _access(configurations: Any) -> frozenset[tuple[str, str]]:
    return frozenset((c.get("Type", ""), c.get("URI", "")) for c in configurations or ())


def _create(client: LambdaClient, desired: dict[str, Any], label: str) -> None:
    try:
        response = client.create_event_source_mapping(**desired)
    except ClientError as exc:
        raise failed("create", KIND, label, exc) from exc
    LOGGER.info("created event source mapping %s (%s)", label, response.get("UUID"))


def _update(client: LambdaClient, uuid: str, desired: dict[str, Any], label: str) -> None:
    arguments = {
        key: value for key, value in desired.items() if key not in ("EventSourceArn", "Queues")
    }
    try:
        client.update_event_source_mapping(UUID=uuid, **arguments)
    except ClientError as exc:
        raise failed("update", KIND, label, exc) from exc
    LOGGER.info("updated event source mapping %s", label)


def _delete(client: LambdaClient, uuid: str, label: str) -> None:
    try:
        client.delete_event_source_mapping(UUID=uuid)
    except ClientError as exc:
        if not is_not_found(exc):
            raise failed("delete", KIND, label, exc) from exc
    LOGGER.info("deleted event source mapping %s", label)
