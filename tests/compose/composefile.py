"""The compose file as docker compose resolves it, and the final stage of the Dockerfile."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
ENV_FILE = ROOT / ".env"
INSTALL_HINT = "Debian/Ubuntu: apt-get install docker-compose"


class ComposeUnavailable(Exception):
    """Neither `docker compose` nor `docker-compose` runs on this machine."""


def compose_command() -> list[str]:
    """The compose CLI to use: Docker's plugin when it runs, else Debian's docker-compose."""
    candidates = [["docker", "compose"], ["docker-compose"]]
    for command in candidates:
        if shutil.which(command[0]) is None:
            continue
        probe = subprocess.run(
            [*command, "version"], capture_output=True, text=True, timeout=60, check=False
        )
        if probe.returncode == 0:
            return command
    raise ComposeUnavailable(
        "neither `docker compose` nor `docker-compose` is installed, so the compose file is "
        f"neither validated nor booted here ({INSTALL_HINT})"
    )


def env_file_values(path: Path = ENV_FILE) -> dict[str, str]:
    """The values .env sets (plain NAME=value lines, which is all the file may hold)."""
    values: dict[str, str] = {}
    lines = path.read_text().splitlines() if path.is_file() else []
    for line in (line.strip() for line in lines):
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            values[name.strip()] = value.strip()
    return values


def clean_environment(**overrides: str) -> dict[str, str]:
    """A shell that exports nothing but PATH, HOME and Docker's own settings, plus the overrides.

    docker compose lets an exported variable win over .env: from such a shell the committed
    defaults are the ones under test, whatever the developer's (or the test suite's) exports.
    """
    kept = {"PATH", "HOME", "LANG", "LC_ALL", "TMPDIR"}
    env = {k: v for k, v in os.environ.items() if k in kept or k.startswith("DOCKER_")}
    env.update(overrides)
    return env


def resolved(environment: dict[str, str] | None = None) -> dict[str, Any]:
    """`docker compose config`: the file validated, .env interpolated, paths made absolute."""
    result = subprocess.run(
        [*compose_command(), "--file", str(COMPOSE_FILE), "config"],
        cwd=ROOT,
        env=clean_environment() if environment is None else environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if result.returncode != 0:
        raise AssertionError(f"`docker compose config` refused the file:\n{result.stderr}")
    config: dict[str, Any] = yaml.safe_load(result.stdout)
    return config


@dataclass(frozen=True)
class Port:
    """One published port: host address and port, and the container port behind it."""

    host_ip: str
    published: int
    target: int


@dataclass(frozen=True)
class Service:
    """One service of the resolved file, read the same way from either compose CLI's output."""

    name: str
    raw: dict[str, Any]

    @property
    def image(self) -> str:
        return str(self.raw.get("image", ""))

    @property
    def environment(self) -> dict[str, str]:
        raw = self.raw.get("environment") or {}
        if isinstance(raw, list):
            return dict(item.split("=", 1) for item in raw)
        return {str(k): "" if v is None else str(v) for k, v in raw.items()}

    @property
    def command(self) -> list[str] | None:
        raw = self.raw.get("command")
        if raw is None:
            return None
        return shlex.split(raw) if isinstance(raw, str) else [str(arg) for arg in raw]

    @property
    def ports(self) -> list[Port]:
        return [_port(entry) for entry in self.raw.get("ports") or []]

    @property
    def volumes(self) -> dict[str, Path]:
        """Container path -> the host file mounted there."""
        mounts = {}
        for entry in self.raw.get("volumes") or []:
            if isinstance(entry, str):
                source, target = entry.split(":")[:2]
            else:
                source, target = entry["source"], entry["target"]
            mounts[target] = Path(source)
        return mounts

    @property
    def healthcheck(self) -> dict[str, Any] | None:
        check = self.raw.get("healthcheck")
        return None if check is None or check.get("disable") else dict(check)

    @property
    def depends_on(self) -> dict[str, str]:
        """Service -> the condition this one waits for."""
        raw = self.raw.get("depends_on") or {}
        if isinstance(raw, list):
            return dict.fromkeys(raw, "service_started")
        return {name: spec.get("condition", "service_started") for name, spec in raw.items()}


def _port(entry: str | dict[str, Any]) -> Port:
    if isinstance(entry, dict):  # docker compose v2: the long syntax
        host_ip = entry.get("host_ip", "0.0.0.0")  # noqa: S104 - compose's default, under test
        return Port(host_ip, int(entry["published"]), int(entry["target"]))
    spec = entry.split("/")[0]  # docker-compose v1: [ip:]published:target[/protocol]
    parts = spec.rsplit(":", 2)
    if len(parts) == 2:
        parts = ["0.0.0.0", *parts]  # noqa: S104
    return Port(parts[0], int(parts[1]), int(parts[2]))


def services(config: dict[str, Any]) -> dict[str, Service]:
    return {name: Service(name, raw) for name, raw in config["services"].items()}


def map_url(url: str, hosts: dict[str, int]) -> str:
    """The URL with a compose service's host name replaced by 127.0.0.1 and its private port.

    A URL naming anything else would leave the private instances for whatever answers there
    (on a development machine, the shared servers): it is refused.
    """
    parts = urlsplit(url)
    if "://" not in url:
        return url
    if parts.hostname not in hosts:
        raise AssertionError(f"{url} names {parts.hostname}, which is not a compose service")
    userinfo = parts.netloc.rpartition("@")[0]
    netloc = f"{userinfo + '@' if userinfo else ''}127.0.0.1:{hosts[parts.hostname]}"
    return urlunsplit(parts._replace(netloc=netloc))


@dataclass
class Image:
    """What the final stage of the Dockerfile says about the container it makes."""

    workdir: str = "/"
    env: dict[str, str] = field(default_factory=dict)
    copies: list[tuple[str, str]] = field(default_factory=list)  # (context path, image path)
    user: str | None = None
    cmd: list[str] | None = None
    healthcheck: list[str] | None = None
    steps: list[tuple[str, str]] = field(default_factory=list)  # (instruction, arguments)


def final_stage(path: Path = DOCKERFILE) -> Image:
    """Read the last FROM stage: WORKDIR, ENV, COPY from the context, USER, CMD, HEALTHCHECK."""
    image = Image()
    for instruction, args in _instructions(path.read_text()):
        if instruction == "FROM":
            image = Image()
            continue
        image.steps.append((instruction, args))
        if instruction == "WORKDIR":
            image.workdir = str(Path(image.workdir, args))
        elif instruction == "ENV":
            image.env.update(item.partition("=")[::2] for item in shlex.split(args))
        elif instruction == "COPY":
            words = shlex.split(args)
            if any(word.startswith("--from") for word in words):
                continue
            *sources, destination = [word for word in words if not word.startswith("--")]
            folder = destination.endswith("/") or destination in (".", "..")
            target = Path(image.workdir, destination)
            image.copies += [
                (source, str(target / Path(source).name if folder else target))
                for source in sources
            ]
        elif instruction == "USER":
            image.user = args.strip()
        elif instruction == "CMD":
            image.cmd = json.loads(args)
        elif instruction == "HEALTHCHECK":
            words = args.split("CMD", 1)
            image.healthcheck = json.loads(words[1]) if len(words) == 2 else None
    return image


def _instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    steps: list[tuple[str, str]] = []
    pending = ""
    for line in text.splitlines():
        if line.strip().startswith("#") or not line.strip():
            continue
        pending += line.rstrip()
        if pending.endswith("\\"):
            pending = pending[:-1] + " "
            continue
        instruction, _, args = pending.strip().partition(" ")
        steps.append((instruction.upper(), args.strip()))
        pending = ""
    return steps
