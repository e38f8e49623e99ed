"""The stage's one CloudFormation template, built from the same SAM declarations the local
runtime reads, merged with Chalice's template for the API.

The root template.yaml (and the fragments it includes) declares the functions, their MQ
events, the broker and the secrets. What only AWS needs and what follows from those
declarations is added here, for every function alike (Chalice's included): a role of its own
with only what that function uses, a log group with retention, the services secret's ARN in
CREDIT_SECRET_ID, the VPC, the code's S3 location; and the custom resource that declares
the broker topology for the rules the MQ events consume.

The declarations hold a function for the API (`CreditApi`) so the local runtime can serve it;
on AWS, Chalice generates that function (with its API Gateway and the `@app.schedule`
functions) from the app itself. So a function whose CodeUri is a Chalice project is left out
of the template given to `chalice package --merge-template`: deployed once, by Chalice.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from credit import settings
from declarations.loader import Document, load
from declarations.reader import read
from infra import api
from infra.config import LOG_RETENTION, SECURITY_GROUP_IDS, SUBNET_IDS, StageConfig
from infra.errors import LimitError, Violation
from infra.package import Artifact

SERVERLESS_FUNCTION = "AWS::Serverless::Function"
ROLE = "AWS::IAM::Role"
SERVICES_SECRET = "ServicesSecret"  # noqa: S105 - a logical id, not a secret
RETAINED = ("Broker", "BrokerSecret", SERVICES_SECRET)  # what production keeps
TOPOLOGY_FUNCTION = "TopologyFunction"
TOPOLOGY_RESOURCE = "BrokerTopology"
TOPOLOGY_CODE = Path(__file__).resolve().parent / "topology_resource"
TOPOLOGY_TIMEOUT_SECONDS = 120
RULE_QUEUE_PREFIX = "rule."
# Lambda's network interfaces in the VPC, and the Amazon MQ poller's look at the broker's
# subnets and groups; EC2 grants these on no narrower resource than "*".
NETWORK_ACTIONS = [
    "ec2:AssignPrivateIpAddresses",
    "ec2:CreateNetworkInterface",
    "ec2:DeleteNetworkInterface",
    "ec2:DescribeNetworkInterfaces",
    "ec2:DescribeSecurityGroups",
    "ec2:DescribeSubnets",
    "ec2:DescribeVpcs",
    "ec2:UnassignPrivateIpAddresses",
]

Location = dict[str, str]  # {"Bucket": ..., "Key": ...}
Store = Callable[[Artifact], Location]
"""Puts an artifact where CloudFormation reads code from, and says where (S3 in deploy)."""


@dataclass(frozen=True)
class Declarations:
    """The root template, merged, and what the reader makes of it (checked against AWS's limits)."""

    document: Document
    rules: tuple[str, ...]  # the rules whose queues the MQ events consume
    code_dirs: dict[str, Path]  # function logical id -> local code folder
    chalice_apps: dict[str, Path]  # the functions Chalice deploys instead

    @classmethod
    def load(cls, root: Path) -> Declarations:
        document = load(root)
        project = read(root)
        code_dirs = {lid: function.code_dir for lid, function in project.functions.items()}
        apps = {lid: path for lid, path in code_dirs.items() if api.is_chalice_app(path)}
        rules = tuple(sorted({_rule(document, source.logical_id, source.queue)
                              for source in project.mq_sources}))  # fmt: skip
        return cls(document, rules, code_dirs, apps)

    def merge_template(self) -> dict[str, Any]:
        """What `chalice package --merge-template` merges into its own template."""
        body = copy.deepcopy(self.document.body)
        body.pop("Metadata", None)  # the loader's Include list: already merged
        resources = body["Resources"]
        for logical_id in self.chalice_apps:
            del resources[logical_id]
        resources.update(topology_resources(self.rules))
        return body


def _rule(document: Document, logical_id: str, queue: str) -> str:
    """The rule a queue belongs to: credit.topology declares `rule.<name>` queues only."""
    rule = queue.removeprefix(RULE_QUEUE_PREFIX)
    if not queue.startswith(RULE_QUEUE_PREFIX) or not rule:
        raise LimitError(
            [Violation(document.where(logical_id), "Queues", f"{queue!r} is not rule.<name>")]
        )
    return rule


def topology_resources(rules: tuple[str, ...]) -> dict[str, Any]:
    """The function that declares the topology inside the VPC, and the resource invoking it."""
    return {
        TOPOLOGY_FUNCTION: {
            "Type": SERVERLESS_FUNCTION,
            "Properties": {
                "Description": "Declares the broker topology (exchange, quorum queues, DLQs)",
                "CodeUri": str(TOPOLOGY_CODE),
                "Handler": "handler.handler",
                "Timeout": TOPOLOGY_TIMEOUT_SECONDS,
            },
        },
        TOPOLOGY_RESOURCE: {
            "Type": "Custom::BrokerTopology",
            "Properties": {
                "ServiceToken": {"Fn::GetAtt": [TOPOLOGY_FUNCTION, "Arn"]},
                "Rules": list(rules),
            },
        },
    }


def api_rules(app_dir: Path, stage: str) -> tuple[str, ...]:
    """The rules the API waits for on each ticket (CREDIT_RULES of the Chalice stage)."""
    config = json.loads((app_dir / api.CHALICE_CONFIG).read_text())
    variables = {
        **config.get("environment_variables", {}),
        **config.get("stages", {}).get(stage, {}).get("environment_variables", {}),
    }
    raw = variables.get(settings.RULES, settings.DEFAULTS[settings.RULES])
    return tuple(rule.strip() for rule in raw.split(",") if rule.strip())


def check_rules(declarations: Declarations, stage: str) -> None:
    """Every rule the API requires must have a function consuming its queue, or each new
    ticket would stay PENDING for good (a rule removed from the declarations, say)."""
    problems = []
    for logical_id, app_dir in declarations.chalice_apps.items():
        missing = sorted(set(api_rules(app_dir, stage)) - set(declarations.rules))
        if missing:
            problems.append(
                Violation(
                    f"{app_dir / api.CHALICE_CONFIG}: stage {stage}",
                    settings.RULES,
                    f"requires {', '.join(missing)}, which no function consumes "
                    f"(declared: {', '.join(declarations.rules) or 'none'}); {logical_id}'s "
                    "tickets would stay PENDING",
                )
            )
    if problems:
        raise LimitError(problems)


def check_parameters(document: Document, values: Mapping[str, str]) -> None:
    """Refuse, before any AWS call, a parameter value the template's own AllowedValues or
    AllowedPattern would refuse (the template is the one place those are written)."""
    declared = document.body.get("Parameters", {})
    problems = []
    for name, value in values.items():
        spec = declared.get(name)
        if spec is None:
            problems.append(Violation(str(document.path), f"Parameters.{name}", "not declared"))
            continue
        allowed = spec.get("AllowedValues")
        if allowed is not None and value not in [str(item) for item in allowed]:
            choices = ", ".join(str(item) for item in allowed)
            problems.append(
                Violation(f"parameter {name}", repr(value), f"must be one of {choices}")
            )
        pattern = spec.get("AllowedPattern")
        if pattern is not None and not re.fullmatch(pattern, value):
            problems.append(Violation(f"parameter {name}", repr(value), f"must match {pattern}"))
    if problems:
        raise LimitError(problems)


def finish(
    template: dict[str, Any],
    code: Mapping[str, Location],
    config: StageConfig,
) -> dict[str, Any]:
    """Give every function its code, role, log group, VPC and settings secret; mark what a
    production stage retains; drop the roles nothing uses any more (Chalice's own)."""
    body = copy.deepcopy(template)
    resources: dict[str, Any] = body["Resources"]
    for logical_id in list(_functions(resources)):
        properties = resources[logical_id].setdefault("Properties", {})
        if logical_id not in code:
            raise LimitError([Violation(f"function {logical_id}", "CodeUri", "no code built")])
        properties["CodeUri"] = dict(code[logical_id])
        resources[f"{logical_id}LogGroup"] = log_group(logical_id)
        resources[f"{logical_id}ExecutionRole"] = role(logical_id, properties)
        _wire(logical_id, properties)
    _after_topology(resources)
    _drop_unused_roles(resources)
    if config.is_production:
        for logical_id in RETAINED:
            if logical_id in resources:
                resources[logical_id]["DeletionPolicy"] = "Retain"
                resources[logical_id]["UpdateReplacePolicy"] = "Retain"
    return body


def _after_topology(resources: dict[str, Any]) -> None:
    """Functions start once the topology exists: a mapping polling a queue not declared yet
    fails, and the API's publishes to an exchange not declared yet are unroutable."""
    if TOPOLOGY_RESOURCE not in resources:
        return
    for logical_id in _functions(resources):
        if logical_id != TOPOLOGY_FUNCTION:
            depends = resources[logical_id].get("DependsOn", [])
            depends = [depends] if isinstance(depends, str) else list(depends)
            resources[logical_id]["DependsOn"] = sorted({*depends, TOPOLOGY_RESOURCE})


def _functions(resources: Mapping[str, Any]) -> Iterator[str]:
    for logical_id, resource in resources.items():
        if isinstance(resource, dict) and resource.get("Type") == SERVERLESS_FUNCTION:
            yield logical_id


def _wire(logical_id: str, properties: dict[str, Any]) -> None:
    properties["Role"] = {"Fn::GetAtt": [f"{logical_id}ExecutionRole", "Arn"]}
    properties.setdefault("LoggingConfig", {})["LogGroup"] = {"Ref": f"{logical_id}LogGroup"}
    properties["VpcConfig"] = {
        "SubnetIds": {"Ref": SUBNET_IDS},
        "SecurityGroupIds": {"Ref": SECURITY_GROUP_IDS},
    }
    variables = properties.setdefault("Environment", {}).setdefault("Variables", {})
    # Chalice's stage gives the secret by name; the stack's own secret is the one to read.
    variables[settings.SECRET_ID] = {"Ref": SERVICES_SECRET}
    for name in (settings.AMQP_URL, settings.MYSQL_URL, settings.REDIS_URL):
        if name in variables:
            raise LimitError(
                [
                    Violation(
                        f"function {logical_id}",
                        f"Environment.Variables.{name}",
                        "credentials never go into a Lambda variable: the stack puts them in "
                        f"{SERVICES_SECRET}, which {settings.SECRET_ID} names",
                    )
                ]
            )


def log_group(logical_id: str) -> dict[str, Any]:
    """The function's own log group, kept for the stage's retention and deleted with it."""
    return {
        "Type": "AWS::Logs::LogGroup",
        "Properties": {
            "LogGroupName": {"Fn::Sub": f"/aws/lambda/${{AWS::StackName}}/{logical_id}"},
            "RetentionInDays": {"Ref": LOG_RETENTION},
        },
    }


def role(logical_id: str, properties: Mapping[str, Any]) -> dict[str, Any]:
    """A role for one function: its log group, the network, the services secret, and for
    each MQ event the broker and the secret its poller logs in with; nothing else."""
    statements: list[dict[str, Any]] = [
        {
            "Sid": "Logs",
            "Effect": "Allow",
            "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
            "Resource": {"Fn::GetAtt": [f"{logical_id}LogGroup", "Arn"]},
        },
        {"Sid": "Network", "Effect": "Allow", "Action": NETWORK_ACTIONS, "Resource": "*"},
        {
            "Sid": "Settings",
            "Effect": "Allow",
            "Action": "secretsmanager:GetSecretValue",
            "Resource": {"Ref": SERVICES_SECRET},
        },
    ]
    for index, event in enumerate(_mq_events(properties)):
        statements.append(
            {
                "Sid": f"Broker{index}",
                "Effect": "Allow",
                "Action": "mq:DescribeBroker",
                "Resource": event["Broker"],
            }
        )
        statements += [
            {
                "Sid": f"BrokerUser{index}",
                "Effect": "Allow",
                "Action": "secretsmanager:GetSecretValue",
                "Resource": access["URI"],
            }
            for access in event.get("SourceAccessConfigurations", [])
            if access.get("Type") == "BASIC_AUTH"
        ]
    return {
        "Type": ROLE,
        "Properties": {
            "AssumeRolePolicyDocument": {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"Service": "lambda.amazonaws.com"},
                        "Action": "sts:AssumeRole",
                    }
                ],
            },
            "Policies": [
                {
                    "PolicyName": "function",
                    "PolicyDocument": {"Version": "2012-10-17", "Statement": statements},
                }
            ],
        },
    }


def _mq_events(properties: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    for event in (properties.get("Events") or {}).values():
        if isinstance(event, dict) and event.get("Type") == "MQ":
            yield event.get("Properties", {})


def _drop_unused_roles(resources: dict[str, Any]) -> None:
    """Remove roles no other resource names (in a Ref, a GetAtt or a Sub)."""
    text = json.dumps({k: v for k, v in resources.items() if v.get("Type") != ROLE})
    for logical_id in [lid for lid, r in resources.items() if r.get("Type") == ROLE]:
        if not re.search(rf"(?<![A-Za-z0-9]){re.escape(logical_id)}(?![A-Za-z0-9])", text):
            del resources[logical_id]
