"""Deploy a stage: build its template and code, preview the change set, execute or discard it."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from infra import api
from infra.config import StageConfig
from infra.errors import DeployError, LimitError, PackageError, Violation
from infra.package import (
    LOCK_FILE,
    Artifact,
    Vendor,
    build_zip,
    dependencies,
    lock_python,
)
from infra.stack import Preview, Stack
from infra.storage import Bucket
from infra.template import (
    SERVERLESS_FUNCTION,
    Declarations,
    Store,
    check_parameters,
    check_rules,
    finish,
)

LOGGER = logging.getLogger(__name__)
# Lambda's limit on a function's code once unzipped (layers included); a deploy-only check.
MAX_UNZIPPED_BYTES = 250 * 1024 * 1024

Report = Callable[[str], None]


@dataclass(frozen=True)
class Built:
    """The stack's template, code in place, and the zip each function runs."""

    template: dict[str, Any]
    artifacts: dict[str, Artifact]


def build(root: Path, config: StageConfig, build_dir: Path, vendor: Vendor, store: Store) -> Built:
    """The stage's template: the declarations merged with Chalice's, each function's code
    built reproducibly and put where `store` says, the AWS-only wiring added."""
    declarations = Declarations.load(root)
    check_parameters(declarations.document, config.parameters())
    check_rules(declarations, config.stage)
    build_dir.mkdir(parents=True, exist_ok=True)
    runtime = f"python{lock_python(LOCK_FILE)}"
    deps = dependencies(build_dir, runtime, vendor)
    template, api_artifact = _merged(declarations, config, build_dir, deps)
    artifacts: dict[str, Artifact] = {}
    for logical_id, properties in _function_properties(template):
        _check_runtime(logical_id, properties, template, runtime)
        code = properties.get("CodeUri")
        if api_artifact is not None and code == api.CHALICE_CODE_URI:
            artifacts[logical_id] = api_artifact
        elif isinstance(code, str) and Path(code).is_dir():
            artifacts[logical_id] = build_zip(
                logical_id, Path(code), build_dir / f"{logical_id}.zip", deps
            )
        else:
            raise PackageError(f"function {logical_id}: CodeUri {code!r} is no local folder")
    _check_sizes(artifacts)
    locations = {logical_id: store(artifact) for logical_id, artifact in artifacts.items()}
    return Built(finish(template, locations, config), artifacts)


def deploy(
    built: Built,
    config: StageConfig,
    stack: Stack,
    bucket: Bucket,
    report: Report,
    dry_run: bool = False,
) -> Preview:
    """Preview the stage's change set; on a dry run delete it, else execute it and wait.

    `built` was built with `bucket.code` as its store, so its code is in the bucket already.
    """
    config.check()
    body = json.dumps(built.template, indent=1, sort_keys=True)
    url = bucket.template(body, config.region)
    report(f"uploaded to s3://{bucket.name}: {len(bucket.uploaded)} new object(s)")
    preview = stack.preview(url, config.parameters(), config.tags)
    report(preview.render())
    if preview.empty or dry_run:
        stack.discard(preview)
        if dry_run and not preview.empty:
            report("dry run: the change set was deleted, nothing was changed")
        return preview
    hazards = preview.hazards()
    if hazards:
        stack.discard(preview)
        raise DeployError("refused, nothing was changed: " + "; ".join(hazards))
    status = stack.execute(preview)
    report(f"{config.stack_name}: {status}")
    return preview


def teardown(stack: Stack, report: Report, dry_run: bool = False) -> str:
    """Delete the stage's stack; production's broker and secrets are retained."""
    status = stack.status()
    if status is None:
        report(f"{stack.name}: no such stack")
        return "absent"
    kept = stack.retained()
    report(f"{stack.name}: {status}; kept when deleted: {', '.join(kept) or 'nothing'}")
    if dry_run:
        report("dry run: nothing was deleted")
        return status
    final = stack.delete()
    report(f"{stack.name}: {final}")
    return final


def _merged(
    declarations: Declarations, config: StageConfig, build_dir: Path, deps: Path
) -> tuple[dict[str, Any], Artifact | None]:
    merge = declarations.merge_template()
    if not declarations.chalice_apps:
        return merge, None
    if len(declarations.chalice_apps) > 1:
        names = ", ".join(sorted(declarations.chalice_apps))
        raise PackageError(f"one Chalice app per stack, the declarations have {names}")
    [app_dir] = declarations.chalice_apps.values()
    packaged = api.package(app_dir, merge, config.stage, build_dir, deps, config.region)
    return packaged.template, packaged.artifact


def _function_properties(template: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [
        (logical_id, resource.setdefault("Properties", {}))
        for logical_id, resource in template["Resources"].items()
        if resource.get("Type") == SERVERLESS_FUNCTION
    ]


def _check_runtime(
    logical_id: str, properties: dict[str, Any], template: dict[str, Any], runtime: str
) -> None:
    """The lock is resolved for one Python: every function must run that one."""
    declared = properties.get("Runtime") or template.get("Globals", {}).get("Function", {}).get(
        "Runtime"
    )
    if declared != runtime:
        raise LimitError(
            [
                Violation(
                    f"function {logical_id}",
                    "Runtime",
                    f"is {declared}, but {LOCK_FILE.name} is resolved for {runtime}",
                )
            ]
        )


def _check_sizes(artifacts: dict[str, Artifact]) -> None:
    violations = [
        Violation(
            f"function {name}",
            "CodeUri",
            f"unzips to {artifact.unzipped_size} bytes, over Lambda's {MAX_UNZIPPED_BYTES}",
        )
        for name, artifact in artifacts.items()
        if artifact.unzipped_size > MAX_UNZIPPED_BYTES
    ]
    if violations:
        raise LimitError(violations)
