"""The project installed the way the image installs it: a wheel, in a virtualenv of its own."""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
import tomllib
from dataclasses import dataclass
from pathlib import Path

from tests.compose.composefile import ROOT

UNREACHABLE = {  # port 9 (discard): refused at once on 127.0.0.1
    "AMQP_URL": "amqp://nobody:nothing@127.0.0.1:9/%2F",
    "REDIS_URL": "redis://127.0.0.1:9/0",
    "MYSQL_URL": "mysql://nobody@127.0.0.1:9/nothing",
}


@dataclass(frozen=True)
class Installed:
    """A throwaway virtualenv holding the project's wheel (and no link to this checkout)."""

    venv: Path

    @property
    def bin(self) -> Path:
        return self.venv / "bin"

    def run(self, *argv: str, cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """One of the venv's programs, in cwd, with nothing of this checkout on its path.

        The service URLs name a port where nothing listens: whatever the program does, it
        never reaches the machine's shared servers.
        """
        return subprocess.run(
            [str(self.bin / argv[0]), *argv[1:]],
            cwd=cwd,
            env={
                "PATH": f"{self.bin}:/usr/bin:/bin",
                "HOME": str(cwd),
                "LANG": "C.UTF-8",
                **UNREACHABLE,
            },
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )


def package_sources(root: Path = ROOT) -> list[Path]:
    """pyproject.toml and the top-level packages its setuptools configuration includes."""
    project = tomllib.loads((root / "pyproject.toml").read_text())
    patterns = project["tool"]["setuptools"]["packages"]["find"]["include"]
    folders = {
        path
        for pattern in patterns
        for path in root.glob(pattern.split(".")[0])
        if (path / "__init__.py").is_file()
    }
    return [root / "pyproject.toml", *sorted(folders)]


def install_wheel(workdir: Path) -> Installed:
    """Build the wheel from a copy of the sources and install it, not editable, into a new venv.

    The venv reaches the dependencies through a .pth line naming this interpreter's
    site-packages: a path entry, so that folder's own .pth files (this checkout's editable
    install among them) are not processed and `credit` and `local_runtime` come from the wheel.
    """
    source = workdir / "src"
    source.mkdir()
    for path in package_sources():
        if path.is_dir():
            shutil.copytree(path, source / path.name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(path, source / path.name)
    wheels = workdir / "wheels"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--quiet"]
    _run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "--wheel-dir", str(wheels), "."],
        source,
    )
    venv = workdir / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], workdir)
    python = venv / "bin" / "python"
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    Path(site, "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    [wheel] = wheels.glob("*.whl")
    _run([*pip, "--python", str(python), "install", "--no-deps", "--no-index", str(wheel)], workdir)
    return Installed(venv)


def _run(argv: list[str], cwd: Path) -> None:
    result = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=300, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed:\n{result.stdout}\n{result.stderr}")
