"""Deploy, dry run, failure, teardown and drift, on botocore's Stubber: every CloudFormation
request is checked against the real API model, and every answer is one AWS documents."""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.stub import ANY, Stubber
from moto import mock_aws

from infra.deploy import Built, deploy, teardown
from infra.errors import DeployError
from infra.stack import Preview, Stack, StackError
from infra.storage import Bucket
from tests.infra.conftest import REGION, stage

NAME = "credit-dev"
STACK_ID = f"arn:aws:cloudformation:{REGION}:123456789012:stack/{NAME}/6c2d3b40-4000-8000"
TOKEN = "credit-token-1"
NOW = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)


class Cfn:
    """A CloudFormation client whose every call must be one the test queued, in order."""

    def __init__(self) -> None:
        self.client = boto3.client("cloudformation", region_name=REGION)
        self.stubber = Stubber(self.client)
        self.stack = Stack(self.client, NAME, delay=0, max_attempts=3, token=lambda: TOKEN)

    def status(self, status: str | None, tags: dict[str, str] | None = None) -> None:
        if status is None:
            self.stubber.add_client_error(
                "describe_stacks",
                service_error_code="ValidationError",
                service_message=f"Stack with id {NAME} does not exist",
                expected_params={"StackName": NAME},
            )
            return
        self.stubber.add_response(
            "describe_stacks",
            {
                "Stacks": [
                    {
                        "StackName": NAME,
                        "StackId": STACK_ID,
                        "CreationTime": NOW,
                        "StackStatus": status,
                        "Tags": [{"Key": k, "Value": v} for k, v in (tags or {}).items()],
                    }
                ]
            },
            {"StackName": NAME},
        )

    def change_set(self, kind: str, changes: list[dict[str, Any]], status: str = "CREATE_COMPLETE",
                   reason: str = "") -> None:  # fmt: skip
        self.stubber.add_response(
            "create_change_set",
            {"Id": f"{STACK_ID}:changeSet/deploy", "StackId": STACK_ID},
            {
                "StackName": NAME,
                "ChangeSetName": ANY,
                "TemplateURL": ANY,
                "Parameters": ANY,
                "Capabilities": ["CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND"],
                "ChangeSetType": kind,
                "Tags": ANY,
            },
        )
        described = {"ChangeSetName": "deploy", "StackName": NAME, "Status": status,
                     "StatusReason": reason, "Changes": changes}  # fmt: skip
        self.stubber.add_response("describe_change_set", described)  # the waiter
        self.stubber.add_response("describe_change_set", described)  # the changes, or why not

    def discard(self, created_stack: bool) -> None:
        self.stubber.add_response(
            "delete_change_set", {}, {"StackName": NAME, "ChangeSetName": ANY}
        )
        if created_stack:
            self.stubber.add_response("delete_stack", {}, {"StackName": NAME})

    def execute(self, final: str) -> None:
        self.stubber.add_response(
            "execute_change_set",
            {},
            {"StackName": NAME, "ChangeSetName": ANY, "ClientRequestToken": TOKEN},
        )
        self.status(final)  # the waiter's poll
        self.status(final)  # the status reported

    def events(self, events: list[dict[str, Any]]) -> None:
        self.stubber.add_response(
            "describe_stack_events", {"StackEvents": events}, {"StackName": NAME}
        )


def change(
    action: str, logical_id: str, kind: str, replacement: str = "", names=()
) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "Action": action,
        "LogicalResourceId": logical_id,
        "ResourceType": kind,
    }
    if action == "Modify":
        resource["Replacement"] = replacement or "False"
        resource["Details"] = [
            {"Target": {"Attribute": "Properties", "Name": name, "RequiresRecreation": "Never"}}
            for name in names
        ]
    return {"Type": "Resource", "ResourceChange": resource}


def event(logical_id: str, status: str, reason: str = "", token: str = TOKEN) -> dict[str, Any]:
    return {
        "StackId": STACK_ID, "EventId": f"{logical_id}-{status}", "StackName": NAME,
        "LogicalResourceId": logical_id, "ResourceType": "AWS::Lambda::Function",
        "Timestamp": NOW, "ResourceStatus": status, "ResourceStatusReason": reason,
        "ClientRequestToken": token,
    }  # fmt: skip


@pytest.fixture
def cfn() -> Iterator[Cfn]:
    stubbed = Cfn()
    with stubbed.stubber:
        yield stubbed
        stubbed.stubber.assert_no_pending_responses()


@pytest.fixture
def bucket() -> Iterator[Bucket]:
    with mock_aws():
        yield Bucket(boto3.client("s3", region_name=REGION), "credit-deploy-test", "dev")


ADDED = [
    change("Add", "AgeRule", "AWS::Lambda::Function"),
    change("Add", "AgeRuleRequests", "AWS::Lambda::EventSourceMapping"),
    change("Add", "Broker", "AWS::AmazonMQ::Broker"),
]


def run_deploy(
    cfn: Cfn, bucket: Bucket, built: Built, dry_run: bool = False
) -> tuple[Preview, list[str]]:
    lines: list[str] = []
    bucket.ensure(REGION)
    preview = deploy(built, stage("dev"), cfn.stack, bucket, lines.append, dry_run)
    return preview, lines


def test_a_first_deploy_creates_the_stack_through_a_change_set(cfn, bucket, dev_stack):
    cfn.status(None)
    cfn.change_set("CREATE", ADDED)
    cfn.execute("CREATE_COMPLETE")

    preview, lines = run_deploy(cfn, bucket, dev_stack)

    assert [str(c) for c in preview.changes] == [
        "add     AgeRule (AWS::Lambda::Function)",
        "add     AgeRuleRequests (AWS::Lambda::EventSourceMapping)",
        "add     Broker (AWS::AmazonMQ::Broker)",
    ]
    assert lines[-1] == "credit-dev: CREATE_COMPLETE"
    assert "3 to add" in "\n".join(lines)


def test_the_stack_is_created_from_the_uploaded_template_with_every_parameter(
    cfn, bucket, dev_stack
):
    cfn.status(None)
    requests: list[dict[str, Any]] = []
    cfn.client.meta.events.register(
        "before-parameter-build.cloudformation.CreateChangeSet",
        lambda params, **_: requests.append(params),
    )
    cfn.change_set("CREATE", ADDED)
    cfn.discard(created_stack=True)

    run_deploy(cfn, bucket, dev_stack, dry_run=True)

    [request] = requests
    parameters = {p["ParameterKey"]: p["ParameterValue"] for p in request["Parameters"]}
    assert parameters == stage("dev").parameters()
    key = request["TemplateURL"].split(".amazonaws.com/", 1)[1]
    uploaded = bucket.s3.get_object(Bucket=bucket.name, Key=key)["Body"].read()
    assert b'"AWS::Serverless-2016-10-31"' in uploaded
    assert {"Key": "stage", "Value": "dev"} in request["Tags"]


def test_a_dry_run_prints_the_change_set_and_deletes_it(cfn, bucket, dev_stack):
    cfn.status("UPDATE_COMPLETE")
    cfn.change_set(
        "UPDATE",
        [
            change("Modify", "AgeRule", "AWS::Lambda::Function", "False", ["Environment"]),
            change("Modify", "Broker", "AWS::AmazonMQ::Broker", "True", ["EngineVersion"]),
            change("Remove", "ValueRule", "AWS::Lambda::Function"),
            change("Remove", "ValueRuleRequests", "AWS::Lambda::EventSourceMapping"),
        ],
    )
    cfn.discard(created_stack=False)

    _, lines = run_deploy(cfn, bucket, dev_stack, dry_run=True)
    text = "\n".join(lines)

    assert "credit-dev (update): 2 to modify, 2 to remove" in text
    assert "modify  AgeRule (AWS::Lambda::Function) in place: Environment" in text
    assert "modify  Broker (AWS::AmazonMQ::Broker) REPLACED: EngineVersion" in text
    assert "remove  ValueRuleRequests (AWS::Lambda::EventSourceMapping)" in text
    assert lines[-1] == "dry run: the change set was deleted, nothing was changed"


def test_a_first_dry_run_also_deletes_the_empty_stack_its_change_set_made(cfn, bucket, dev_stack):
    cfn.status(None)
    cfn.change_set("CREATE", ADDED)
    cfn.discard(created_stack=True)

    preview, _ = run_deploy(cfn, bucket, dev_stack, dry_run=True)

    assert preview.created_stack


def test_no_changes_deletes_the_empty_change_set_and_executes_nothing(cfn, bucket, dev_stack):
    cfn.status("UPDATE_COMPLETE")
    reason = "The submitted information didn't contain changes. Submit different information."
    cfn.change_set("UPDATE", [], status="FAILED", reason=reason)
    cfn.discard(created_stack=False)

    preview, lines = run_deploy(cfn, bucket, dev_stack)

    assert preview.empty
    assert lines[-1] == "credit-dev: no changes"


def test_a_refused_change_set_is_reported_with_cloudformations_reason(cfn, bucket, dev_stack):
    cfn.status("UPDATE_COMPLETE")
    cfn.change_set("UPDATE", [], status="FAILED", reason="Template format error: bad thing")
    cfn.discard(created_stack=False)

    with pytest.raises(DeployError, match="refused the change set: Template format error"):
        run_deploy(cfn, bucket, dev_stack)


def test_a_failed_update_reports_each_failed_resource_after_the_rollback(cfn, bucket, dev_stack):
    cfn.status("UPDATE_COMPLETE")
    cfn.change_set(
        "UPDATE", [change("Modify", "AgeRule", "AWS::Lambda::Function", "False", ["Timeout"])]
    )
    cfn.execute("UPDATE_ROLLBACK_COMPLETE")
    cfn.events(
        [
            event("credit-dev", "UPDATE_ROLLBACK_COMPLETE"),
            event("AgeRule", "UPDATE_FAILED", "Resource handler returned message: Timeout too big"),
            event("ValueRule", "UPDATE_FAILED", "an older deploy", token="another-deploy"),
            event("AgeRule", "UPDATE_IN_PROGRESS"),
        ]
    )

    with pytest.raises(StackError) as raised:
        run_deploy(cfn, bucket, dev_stack)

    assert raised.value.status == "UPDATE_ROLLBACK_COMPLETE"
    assert [str(f) for f in raised.value.failures] == [
        "AgeRule (AWS::Lambda::Function) UPDATE_FAILED: "
        "Resource handler returned message: Timeout too big"
    ]
    assert "the stack is now UPDATE_ROLLBACK_COMPLETE" in str(raised.value)


def test_a_changed_broker_secret_without_a_new_broker_is_refused(cfn, bucket, dev_stack):
    cfn.status("UPDATE_COMPLETE")
    cfn.change_set(
        "UPDATE",
        [
            change(
                "Modify",
                "BrokerSecret",
                "AWS::SecretsManager::Secret",
                "False",
                ["GenerateSecretString"],
            )
        ],
    )
    cfn.discard(created_stack=False)

    with pytest.raises(DeployError, match="BrokerSecret would change while Broker keeps its user"):
        run_deploy(cfn, bucket, dev_stack)


def test_a_production_stack_deployed_without_the_mark_is_refused(cfn, bucket, dev_stack):
    cfn.status("UPDATE_COMPLETE", tags={"stage": "dev", "production": "true"})

    with pytest.raises(DeployError, match="production stack: deploy it with --production"):
        run_deploy(cfn, bucket, dev_stack)


def test_a_stack_whose_first_create_rolled_back_must_be_torn_down_first(cfn, bucket, dev_stack):
    cfn.status("ROLLBACK_COMPLETE")

    with pytest.raises(DeployError, match="ROLLBACK_COMPLETE: it can only be deleted"):
        run_deploy(cfn, bucket, dev_stack)


def test_teardown_deletes_the_stack_and_names_what_production_keeps(cfn):
    cfn.status("UPDATE_COMPLETE")
    template = {"Resources": {
        "Broker": {"Type": "AWS::AmazonMQ::Broker", "DeletionPolicy": "Retain"},
        "ServicesSecret": {"Type": "AWS::SecretsManager::Secret", "DeletionPolicy": "Retain"},
        "AgeRule": {"Type": "AWS::Lambda::Function"},
    }}  # fmt: skip
    cfn.stubber.add_response(
        "get_template",
        {"TemplateBody": __import__("json").dumps(template)},
        {"StackName": NAME, "TemplateStage": "Processed"},
    )
    cfn.status("UPDATE_COMPLETE")
    cfn.stubber.add_response("delete_stack", {}, {"StackName": NAME, "ClientRequestToken": TOKEN})
    cfn.status(None)  # the waiter: gone
    cfn.status(None)
    lines: list[str] = []

    final = teardown(cfn.stack, lines.append)

    assert final == "DELETE_COMPLETE"
    assert lines == [
        "credit-dev: UPDATE_COMPLETE; kept when deleted: Broker, ServicesSecret",
        "credit-dev: DELETE_COMPLETE",
    ]


def test_a_teardown_dry_run_deletes_nothing(cfn):
    cfn.status("CREATE_COMPLETE")
    cfn.stubber.add_response(
        "get_template",
        {"TemplateBody": '{"Resources": {}}'},
        {"StackName": NAME, "TemplateStage": "Processed"},
    )
    lines: list[str] = []

    teardown(cfn.stack, lines.append, dry_run=True)

    assert lines[-1] == "dry run: nothing was deleted"


def test_a_failed_teardown_names_the_resource_that_stayed(cfn):
    cfn.status("UPDATE_COMPLETE")
    cfn.stubber.add_response("delete_stack", {}, {"StackName": NAME, "ClientRequestToken": TOKEN})
    cfn.status("DELETE_FAILED")
    cfn.status("DELETE_FAILED")
    cfn.events([event("AgeRuleLogGroup", "DELETE_FAILED", "Access denied")])

    with pytest.raises(StackError, match=r"AgeRuleLogGroup .* DELETE_FAILED: Access denied"):
        cfn.stack.delete()


def test_drift_detection_waits_and_reports_the_drifted_resources(cfn):
    cfn.stubber.add_response(
        "detect_stack_drift", {"StackDriftDetectionId": "d-1"}, {"StackName": NAME}
    )
    status = {"StackId": STACK_ID, "StackDriftDetectionId": "d-1", "Timestamp": NOW}
    cfn.stubber.add_response(
        "describe_stack_drift_detection_status",
        {**status, "DetectionStatus": "DETECTION_IN_PROGRESS"},
        {"StackDriftDetectionId": "d-1"},
    )
    cfn.stubber.add_response(
        "describe_stack_drift_detection_status",
        {**status, "DetectionStatus": "DETECTION_COMPLETE", "StackDriftStatus": "DRIFTED"},
        {"StackDriftDetectionId": "d-1"},
    )
    cfn.stubber.add_response(
        "describe_stack_resource_drifts",
        {"StackResourceDrifts": [{
            "StackId": STACK_ID, "LogicalResourceId": "AgeRule",
            "ResourceType": "AWS::Lambda::Function", "StackResourceDriftStatus": "MODIFIED",
            "Timestamp": NOW,
            "PropertyDifferences": [{"PropertyPath": "/Timeout", "ExpectedValue": "30",
                                     "ActualValue": "3", "DifferenceType": "NOT_EQUAL"}],
        }]},
        {"StackName": NAME, "StackResourceDriftStatusFilters": ["MODIFIED", "DELETED"]},
    )  # fmt: skip

    [drift] = cfn.stack.drift()

    assert str(drift) == (
        "AgeRule (AWS::Lambda::Function) MODIFIED\n"
        "    /Timeout: not_equal, stack says 30, AWS has 3"
    )


class OneClient:
    """A boto3 session that hands out one given client, for the command line's `session`."""

    def __init__(self, client: Any) -> None:
        self.client_ = client
        self.region_name = REGION

    def __call__(self, region_name: str | None = None) -> OneClient:
        return self

    def client(self, service: str) -> Any:
        assert service == "cloudformation"
        return self.client_


def test_the_drift_command_exits_3_when_something_drifted(cfn, capsys):
    from infra.cli import main

    cfn.stubber.add_response(
        "detect_stack_drift", {"StackDriftDetectionId": "d-1"}, {"StackName": NAME}
    )
    cfn.stubber.add_response(
        "describe_stack_drift_detection_status",
        {"StackId": STACK_ID, "StackDriftDetectionId": "d-1", "Timestamp": NOW,
         "DetectionStatus": "DETECTION_COMPLETE", "StackDriftStatus": "DRIFTED"},
        {"StackDriftDetectionId": "d-1"},
    )  # fmt: skip
    cfn.stubber.add_response(
        "describe_stack_resource_drifts",
        {"StackResourceDrifts": [{
            "StackId": STACK_ID, "LogicalResourceId": "ServicesSecret",
            "ResourceType": "AWS::SecretsManager::Secret", "StackResourceDriftStatus": "DELETED",
            "Timestamp": NOW,
        }]},
        {"StackName": NAME, "StackResourceDriftStatusFilters": ["MODIFIED", "DELETED"]},
    )  # fmt: skip

    status = main(["drift", "--stage", "dev", "--region", REGION], session=OneClient(cfn.client))

    assert status == 3
    out = capsys.readouterr().out
    assert "ServicesSecret (AWS::SecretsManager::Secret) DELETED" in out
    assert "credit-dev: 1 drifted resource(s)" in out
