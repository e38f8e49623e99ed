"""SAM templates expanded to CloudFormation by AWS's own translator (aws-sam-translator).

The translator is what SAM CLI and CloudFormation's `AWS::Serverless` transform run, so Globals,
events and defaults come out exactly as they deploy. It only takes code in S3, so each local
`CodeUri`/`ContentUri` is swapped for a placeholder S3 location before translating and mapped
back afterwards (as cfn-lint and SAM CLI do). What the translator turns into API Gateway
definitions is read beforehand from the SAM events themselves: the routes each function serves.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass, field
from typing import Any

from declarations.errors import TemplateError
from declarations.loader import Document
from declarations.model import Route

LOGGER = logging.getLogger(__name__)
SAM_TRANSFORM = "AWS::Serverless-2016-10-31"
PLACEHOLDER_BUCKET = "local-runtime-code"
SERVERLESS_FUNCTION = "AWS::Serverless::Function"
SERVERLESS_LAYER = "AWS::Serverless::LayerVersion"
EMULATED_EVENTS = frozenset({"MQ", "Schedule", "Api", "HttpApi"})


@dataclass
class Expanded:
    """The CloudFormation a SAM template becomes, and what the SAM form alone tells."""

    body: dict[str, Any]
    local_code: dict[str, str] = field(default_factory=dict)  # placeholder key -> local path
    routes: list[Route] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def is_sam(body: dict[str, Any]) -> bool:
    transform = body.get("Transform", [])
    transforms = transform if isinstance(transform, list) else [transform]
    return SAM_TRANSFORM in transforms


def expand(document: Document, region: str, parameters: dict[str, Any]) -> Expanded:
    """CloudFormation for the document: translated when it is SAM, as it is otherwise."""
    body = copy.deepcopy(document.body)
    if not is_sam(body):
        return Expanded(body)
    expanded = Expanded(body)
    for logical_id, resource in _resources(body):
        if resource.get("Type") == SERVERLESS_FUNCTION:
            _read_events(document, logical_id, resource, expanded)
    _swap_local_code(body, expanded)
    expanded.body = _translate(document, body, region, parameters)
    return expanded


def _resources(body: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    resources = body.get("Resources", {})
    return [(k, v) for k, v in resources.items() if isinstance(v, dict)]


def _read_events(
    document: Document, logical_id: str, resource: dict[str, Any], expanded: Expanded
) -> None:
    properties = resource.get("Properties", {})
    events = properties.get("Events", {}) if isinstance(properties, dict) else {}
    if not isinstance(events, dict):
        return
    for event_id, event in events.items():
        kind = event.get("Type") if isinstance(event, dict) else None
        if kind not in EMULATED_EVENTS:
            expanded.warnings.append(
                f"{document.where(logical_id, f'Events.{event_id}')}: events of type {kind} "
                "are not emulated locally; the function runs on its other triggers"
            )
            continue
        if kind in ("Api", "HttpApi"):
            props = event.get("Properties", {}) or {}
            path, method = props.get("Path", "/{proxy+}"), props.get("Method", "ANY")
            if not isinstance(path, str) or not isinstance(method, str):
                raise TemplateError(
                    document.where(logical_id, f"Events.{event_id}.Properties"),
                    "Path and Method must be plain strings to be served locally",
                )
            api_kind = "rest" if kind == "Api" else "http"
            expanded.routes.append(Route(logical_id, path, method.upper(), api_kind))


def _swap_local_code(body: dict[str, Any], expanded: Expanded) -> None:
    """Replace local code folders by placeholder S3 locations the translator accepts."""

    def swap(holder: dict[str, Any], key: str, name: str) -> None:
        value = holder.get(key)
        if isinstance(value, str) and "://" not in value:
            expanded.local_code[name] = value
            holder[key] = f"s3://{PLACEHOLDER_BUCKET}/{name}"

    for logical_id, resource in _resources(body):
        properties = resource.get("Properties")
        if not isinstance(properties, dict):
            continue
        if resource.get("Type") == SERVERLESS_FUNCTION:
            swap(properties, "CodeUri", logical_id)
        elif resource.get("Type") == SERVERLESS_LAYER:
            swap(properties, "ContentUri", logical_id)
    function_globals = body.get("Globals", {}).get("Function", {})
    if isinstance(function_globals, dict):
        swap(function_globals, "CodeUri", "Globals.Function")


def _translate(
    document: Document, body: dict[str, Any], region: str, parameters: dict[str, Any]
) -> dict[str, Any]:
    # Imported here: the translator (with pydantic) costs about a second to import, and a
    # plain CloudFormation template never needs it.
    import boto3
    from samtranslator.model.exceptions import InvalidDocumentException
    from samtranslator.parser.parser import Parser
    from samtranslator.translator.translator import Translator

    logging.getLogger("samtranslator").setLevel(logging.ERROR)
    session = boto3.session.Session(region_name=region)
    translator = Translator({}, Parser(), boto_session=session)
    try:
        translated: dict[str, Any] = translator.translate(
            body, parameter_values=dict(parameters), passthrough_metadata=True
        )
    except InvalidDocumentException as exc:
        causes = "; ".join(str(getattr(cause, "message", cause)) for cause in exc.causes)
        raise TemplateError(str(document.path), f"SAM refuses this template: {causes}") from exc
    return translated


def local_code(expanded: Expanded, code: object) -> str | None:
    """The local folder behind a translated function's or layer's code, if it has one."""
    if isinstance(code, dict) and code.get("S3Bucket") == PLACEHOLDER_BUCKET:
        return expanded.local_code.get(str(code.get("S3Key")))
    if isinstance(code, str) and "://" not in code:
        return code
    return None
