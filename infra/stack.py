"""One stage's CloudFormation stack: change sets to preview and deploy, delete, drift.

Every write goes through CloudFormation, which rolls a failed change back by itself; what
this module adds is the preview (the change set, printed and then deleted on a dry run), the
wait, and the reasons of the resources that failed, read from the stack's events.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError, WaiterError

from infra.errors import DeployError

LOGGER = logging.getLogger(__name__)
CAPABILITIES = ["CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND"]
NO_CHANGES = ("didn't contain changes", "No updates are to be performed")
# Stacks that can only be deleted: a first create that rolled back leaves one.
DEAD_STATES = ("ROLLBACK_COMPLETE", "ROLLBACK_FAILED", "DELETE_FAILED")
BROKER, BROKER_SECRET = "Broker", "BrokerSecret"
PRODUCTION_TAG = "production"  # the stack tag StageConfig.tags sets


class StackError(DeployError):
    """A stack operation ended in failure; carries the final status and what failed, why."""

    def __init__(self, action: str, status: str, failures: list[Failure]) -> None:
        self.status, self.failures = status, failures
        lines = "".join(f"\n  {failure}" for failure in failures)
        super().__init__(f"{action} failed, the stack is now {status}:{lines}")


@dataclass(frozen=True)
class Failure:
    """One resource CloudFormation could not create, update or delete, and its reason."""

    logical_id: str
    resource_type: str
    status: str
    reason: str

    def __str__(self) -> str:
        return f"{self.logical_id} ({self.resource_type}) {self.status}: {self.reason}"


@dataclass(frozen=True)
class Change:
    """One line of a change set: add, modify or remove a resource, replacing it or not."""

    action: str  # Add, Modify, Remove, Import, Dynamic
    logical_id: str
    resource_type: str
    replacement: str = ""  # True, False or Conditional, for Modify
    properties: tuple[str, ...] = ()  # what a Modify changes

    @classmethod
    def from_api(cls, change: Mapping[str, Any]) -> Change:
        resource = change.get("ResourceChange", {})
        targets = (detail.get("Target", {}) for detail in resource.get("Details", []))
        names = sorted({t.get("Name") or t.get("Attribute", "") for t in targets} - {""})
        return cls(
            action=resource.get("Action", "?"),
            logical_id=resource.get("LogicalResourceId", "?"),
            resource_type=resource.get("ResourceType", "?"),
            replacement=resource.get("Replacement", ""),
            properties=tuple(names),
        )

    @property
    def replaces(self) -> bool:
        return self.action == "Add" or (self.action == "Modify" and self.replacement == "True")

    def __str__(self) -> str:
        line = f"{self.action.lower():<7} {self.logical_id} ({self.resource_type})"
        if self.action == "Modify":
            replacement = {"True": "REPLACED", "Conditional": "may be replaced"}.get(
                self.replacement, "in place"
            )
            changed = f": {', '.join(self.properties)}" if self.properties else ""
            line += f" {replacement}{changed}"
        return line


@dataclass
class Preview:
    """A change set CloudFormation computed, not yet executed."""

    stack_name: str
    change_set: str
    kind: str  # CREATE or UPDATE
    changes: list[Change] = field(default_factory=list)
    created_stack: bool = False  # a CREATE change set made a REVIEW_IN_PROGRESS stack

    @property
    def empty(self) -> bool:
        return not self.changes

    def hazards(self) -> list[str]:
        """Changes that CloudFormation would carry out but that break the stage."""
        by_id = {change.logical_id: change for change in self.changes}
        secret, broker = by_id.get(BROKER_SECRET), by_id.get(BROKER)
        if secret and secret.action == "Modify" and not (broker and broker.replaces):
            return [
                f"{BROKER_SECRET} would change while {BROKER} keeps its user: Amazon MQ sets a "
                "RabbitMQ broker's user once, so every mapping and the API would fail to log "
                "in; change the broker's user on the broker first, or replace the broker"
            ]
        return []

    def render(self) -> str:
        if self.empty:
            return f"{self.stack_name}: no changes"
        counts = {action: 0 for action in ("Add", "Modify", "Remove")}
        for change in self.changes:
            counts[change.action] = counts.get(change.action, 0) + 1
        summary = ", ".join(f"{n} to {a.lower()}" for a, n in counts.items() if n)
        lines = [f"{self.stack_name} ({self.kind.lower()}): {summary}"]
        lines += [f"  {change}" for change in self.changes]
        lines += [f"  HAZARD: {hazard}" for hazard in self.hazards()]
        return "\n".join(lines)


def _keep_production(
    name: str, described: Mapping[str, Any] | None, tags: Mapping[str, str]
) -> None:
    """A stack deployed as production stays production: deploying it without the mark would
    drop the Retain policies that keep its broker and secrets."""
    if described is None:
        return
    current = {tag["Key"]: tag["Value"] for tag in described.get("Tags", [])}
    if current.get(PRODUCTION_TAG) == "true" and tags.get(PRODUCTION_TAG) != "true":
        raise DeployError(
            f"stack {name} is a production stack: deploy it with --production, or its broker "
            "and secrets would lose DeletionPolicy: Retain"
        )


@dataclass(frozen=True)
class Drift:
    """A resource whose live configuration is no longer what the stack says."""

    logical_id: str
    resource_type: str
    status: str  # MODIFIED or DELETED
    differences: tuple[str, ...] = ()

    def __str__(self) -> str:
        lines = [f"{self.logical_id} ({self.resource_type}) {self.status}"]
        return "\n    ".join([*lines, *self.differences])


@dataclass
class Stack:
    """The stack of one stage, driven through boto3's CloudFormation client."""

    cfn: Any
    name: str
    delay: float = 5.0  # seconds between polls
    max_attempts: int = 720  # an hour at the default delay; Amazon MQ takes about 20 minutes
    token: Callable[[], str] = field(default=lambda: f"credit-{uuid.uuid4()}")
    sleep: Callable[[float], None] = time.sleep

    def status(self) -> str | None:
        """The stack's status, or None when there is no such stack."""
        described = self.describe()
        return None if described is None else str(described["StackStatus"])

    def describe(self) -> dict[str, Any] | None:
        """The stack as DescribeStacks gives it, or None when there is no such stack."""
        try:
            stacks = self.cfn.describe_stacks(StackName=self.name)["Stacks"]
        except ClientError as exc:
            if "does not exist" in str(exc):
                return None
            raise DeployError(f"stack {self.name}: {exc}") from exc
        found: dict[str, Any] = stacks[0]
        return found

    def preview(
        self, template_url: str, parameters: Mapping[str, str], tags: Mapping[str, str]
    ) -> Preview:
        """Create a change set and wait until CloudFormation has computed it."""
        described = self.describe()
        status = None if described is None else str(described["StackStatus"])
        _keep_production(self.name, described, tags)
        if status in DEAD_STATES:
            raise DeployError(
                f"stack {self.name} is {status}: it can only be deleted; run teardown first"
            )
        busy = status is not None and status.endswith("_IN_PROGRESS")
        if busy and status != "REVIEW_IN_PROGRESS":
            raise DeployError(f"stack {self.name} is {status}: wait until it is done")
        kind = "CREATE" if status in (None, "REVIEW_IN_PROGRESS") else "UPDATE"
        change_set = f"deploy-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}"
        self._call(
            "create_change_set",
            StackName=self.name,
            ChangeSetName=change_set,
            TemplateURL=template_url,
            Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
            Capabilities=CAPABILITIES,
            ChangeSetType=kind,
            Tags=[{"Key": k, "Value": v} for k, v in tags.items()],
        )
        preview = Preview(self.name, change_set, kind, created_stack=status is None)
        try:
            self._wait("change_set_create_complete", ChangeSetName=change_set)
        except WaiterError:
            reason = self._describe(change_set).get("StatusReason", "")
            if any(marker in reason for marker in NO_CHANGES):
                return preview
            self.discard(preview)
            raise DeployError(f"CloudFormation refused the change set: {reason}") from None
        preview.changes = list(self._changes(change_set))
        return preview

    def discard(self, preview: Preview) -> None:
        """Delete the change set (and the empty stack a first change set created)."""
        self._call("delete_change_set", StackName=self.name, ChangeSetName=preview.change_set)
        if preview.created_stack:
            self._call("delete_stack", StackName=self.name)

    def execute(self, preview: Preview) -> str:
        """Execute the change set and wait; on failure, raise with each failed resource's
        reason once CloudFormation has rolled back."""
        token = self.token()
        self._call(
            "execute_change_set",
            StackName=self.name,
            ChangeSetName=preview.change_set,
            ClientRequestToken=token,
        )
        waiter = "stack_create_complete" if preview.kind == "CREATE" else "stack_update_complete"
        return self._finish(f"{preview.kind.lower()} of {self.name}", waiter, token)

    def delete(self) -> str:
        """Delete the stack and wait; resources marked Retain stay."""
        if self.status() is None:
            return "absent"
        token = self.token()
        self._call("delete_stack", StackName=self.name, ClientRequestToken=token)
        return self._finish(f"deletion of {self.name}", "stack_delete_complete", token)

    def retained(self) -> list[str]:
        """The resources the stack keeps when deleted (DeletionPolicy: Retain)."""
        body = self._call("get_template", StackName=self.name, TemplateStage="Processed")
        template = body["TemplateBody"]
        resources = (json.loads(template) if isinstance(template, str) else template)["Resources"]
        return sorted(lid for lid, r in resources.items() if r.get("DeletionPolicy") == "Retain")

    def drift(self) -> list[Drift]:
        """Run drift detection, wait for it, and return the drifted resources."""
        detection = self._call("detect_stack_drift", StackName=self.name)["StackDriftDetectionId"]
        for _ in range(self.max_attempts):
            state = self._call(
                "describe_stack_drift_detection_status", StackDriftDetectionId=detection
            )
            if state["DetectionStatus"] != "DETECTION_IN_PROGRESS":
                break
            self.sleep(self.delay)
        else:
            raise DeployError(f"drift detection {detection} did not finish")
        if state["DetectionStatus"] == "DETECTION_FAILED":
            LOGGER.warning("drift detection incomplete: %s", state.get("DetectionStatusReason"))
        return list(self._drifts())

    def _drifts(self) -> Iterator[Drift]:
        arguments = {
            "StackName": self.name,
            "StackResourceDriftStatusFilters": ["MODIFIED", "DELETED"],
        }
        while True:
            page = self._call("describe_stack_resource_drifts", **arguments)
            for drift in page["StackResourceDrifts"]:
                differences = tuple(
                    f"{d['PropertyPath']}: {d['DifferenceType'].lower()}, stack says "
                    f"{d.get('ExpectedValue')!s}, AWS has {d.get('ActualValue')!s}"
                    for d in drift.get("PropertyDifferences", [])
                )
                yield Drift(
                    drift["LogicalResourceId"],
                    drift["ResourceType"],
                    drift["StackResourceDriftStatus"],
                    differences,
                )
            if not page.get("NextToken"):
                return
            arguments["NextToken"] = page["NextToken"]

    def _finish(self, action: str, waiter: str, token: str) -> str:
        try:
            self._wait(waiter)
        except WaiterError:
            status = self.status() or "DELETE_COMPLETE"
            raise StackError(action, status, list(self._failures(token))) from None
        return self.status() or "DELETE_COMPLETE"

    def _failures(self, token: str) -> Iterator[Failure]:
        """The failed resources of the operation `token` started, oldest first."""
        found: list[Failure] = []
        arguments: dict[str, Any] = {"StackName": self.name}
        while True:
            page = self._call("describe_stack_events", **arguments)
            for event in page["StackEvents"]:
                if event.get("ClientRequestToken") != token:
                    continue
                if event.get("ResourceStatus", "").endswith("_FAILED"):
                    found.append(
                        Failure(
                            event["LogicalResourceId"],
                            event.get("ResourceType", ""),
                            event["ResourceStatus"],
                            event.get("ResourceStatusReason", ""),
                        )
                    )
            if not page.get("NextToken"):
                break
            arguments["NextToken"] = page["NextToken"]
        yield from reversed(found)  # events come newest first

    def _changes(self, change_set: str) -> Iterator[Change]:
        arguments: dict[str, Any] = {"StackName": self.name, "ChangeSetName": change_set}
        while True:
            page = self._call("describe_change_set", **arguments)
            for change in page.get("Changes", []):
                yield Change.from_api(change)
            if not page.get("NextToken"):
                return
            arguments["NextToken"] = page["NextToken"]

    def _describe(self, change_set: str) -> dict[str, Any]:
        result: dict[str, Any] = self._call(
            "describe_change_set", StackName=self.name, ChangeSetName=change_set
        )
        return result

    def _wait(self, name: str, **arguments: Any) -> None:
        self.cfn.get_waiter(name).wait(
            StackName=self.name,
            WaiterConfig={"Delay": self.delay, "MaxAttempts": self.max_attempts},
            **arguments,
        )

    def _call(self, operation: str, **arguments: Any) -> Any:
        try:
            return getattr(self.cfn, operation)(**arguments)
        except ClientError as exc:
            raise DeployError(f"stack {self.name}: {operation}: {exc}") from exc
