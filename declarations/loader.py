"""Reading a template file, short-form intrinsics included, with the fragments it includes.

A project may keep one template, or a root template plus one fragment per function folder
(so adding a function stays one folder). The root names its fragments in its metadata:

    Metadata:
      LocalRuntime:
        Include: [functions/*/template.yaml]

Each fragment holds `Resources` (and may hold `Parameters`, `Conditions`, `Mappings`,
`Outputs`); they are merged into the root, a logical id declared twice is refused, and the
local paths a fragment gives (`CodeUri`, `ContentUri`, a string `Code`) are relative to the
fragment's own folder. The merged document is plain CloudFormation: what deploy ships.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from cfn_flip import load_json, load_yaml

from declarations.errors import TemplateError

TEMPLATE_NAMES = ("template.yaml", "template.yml", "template.json")
METADATA_KEY = "LocalRuntime"
FRAGMENT_SECTIONS = ("Resources", "Parameters", "Conditions", "Mappings", "Outputs")
# Where a resource type keeps its local code or content folder.
LOCAL_PATH_PROPERTIES = {
    "AWS::Serverless::Function": "CodeUri",
    "AWS::Serverless::LayerVersion": "ContentUri",
    "AWS::Lambda::Function": "Code",
    "AWS::Lambda::LayerVersion": "Content",
}


@dataclass
class Document:
    """A merged template and, for each resource, the file that declares it."""

    path: Path
    body: dict[str, Any]
    origins: dict[str, Path] = field(default_factory=dict)

    def where(self, logical_id: str, prop: str = "") -> str:
        """`file: LogicalId: Properties.X`, to name a place in an error or a warning."""
        origin = self.origins.get(logical_id, self.path)
        suffix = f": {prop}" if prop else ""
        return f"{origin}: {logical_id}{suffix}"


def find_template(path: Path | str) -> Path:
    """The template file itself: `path`, or the template.yaml/yml/json inside a folder."""
    path = Path(path)
    if path.is_dir():
        for name in TEMPLATE_NAMES:
            if (path / name).is_file():
                return path / name
        raise TemplateError(str(path), f"no {' or '.join(TEMPLATE_NAMES)} in this folder")
    if not path.is_file():
        raise TemplateError(str(path), "no such template file")
    return path


def load(path: Path | str) -> Document:
    """Read a template and merge the fragments it includes; local paths become absolute."""
    template = find_template(path).resolve()
    body = read_file(template)
    document = Document(template, body)
    for logical_id in _section(body, "Resources", template):
        document.origins[logical_id] = template
    _absolute_paths(body, template.parent)
    for fragment in _fragments(body, template):
        _merge(document, fragment)
    return document


def read_file(path: Path) -> dict[str, Any]:
    """One YAML or JSON template as plain dicts and lists, intrinsics in their long form."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise TemplateError(str(path), f"cannot be read: {exc}") from exc
    try:
        loaded = load_json(text) if path.suffix == ".json" else load_yaml(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise TemplateError(str(path), f"not valid YAML{at}: {exc.problem}") from exc
    except (yaml.YAMLError, ValueError) as exc:
        raise TemplateError(str(path), f"not valid {path.suffix[1:].upper()}: {exc}") from exc
    if not isinstance(loaded, dict):
        raise TemplateError(str(path), "a template is a mapping (Resources, Parameters, ...)")
    # YAML dates (AWSTemplateFormatVersion: 2010-09-09) and ordered dicts become plain JSON.
    plain: dict[str, Any] = json.loads(json.dumps(loaded, default=str))
    return plain


def _fragments(body: dict[str, Any], template: Path) -> list[Path]:
    metadata = body.get("Metadata", {})
    options = metadata.get(METADATA_KEY, {}) if isinstance(metadata, dict) else {}
    if not isinstance(options, dict):
        raise TemplateError(f"{template}: Metadata.{METADATA_KEY}", "must be a mapping")
    unknown = sorted(set(options) - {"Include"})
    if unknown:
        raise TemplateError(
            f"{template}: Metadata.{METADATA_KEY}.{unknown[0]}", "unknown key (known: Include)"
        )
    patterns = options.get("Include", [])
    if isinstance(patterns, str):
        patterns = [patterns]
    if not isinstance(patterns, list) or not all(isinstance(p, str) for p in patterns):
        raise TemplateError(
            f"{template}: Metadata.{METADATA_KEY}.Include", "must be a list of glob patterns"
        )
    found: list[Path] = []
    for pattern in patterns:
        matches = sorted(template.parent.glob(pattern))
        if not matches:
            raise TemplateError(
                f"{template}: Metadata.{METADATA_KEY}.Include", f"{pattern!r} matches no file"
            )
        found += [match.resolve() for match in matches if match.resolve() != template]
    return found


def _merge(document: Document, fragment: Path) -> None:
    body = read_file(fragment)
    unknown = sorted(set(body) - set(FRAGMENT_SECTIONS) - {"AWSTemplateFormatVersion"})
    if unknown:
        known = ", ".join(FRAGMENT_SECTIONS)
        raise TemplateError(str(fragment), f"{unknown[0]} cannot be in a fragment (only {known})")
    _absolute_paths(body, fragment.parent)
    for section in FRAGMENT_SECTIONS:
        into = document.body.setdefault(section, {})
        for key, value in _section(body, section, fragment).items():
            if key in into:
                first = document.origins.get(key, document.path) if section == "Resources" else ""
                also = f" (also in {first})" if first else ""
                raise TemplateError(f"{fragment}: {section}.{key}", f"declared twice{also}")
            into[key] = value
            if section == "Resources":
                document.origins[key] = fragment


def _section(body: dict[str, Any], section: str, path: Path) -> dict[str, Any]:
    value = body.get(section, {})
    if not isinstance(value, dict):
        raise TemplateError(f"{path}: {section}", "must be a mapping")
    return value


def _absolute_paths(body: dict[str, Any], base: Path) -> None:
    """Turn the local code and content paths of a file's resources into absolute ones, so
    the merged template no longer depends on which file declared what."""
    for resource in _section(body, "Resources", base).values():
        if not isinstance(resource, dict):
            continue
        prop = LOCAL_PATH_PROPERTIES.get(str(resource.get("Type")))
        properties = resource.get("Properties")
        if prop is None or not isinstance(properties, dict):
            continue
        value = properties.get(prop)
        if isinstance(value, str) and _is_local(value):
            properties[prop] = str((base / value).resolve())
    globals_ = body.get("Globals", {})
    function_globals = globals_.get("Function", {}) if isinstance(globals_, dict) else {}
    if isinstance(function_globals, dict):
        value = function_globals.get("CodeUri")
        if isinstance(value, str) and _is_local(value):
            function_globals["CodeUri"] = str((base / value).resolve())


def _is_local(uri: str) -> bool:
    return "://" not in uri
