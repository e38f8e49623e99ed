"""The API's part of the stack: `chalice package --merge-template`, on a staged copy of the app.

Chalice turns the app into SAM (the API function, its API Gateway, one function per
`@app.schedule`) and deep-merges our template into it, so the stack is one template. The
staged copy carries credit/ and the locked dependencies in vendor/, so Chalice installs
nothing itself; its zip is then rewritten reproducibly like the functions' own.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from infra.errors import PackageError
from infra.package import SHARED_PACKAGE, Artifact, normalised

CHALICE = (sys.executable, "-c", "import sys; from chalice.cli import main; sys.exit(main())")
CHALICE_CONFIG = Path(".chalice") / "config.json"
CHALICE_CODE_URI = "./deployment.zip"  # what chalice package names its zip in the template
STAGING_IGNORE = shutil.ignore_patterns(
    "__pycache__", "*.pyc", "deployments", "venv", "template.yaml", "tests"
)
# Chalice's own role is replaced by one per function (infra.template), but with
# autogen_policy off it still reads a policy file to write it.
PLACEHOLDER_POLICY: dict[str, Any] = {"Version": "2012-10-17", "Statement": []}

Runner = Callable[..., "subprocess.CompletedProcess[str]"]


@dataclass(frozen=True)
class ApiPackage:
    """The merged template Chalice wrote, and the API's reproducible zip."""

    template: dict[str, Any]
    artifact: Artifact


def is_chalice_app(code_dir: Path) -> bool:
    """A function folder Chalice packages: it has .chalice/config.json beside its app.py."""
    return (code_dir / CHALICE_CONFIG).is_file() and (code_dir / "app.py").is_file()


def package(
    app_dir: Path,
    merge_template: dict[str, Any],
    stage: str,
    build_dir: Path,
    deps: Path | None,
    region: str,
    run: Runner = subprocess.run,
) -> ApiPackage:
    """Run `chalice package --merge-template` and return its template and a reproducible zip."""
    build_dir = build_dir.resolve()
    staged = stage_app(app_dir, build_dir / "api-app", deps, stage)
    merge_file = build_dir / "merge-template.json"
    merge_file.write_text(json.dumps(merge_template, indent=1, sort_keys=True))
    out_dir = build_dir / "api-package"
    shutil.rmtree(out_dir, ignore_errors=True)
    command = [
        *CHALICE, "--project-dir", str(staged), "package", "--stage", stage,
        "--merge-template", str(merge_file), str(out_dir),
    ]  # fmt: skip
    environment = {**os.environ, "AWS_DEFAULT_REGION": region}
    result = run(command, capture_output=True, text=True, check=False, env=environment)
    if result.returncode != 0:
        raise PackageError(f"chalice package failed: {result.stdout}{result.stderr}".strip())
    template: dict[str, Any] = json.loads((out_dir / "sam.json").read_text())
    artifact = normalised("api", out_dir / "deployment.zip", build_dir / "api.zip")
    return ApiPackage(template, artifact)


def stage_app(app_dir: Path, target: Path, deps: Path | None, stage: str) -> Path:
    """A copy of the app whose vendor/ holds credit/ and the locked dependencies."""
    config = json.loads((app_dir / CHALICE_CONFIG).read_text())
    if stage not in config.get("stages", {}):
        known = ", ".join(sorted(config.get("stages", {})))
        raise PackageError(f"{app_dir / CHALICE_CONFIG}: no stage {stage!r} (stages: {known})")
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(app_dir, target, ignore=STAGING_IGNORE)
    vendored = target / "vendor"
    if deps is not None:
        shutil.copytree(deps, vendored, ignore=shutil.ignore_patterns(".complete"))
    vendored.mkdir(exist_ok=True)
    shutil.copytree(SHARED_PACKAGE, vendored / SHARED_PACKAGE.name, ignore=STAGING_IGNORE)
    (target / "requirements.txt").write_text("# installed from the lock file into vendor/\n")
    policy = target / ".chalice" / f"policy-{stage}.json"
    policy.write_text(json.dumps(PLACEHOLDER_POLICY))
    return target
