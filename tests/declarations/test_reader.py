"""Reading SAM and CloudFormation templates: what runs locally, and what is refused."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from declarations.errors import TemplateError
from declarations.reader import read

HEADER = """\
AWSTemplateFormatVersion: "2010-09-09"
Transform: AWS::Serverless-2016-10-31
"""
MQ_EVENT = """\
          Type: MQ
          Properties:
            Broker: arn:aws:mq:eu-west-1:123456789012:broker:shop:b-1234
            Queues: [orders]
            SourceAccessConfigurations:
              - {Type: BASIC_AUTH, URI: arn:aws:secretsmanager:eu-west-1:123456789012:secret:mq}
"""


def template(tmp_path: Path, body: str, name: str = "template.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(body))
    (tmp_path / "src").mkdir(exist_ok=True)
    return path


def one_function(tmp_path: Path, properties: str = "", events: str = "") -> Path:
    body = HEADER + textwrap.dedent(
        """\
        Resources:
          Orders:
            Type: AWS::Serverless::Function
            Properties:
              CodeUri: src
              Handler: app.handler
              Runtime: python3.11
        """
    )
    body += textwrap.indent(textwrap.dedent(properties), " " * 6)
    if events:
        body += "      Events:\n        Queue:\n" + events
    return template(tmp_path, body)


def test_an_outside_sam_app_reads_with_globals_parameters_and_intrinsics(tmp_path):
    path = template(
        tmp_path,
        HEADER
        + """\
Parameters:
  Stage: {Type: String, Default: dev}
  Broker: {Type: String, Default: "arn:aws:mq:eu-west-1:123456789012:broker:shop:b-1"}
Globals:
  Function:
    Runtime: python3.11
    Timeout: 10
    Environment:
      Variables:
        STAGE: !Ref Stage
Resources:
  Orders:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: src
      Handler: app.handler
      MemorySize: 512
      Environment:
        Variables:
          TABLE: !Sub "orders-${Stage}-${AWS::Region}"
      Events:
        Queue:
          Type: MQ
          Properties:
            Broker: !Ref Broker
            Queues: [orders]
            BatchSize: 10
            MaximumBatchingWindowInSeconds: 2
            SourceAccessConfigurations:
              - {Type: BASIC_AUTH, URI: arn:aws:secretsmanager:eu-west-1:1:secret:mq}
              - {Type: VIRTUAL_HOST, URI: /shop}
            FilterCriteria:
              Filters:
                - Pattern: '{"data": {"kind": ["order"]}}'
        Nightly:
          Type: Schedule
          Properties:
            Schedule: cron(0 3 * * ? *)
            Input: '{"report": true}'
""",
    )
    project = read(path, parameters={"Stage": "test"}, region="eu-west-1")
    orders = project.function("Orders")
    assert (orders.handler, orders.runtime, orders.timeout, orders.memory_size) == (
        "app.handler",
        "python3.11",
        10,
        512,
    )
    assert orders.code_dir == (tmp_path / "src").resolve()
    assert orders.environment == {"STAGE": "test", "TABLE": "orders-test-eu-west-1"}
    (source,) = project.mq_sources
    assert (source.function, source.queue, source.virtual_host) == ("Orders", "orders", "/shop")
    assert (source.batch_size, source.maximum_batching_window, source.enabled) == (10, 2, True)
    assert source.broker.arn == "arn:aws:mq:eu-west-1:123456789012:broker:shop:b-1"
    assert source.filters == ('{"data": {"kind": ["order"]}}',)
    (schedule,) = project.schedules
    assert (schedule.function, schedule.expression, schedule.input) == (
        "Orders",
        "cron(0 3 * * ? *)",
        '{"report": true}',
    )
    assert project.warnings == ()


def test_plain_cloudformation_functions_and_mappings_read_without_sam(tmp_path):
    path = template(
        tmp_path,
        """\
Resources:
  Broker:
    Type: AWS::AmazonMQ::Broker
    Properties: {BrokerName: shop, EngineType: RABBITMQ}
  Worker:
    Type: AWS::Lambda::Function
    Properties:
      FunctionName: shop-worker
      Code: src
      Handler: app.handler
      Runtime: python3.12
      Role: arn:aws:iam::123456789012:role/worker
  WorkerQueue:
    Type: AWS::Lambda::EventSourceMapping
    Properties:
      FunctionName: !GetAtt Worker.Arn
      EventSourceArn: !GetAtt Broker.Arn
      Queues: [jobs]
      Enabled: false
""",
    )
    project = read(path)
    assert project.function("shop-worker").logical_id == "Worker"
    (source,) = project.mq_sources
    assert (source.function, source.queue, source.enabled) == ("Worker", "jobs", False)
    assert source.broker.logical_id == "Broker"
    assert source.maximum_batching_window == 0.5  # AWS's default for Amazon MQ


def test_fragments_merge_with_paths_relative_to_their_own_folder(tmp_path):
    template(
        tmp_path,
        HEADER
        + """\
Metadata:
  LocalRuntime:
    Include: [functions/*/template.yaml]
Globals:
  Function:
    Runtime: python3.11
Resources: {}
""",
    )
    for name in ("a", "b"):
        folder = tmp_path / "functions" / name
        folder.mkdir(parents=True)
        (folder / "template.yaml").write_text(
            f"Resources:\n  Fn{name.upper()}:\n    Type: AWS::Serverless::Function\n"
            "    Properties: {CodeUri: ., Handler: h.handler}\n"
        )
    project = read(tmp_path)
    assert project.function("FnA").code_dir == (tmp_path / "functions" / "a").resolve()
    assert project.function("FnB").code_dir == (tmp_path / "functions" / "b").resolve()


def test_a_logical_id_declared_in_two_fragments_is_refused_naming_both(tmp_path):
    template(
        tmp_path,
        "Metadata: {LocalRuntime: {Include: [f*.yaml]}}\nResources: {}\n",
    )
    for name in ("f1.yaml", "f2.yaml"):
        (tmp_path / name).write_text(
            "Resources:\n  Same:\n    Type: AWS::Lambda::Function\n"
            "    Properties: {Code: src, Handler: a.b, Runtime: python3.11}\n"
        )
    with pytest.raises(TemplateError, match=r"f2.yaml: Resources.Same: declared twice.*f1.yaml"):
        read(tmp_path)


@pytest.mark.parametrize(
    ("properties", "where", "problem"),
    [
        ("Timeout: 2.5\n", "Orders: Timeout", "whole seconds"),
        ("Timeout: 901\n", "Orders: Timeout", "1 to 900"),
        ("MemorySize: 64\n", "Orders: MemorySize", "128 to 10240"),
        ("Environment: {Variables: {AWS_REGION: x}}\n", "AWS_REGION", "reserved"),
        ("Environment: {Variables: {1BAD: x}}\n", "1BAD", "names are a letter"),
        ("Runtime: nodejs20.x\n", "Orders: Runtime", "only Python"),
        ("Handler: nodot\n", "Orders: Handler", "module.function"),
        ("EphemeralStorage: {Size: 100}\n", "EphemeralStorage.Size", "512 to 10240"),
        ("LoggingConfig: {LogFormat: XML}\n", "LogFormat", "Text or JSON"),
        ("LoggingConfig: {ApplicationLogLevel: DEBUG}\n", "ApplicationLogLevel", "LogFormat: JSON"),
    ],
)
def test_invalid_function_properties_are_refused_naming_resource_and_property(
    tmp_path, properties, where, problem
):
    path = one_function(tmp_path, properties)
    with pytest.raises(TemplateError) as caught:
        read(path)
    assert where in str(caught.value) and problem in str(caught.value)


@pytest.mark.parametrize(
    ("extra", "where", "problem"),
    [
        ("            BatchSize: 0\n", "BatchSize", "1 to 10000"),
        # SAM's own validation refuses a fraction before the reader sees it
        (
            "            MaximumBatchingWindowInSeconds: 0.5\n",
            "MaximumBatchingWindowInSeconds",
            "invalid",
        ),
        (
            "            MaximumBatchingWindowInSeconds: 301\n",
            "MaximumBatchingWindowInSeconds",
            "0 to 300",
        ),
        (
            "            FilterCriteria: {Filters: [{Pattern: 'not json'}]}\n",
            "FilterCriteria.Filters[0].Pattern",
            "not JSON",
        ),
    ],
)
def test_invalid_mq_settings_are_refused_naming_the_mapping_and_property(
    tmp_path, extra, where, problem
):
    path = one_function(tmp_path, events=MQ_EVENT + extra)
    with pytest.raises(TemplateError) as caught:
        read(path)
    assert "OrdersQueue" in str(caught.value)
    assert where in str(caught.value) and problem in str(caught.value)


def test_a_fractional_batching_window_in_plain_cloudformation_is_refused(tmp_path):
    path = template(
        tmp_path,
        """\
Resources:
  Worker:
    Type: AWS::Lambda::Function
    Properties: {Code: src, Handler: app.handler, Runtime: python3.11}
  WorkerQueue:
    Type: AWS::Lambda::EventSourceMapping
    Properties:
      FunctionName: !Ref Worker
      EventSourceArn: arn:aws:mq:us-east-1:123456789012:broker:b:b-1
      Queues: [jobs]
      MaximumBatchingWindowInSeconds: 0.5
""",
    )
    with pytest.raises(
        TemplateError, match="WorkerQueue: MaximumBatchingWindowInSeconds: AWS takes whole"
    ):
        read(path)


def test_sam_refuses_an_unknown_event_property_and_says_which(tmp_path):
    path = one_function(tmp_path, events=MQ_EVENT + "            Bogus: 1\n")
    with pytest.raises(TemplateError, match="property Bogus not defined"):
        read(path)


def test_properties_that_are_not_emulated_are_named_in_one_warning_line(tmp_path):
    path = one_function(
        tmp_path,
        "ReservedConcurrentExecutions: 5\nTracing: Active\nRole: arn:aws:iam::1:role/x\n",
    )
    (warning,) = read(path).warnings
    assert "Orders: not emulated locally: ReservedConcurrentExecutions, TracingConfig" in warning
    assert "Role" not in warning  # it has no meaning on one machine


def test_other_event_types_and_resources_are_named_not_dropped(tmp_path):
    path = template(
        tmp_path,
        HEADER
        + """\
Resources:
  Table:
    Type: AWS::DynamoDB::Table
    Properties: {}
  Orders:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: src
      Handler: app.handler
      Runtime: python3.11
      Events:
        Jobs:
          Type: SQS
          Properties: {Queue: arn:aws:sqs:us-east-1:123456789012:jobs}
""",
    )
    warnings = "\n".join(read(path).warnings)
    assert "Events.Jobs: events of type SQS are not emulated" in warnings
    assert "Table (AWS::DynamoDB::Table)" in warnings


def test_a_runtime_newer_than_this_interpreter_runs_with_a_warning(tmp_path):
    newer = f"python3.{sys.version_info.minor + 1}"
    path = one_function(tmp_path, f"Runtime: {newer}\n")
    (warning,) = read(path).warnings
    assert f"declared {newer}, runs here on python3.{sys.version_info.minor}" in warning


def test_a_parameter_without_default_is_named_when_a_value_needs_it(tmp_path):
    path = template(
        tmp_path,
        HEADER
        + """\
Parameters:
  Secret: {Type: String}
Resources:
  Orders:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: src
      Handler: app.handler
      Runtime: python3.11
      Environment: {Variables: {SECRET: !Ref Secret}}
""",
    )
    with pytest.raises(TemplateError, match="parameter Secret has no Default"):
        read(path)
    assert read(path, parameters={"Secret": "s"}).function("Orders").environment == {"SECRET": "s"}


def test_an_imported_value_comes_from_the_exports_given_and_is_named_when_missing(tmp_path):
    path = template(
        tmp_path,
        HEADER
        + """\
Resources:
  Orders:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: src
      Handler: app.handler
      Runtime: python3.11
      Environment:
        Variables:
          TABLE: !ImportValue shared-orders-table
          BUS: {"Fn::ImportValue": !Sub "${AWS::StackName}-bus"}
""",
    )
    with pytest.raises(TemplateError, match="the export 'shared-orders-table' has no local value"):
        read(path)
    exports = {"shared-orders-table": "orders", "local-bus": "bus-1"}
    environment = read(path, exports=exports).function("Orders").environment
    assert environment == {"TABLE": "orders", "BUS": "bus-1"}


def test_conditions_drop_resources_and_pick_values(tmp_path):
    path = template(
        tmp_path,
        """\
Parameters:
  Env: {Type: String, Default: dev, AllowedValues: [dev, prod]}
Conditions:
  IsProd: !Equals [!Ref Env, prod]
  IsDev: !Not [{Condition: IsProd}]
Resources:
  Only:
    Type: AWS::Lambda::Function
    Condition: IsProd
    Properties: {Code: src, Handler: a.b, Runtime: python3.11}
  Always:
    Type: AWS::Lambda::Function
    Properties:
      Code: src
      Handler: a.b
      Runtime: python3.11
      Timeout: !If [IsDev, 5, 60]
""",
    )
    project = read(path)
    assert list(project.functions) == ["Always"]
    assert project.function("Always").timeout == 5
    assert list(read(path, parameters={"Env": "prod"}).functions) == ["Only", "Always"]
    with pytest.raises(TemplateError, match="not among AllowedValues"):
        read(path, parameters={"Env": "staging"})


def test_inline_code_is_written_where_lambda_writes_it(tmp_path):
    path = template(
        tmp_path,
        """\
Resources:
  Inline:
    Type: AWS::Lambda::Function
    Properties:
      Runtime: python3.11
      Handler: index.handler
      Code:
        ZipFile: |
          def handler(event, context):
              return event
""",
    )
    function = read(path, cache_dir=tmp_path / "cache").function("Inline")
    assert "def handler" in (function.code_dir / "index.py").read_text()


def test_yaml_errors_name_the_file_and_line(tmp_path):
    path = template(tmp_path, "Resources:\n  A: [1,\n")
    with pytest.raises(TemplateError, match=r"template.yaml: not valid YAML at line 3"):
        read(path)


def test_the_credit_projects_own_template_reads_every_function():
    project = read(Path(__file__).resolve().parents[2])
    assert set(project.functions) == {"AgeRule", "ValueRule", "CreditApi"}
    assert {s.queue: s.function for s in project.mq_sources} == {
        "rule.age": "AgeRule",
        "rule.value": "ValueRule",
    }
    assert {(r.path, r.method) for r in project.routes} == {("/", "ANY"), ("/{proxy+}", "ANY")}
    assert project.warnings == ()
