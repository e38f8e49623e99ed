"""The stack on moto's CloudFormation: a removed function is pruned by the next deploy, and
an unchanged one uploads nothing. moto runs no SAM transform, so the template is expanded
first by AWS's own translator (as CloudFormation would), then kept to the resource types
moto's CloudFormation creates: functions, roles, log groups."""

from __future__ import annotations

import base64
import hashlib
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from declarations.loader import Document
from declarations.sam import expand
from infra.config import ExistingBroker, StageConfig
from infra.deploy import build, deploy
from infra.package import no_dependencies
from infra.stack import Stack
from infra.storage import Bucket
from tests.infra.conftest import REGION, stage

MOTO_TYPES = {
    "AWS::Lambda::Function",
    "AWS::IAM::Role",
    "AWS::Logs::LogGroup",
    # moto's CloudFormation does not create secrets (it warns), but resolves a Ref to one,
    # which the roles need.
    "AWS::SecretsManager::Secret",
}
pytestmark = pytest.mark.filterwarnings(r"ignore:Tried to parse AWS\S+Secret")
BROKER = ExistingBroker(
    arn=f"arn:aws:mq:{REGION}:123456789012:broker:shared:b-0123",
    secret_arn=f"arn:aws:secretsmanager:{REGION}:123456789012:secret:shared/credit-AbCdEf",
    host="b-0123.mq.us-east-1.amazonaws.com:5671",
)


class MotoStack:
    """Builds a project's stack, uploads its code and template, deploys it on moto."""

    def __init__(self, build_dir: Path) -> None:
        self.build_dir = build_dir
        self.config: StageConfig = stage("dev", broker=BROKER)
        self.cfn = boto3.client("cloudformation", region_name=REGION)
        self.stack = Stack(self.cfn, self.config.stack_name, delay=0, max_attempts=5)
        self.lambda_ = boto3.client("lambda", region_name=REGION)

    def deploy(self, root: Path) -> tuple[Bucket, list[str]]:
        bucket = Bucket(boto3.client("s3", region_name=REGION), "credit-deploy-moto", "dev")
        bucket.ensure(REGION)
        built = build(root, self.config, self.build_dir, no_dependencies, bucket.code)
        plain = expand(Document(root / "stack.json", built.template), REGION, self.parameters())
        body = _moto_subset(plain.body)
        lines: list[str] = []
        deploy(type(built)(body, built.artifacts), self.config, self.stack, bucket, lines.append)
        return bucket, lines

    def parameters(self) -> dict[str, Any]:
        values: dict[str, Any] = dict(self.config.parameters())
        for name in ("SubnetIds", "SecurityGroupIds"):
            values[name] = values[name].split(",")
        return values

    def functions(self) -> dict[str, str]:
        """Deployed function name -> its code's SHA-256, as Lambda reports it."""
        return {
            f["FunctionName"]: f["CodeSha256"] for f in self.lambda_.list_functions()["Functions"]
        }


def _moto_subset(body: dict[str, Any]) -> dict[str, Any]:
    resources = {
        logical_id: resource
        for logical_id, resource in body["Resources"].items()
        if resource["Type"] in MOTO_TYPES and logical_id != "TopologyFunction"
        and not logical_id.startswith(("APIHandler", "Relay", "TopologyFunction"))
    }  # fmt: skip
    return {**body, "Resources": resources, "Outputs": {}}


@pytest.fixture
def moto_stack(tmp_path: Path) -> Iterator[MotoStack]:
    with mock_aws():
        yield MotoStack(tmp_path / "build")


def _without_value_rule(project: Path) -> Path:
    shutil.rmtree(project / "functions" / "value_rule")
    config = project / "functions" / "api" / ".chalice" / "config.json"
    config.write_text(config.read_text().replace('"age,value"', '"age"'))
    return project


def test_a_function_removed_from_the_declarations_is_deleted_by_the_next_deploy(
    moto_stack, project_copy
):
    moto_stack.deploy(project_copy)
    before = moto_stack.functions()

    _, lines = moto_stack.deploy(_without_value_rule(project_copy))
    after = moto_stack.functions()

    assert sorted(name.split("-")[2] for name in before) == ["AgeRule", "ValueRule"]
    assert sorted(name.split("-")[2] for name in after) == ["AgeRule"]
    assert set(after) < set(before)  # the age rule is the same function, untouched
    text = "\n".join(lines)
    assert "remove  ValueRule (AWS::Lambda::Function)" in text
    assert "remove  ValueRuleLogGroup (AWS::Logs::LogGroup)" in text
    assert "remove  ValueRuleExecutionRole (AWS::IAM::Role)" in text
    assert "AgeRule " not in text  # no line for the function that did not change


def test_an_unchanged_function_uploads_nothing_the_second_time(moto_stack, project_copy):
    first, _ = moto_stack.deploy(project_copy)
    second, lines = moto_stack.deploy(project_copy)

    assert any(key.startswith("dev/code/") for key in first.uploaded)
    assert second.uploaded == []
    assert lines[-1] == "credit-dev: no changes"


def test_the_deployed_functions_run_the_uploaded_zips(moto_stack, project_copy):
    bucket, _ = moto_stack.deploy(project_copy)
    deployed = moto_stack.cfn.get_template(StackName=moto_stack.config.stack_name)
    body = deployed["TemplateBody"]  # botocore parses a JSON template into a dict
    code = body["Resources"]["AgeRule"]["Properties"]["Code"]

    stored = bucket.s3.get_object(Bucket=code["S3Bucket"], Key=code["S3Key"])["Body"].read()

    [sha] = [s for n, s in moto_stack.functions().items() if "AgeRule" in n]
    assert base64.b64encode(hashlib.sha256(stored).digest()).decode() == sha
    assert code["S3Key"] == f"dev/code/{hashlib.sha256(stored).hexdigest()}.zip"
