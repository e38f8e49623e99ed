"""Function zips: the function folder at the root, plus the shared package and its dependencies.

Zips are byte-for-byte reproducible (sorted entries, fixed timestamps and modes), so their
SHA-256 matches Lambda's CodeSha256 when nothing changed and a second deploy uploads nothing.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import credit
from infra.errors import PackageError
from local_runtime.declaration import DECLARATION_FILE, FunctionSpec

LOGGER = logging.getLogger(__name__)

SHARED_PACKAGE = Path(credit.__file__).resolve().parent
# The shared package's runtime dependencies (pyproject's list without chalice and boto3:
# boto3 is in every Lambda Python runtime, chalice is only the API's and Chalice packages it).
LAYER_REQUIREMENTS: tuple[str, ...] = ("pika>=1.3,<2", "redis[hiredis]>=5.3,<9", "pymysql>=1.1,<2")
LAMBDA_PLATFORM = "manylinux2014_x86_64"
# function.json is deploy metadata applied as Lambda configuration; nothing reads it at run time.
EXCLUDED_NAMES = frozenset({DECLARATION_FILE, "__pycache__", ".pytest_cache", "bin", "tests"})
EXCLUDED_SUFFIXES = (".pyc", ".pyo")
FIXED_TIMESTAMP = (1980, 1, 1, 0, 0, 0)
FILE_MODE = 0o644 << 16


class Vendor(Protocol):
    """Installs requirements into a folder, for the given Lambda runtime (e.g. python3.11)."""

    def __call__(self, requirements: Sequence[str], target: Path, runtime: str) -> None: ...


def skip_dependencies(requirements: Sequence[str], target: Path, runtime: str) -> None:
    """A Vendor that installs nothing: for tests and offline builds (the zip lacks pika etc.)."""
    LOGGER.info("not vendoring %s for %s", ", ".join(requirements), runtime)


Runner = Callable[[list[str]], "subprocess.CompletedProcess[str]"]


def _run(command: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, check=False)


@dataclass(frozen=True)
class PipVendor:
    """Vendors wheels for Lambda's platform with pip; falls back to a plain install."""

    python: str = sys.executable
    platform: str = LAMBDA_PLATFORM
    run: Runner = _run

    def command(
        self, requirements: Sequence[str], target: Path, runtime: str, for_lambda: bool = True
    ) -> list[str]:
        command = [self.python, "-m", "pip", "install", "--quiet", "--no-compile"]
        command += ["--target", str(target), "--upgrade"]
        if for_lambda:
            version = runtime.removeprefix("python")
            command += ["--platform", self.platform, "--only-binary=:all:"]
            command += ["--python-version", version, "--implementation", "cp"]
        return [*command, *requirements]

    def __call__(self, requirements: Sequence[str], target: Path, runtime: str) -> None:
        if not requirements:
            return
        result = self.run(self.command(requirements, target, runtime))
        if result.returncode != 0:
            LOGGER.warning("pip for %s failed, retrying plainly: %s", runtime, result.stderr)
            result = self.run(self.command(requirements, target, runtime, for_lambda=False))
        if result.returncode != 0:
            raise PackageError(f"pip could not vendor {', '.join(requirements)}: {result.stderr}")


@dataclass(frozen=True)
class Artifact:
    """One built zip and the numbers deploy compares and checks."""

    function: str
    path: Path
    code_sha256: str  # base64 of the SHA-256 digest, as Lambda reports CodeSha256
    size: int
    unzipped_size: int

    def read(self) -> bytes:
        return self.path.read_bytes()


def build_all(
    specs: Sequence[FunctionSpec], build_dir: Path, vendor: Vendor = skip_dependencies
) -> dict[str, Artifact]:
    """Build every function's zip; dependencies are vendored once per runtime."""
    build_dir.mkdir(parents=True, exist_ok=True)
    deps: dict[str, Path] = {}
    for runtime in sorted({spec.runtime for spec in specs}):
        deps[runtime] = vendor_layer(build_dir / f"layer-{runtime}", runtime, vendor)
    return {
        spec.name: build_zip(spec, build_dir / f"{spec.name}.zip", deps[spec.runtime])
        for spec in specs
    }


def vendor_layer(target: Path, runtime: str, vendor: Vendor) -> Path:
    """A fresh folder holding the shared package's dependencies, like a Lambda layer's python/."""
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    vendor(LAYER_REQUIREMENTS, target, runtime)
    return target


def build_zip(spec: FunctionSpec, destination: Path, dependencies: Path | None = None) -> Artifact:
    """Write the function's zip: its folder at the root, then credit/, then the dependencies."""
    entries = dict(zip_entries(dependencies)) if dependencies else {}
    entries.update(zip_entries(SHARED_PACKAGE, prefix=SHARED_PACKAGE.name))
    entries.update(zip_entries(spec.directory))
    destination.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(destination, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in sorted(entries):
            info = zipfile.ZipInfo(name, date_time=FIXED_TIMESTAMP)
            info.external_attr = FILE_MODE
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, entries[name].read_bytes())
    data = destination.read_bytes()
    digest = base64.b64encode(hashlib.sha256(data).digest()).decode()
    unzipped = sum(path.stat().st_size for path in entries.values())
    LOGGER.info("built %s: %d bytes, %d files", destination, len(data), len(entries))
    return Artifact(spec.name, destination, digest, len(data), unzipped)


def zip_entries(root: Path, prefix: str = "") -> Iterator[tuple[str, Path]]:
    """(name in the zip, file) for every file under root that belongs in a deployment package."""
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root)
        if not path.is_file() or _excluded(relative):
            continue
        name = relative.as_posix()
        yield (f"{prefix}/{name}" if prefix else name), path


def _excluded(relative: Path) -> bool:
    hidden = any(part.startswith(".") for part in relative.parts)
    return (
        hidden
        or bool(EXCLUDED_NAMES.intersection(relative.parts))
        or (relative.suffix in EXCLUDED_SUFFIXES)
    )
