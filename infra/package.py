"""Function zips: the code folder at the root, plus the shared package and locked dependencies.

Dependencies come from infra/requirements-lambda.txt (hashes, one version per package),
installed for Lambda's platform with --require-hashes, so one commit always ships the same
bytes. Zips are byte-for-byte reproducible (sorted entries, fixed timestamps and modes): the
same input gives the same SHA-256, which names the object in S3, so an unchanged function
uploads nothing.
"""

from __future__ import annotations

import hashlib
import io
import logging
import re
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import credit
from infra.errors import PackageError

LOGGER = logging.getLogger(__name__)

SHARED_PACKAGE = Path(credit.__file__).resolve().parent
LOCK_FILE = Path(__file__).resolve().parent / "requirements-lambda.txt"
LAMBDA_PLATFORM = "manylinux2014_x86_64"
EXCLUDED_NAMES = frozenset({"function.json", "template.yaml", "__pycache__", "tests"})
EXCLUDED_SUFFIXES = (".pyc", ".pyo")
FIXED_TIMESTAMP = (1980, 1, 1, 0, 0, 0)
FILE_MODE = 0o100644 << 16  # a regular file, rw-r--r--
_LOCK_PYTHON = re.compile(r"--python-version (\d+\.\d+)")

Runner = Callable[[list[str]], "subprocess.CompletedProcess[str]"]


class Vendor(Protocol):
    """Installs the locked dependencies into a folder, for a Lambda runtime (python3.11)."""

    def __call__(self, target: Path, runtime: str) -> None: ...


def _run(command: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, check=False)


def lock_python(lock: Path = LOCK_FILE) -> str:
    """The Python version the lock file was resolved for (from the command at its top)."""
    found = _LOCK_PYTHON.search(lock.read_text())
    if not found:
        raise PackageError(f"{lock}: its header does not say --python-version")
    return found.group(1)


@dataclass(frozen=True)
class LockedVendor:
    """pip install -r the lock file --require-hashes, for Lambda's platform and Python.

    There is no fallback to a plain install: a wheel missing for Lambda's platform is an
    error, since a host-built one could differ from deploy to deploy, or not load on Lambda.
    """

    lock: Path = LOCK_FILE
    python: str = sys.executable
    platform: str = LAMBDA_PLATFORM
    run: Runner = _run

    def command(self, target: Path, runtime: str) -> list[str]:
        version = runtime.removeprefix("python")
        return [
            self.python, "-m", "pip", "install", "--quiet", "--no-compile", "--no-deps",
            "--disable-pip-version-check", "--require-hashes", "-r", str(self.lock),
            "--target", str(target), "--platform", self.platform, "--only-binary=:all:",
            "--python-version", version, "--implementation", "cp",
        ]  # fmt: skip

    def __call__(self, target: Path, runtime: str) -> None:
        expected = lock_python(self.lock)
        if runtime != f"python{expected}":
            raise PackageError(
                f"{self.lock} is resolved for python{expected}, a function declares {runtime}: "
                "regenerate the lock with the command at its top, for that version"
            )
        result = self.run(self.command(target, runtime))
        if result.returncode != 0:
            raise PackageError(f"pip could not install {self.lock}: {result.stderr.strip()}")


def no_dependencies(target: Path, runtime: str) -> None:
    """A Vendor that installs nothing: for tests of the zip layout and offline builds."""
    LOGGER.info("not installing the locked dependencies for %s", runtime)


@dataclass(frozen=True)
class Artifact:
    """One built zip: its bytes' SHA-256 names it in S3."""

    name: str
    path: Path
    sha256: str  # hex digest of the zip
    size: int
    unzipped_size: int


def dependencies(build_dir: Path, runtime: str, vendor: Vendor) -> Path:
    """The locked dependencies installed once per lock and runtime, reused while unchanged."""
    key = hashlib.sha256(LOCK_FILE.read_bytes() + runtime.encode()).hexdigest()[:16]
    target = build_dir / f"deps-{runtime}-{key}"
    if (target / ".complete").is_file():
        return target
    partial = target.with_suffix(".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    vendor(partial, runtime)
    (partial / ".complete").touch()
    shutil.rmtree(target, ignore_errors=True)
    partial.rename(target)
    return target


def build_zip(name: str, code_dir: Path, destination: Path, deps: Path | None) -> Artifact:
    """The function's zip: its folder at the root (Lambda's task root), credit/, dependencies."""
    entries = dict(folder_entries(deps)) if deps else {}
    entries.update(folder_entries(SHARED_PACKAGE, prefix=SHARED_PACKAGE.name))
    entries.update(folder_entries(code_dir))
    contents = {zip_name: path.read_bytes() for zip_name, path in entries.items()}
    return write_zip(name, contents, destination)


def normalised(name: str, source: Path, destination: Path) -> Artifact:
    """Another tool's zip (Chalice's deployment.zip) rewritten reproducibly, same contents."""
    with zipfile.ZipFile(source) as archive:
        contents = {
            info.filename: archive.read(info)
            for info in archive.infolist()
            if not info.is_dir() and not _excluded(Path(info.filename))
        }
    return write_zip(name, contents, destination)


def write_zip(name: str, contents: Mapping[str, bytes], destination: Path) -> Artifact:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for entry in sorted(contents):
            info = zipfile.ZipInfo(entry, date_time=FIXED_TIMESTAMP)
            info.external_attr = FILE_MODE
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3  # Unix, whatever the building host
            archive.writestr(info, contents[entry])
    data = buffer.getvalue()
    destination.parent.mkdir(parents=True, exist_ok=True)
    destination.write_bytes(data)
    unzipped = sum(len(body) for body in contents.values())
    LOGGER.info("built %s: %d bytes, %d files", destination, len(data), len(contents))
    return Artifact(name, destination, hashlib.sha256(data).hexdigest(), len(data), unzipped)


def folder_entries(root: Path, prefix: str = "") -> Iterator[tuple[str, Path]]:
    """(name in the zip, file) for every file under root that belongs in a package."""
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
        or relative.suffix in EXCLUDED_SUFFIXES
    )
