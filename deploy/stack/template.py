"""The stack's template: read infra/stack.yaml and render the files it names into it.

One source of truth: the container definition lives only in ecs/task-def.json (what
`scripts/register-task-def` and the rollout render), the training task's in ecs/train-task-def.json.
A task definition names its file in its Metadata (`ContainerDefinitionsFrom`), with a CloudFormation
value for each of the file's `${PLACEHOLDERS}`; `render()` turns the file's container definitions into
CloudFormation's form (PascalCase keys) and each string with placeholders into `Fn::Sub` over those
values, so the two cannot drift. Likewise a Lambda function's `CodeFrom` names the Python file that
becomes its inline code (`Code.ZipFile`, which CloudFormation deploys as index.py), so the code the
tests import is the code deployed.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from deploy.errors import InvalidInput

ROOT = Path(__file__).resolve().parent.parent.parent
TEMPLATE = ROOT / "infra" / "stack.yaml"
_PLACEHOLDER = re.compile(r"\$\{([A-Z_][A-Z0-9_]*)\}")
# Keys whose values are data, not properties: their own keys keep their spelling.
_VERBATIM = {"options", "dockerLabels", "systemControls"}
_TAGS = ("Ref", "Sub", "GetAtt", "Join", "Select", "Split", "GetAZs", "If", "Equals", "Not", "And", "Or",
         "Cidr", "ImportValue", "FindInMap", "Base64", "Condition")


def _loader():
    """A PyYAML loader that reads CloudFormation's short forms (!Ref, !Sub, ...) as the long ones."""
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    def construct(tag):
        key = tag if tag in ("Ref", "Condition") else f"Fn::{tag}"

        def build(loader, node):
            if isinstance(node, yaml.ScalarNode):
                value = loader.construct_scalar(node)
                if tag == "GetAtt":
                    value = value.split(".", 1)
            elif isinstance(node, yaml.SequenceNode):
                value = loader.construct_sequence(node, deep=True)
            else:
                value = loader.construct_mapping(node, deep=True)
            return {key: value}

        return build

    for tag in _TAGS:
        Loader.add_constructor(f"!{tag}", construct(tag))
    return Loader


def load(path: Path = TEMPLATE) -> dict:
    """The template as a dict (intrinsic functions in their long form); InvalidInput if unreadable."""
    import yaml

    try:
        data = yaml.load(Path(path).read_text(), Loader=_loader())  # noqa: S506 (SafeLoader subclass)
    except OSError as exc:
        raise InvalidInput(f"cannot read the stack template {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise InvalidInput(f"the stack template {path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict) or "Resources" not in data:
        raise InvalidInput(f"the stack template {path} has no Resources")
    return data


def render(template: dict, root: Path = ROOT) -> dict:
    """The template with every `ContainerDefinitionsFrom` task definition and `CodeFrom` function filled
    in (a new dict)."""
    rendered = json.loads(json.dumps(template))
    for name, resource in rendered["Resources"].items():
        metadata = resource.get("Metadata") or {}
        if metadata.get("ContainerDefinitionsFrom"):
            _render_containers(name, resource, root)
        if metadata.get("CodeFrom"):
            _render_code(name, resource, root)
    return rendered


def _render_code(name: str, resource: dict, root: Path) -> None:
    """Its `Code` as the text of the file `CodeFrom` names, byte for byte."""
    source = resource["Metadata"]["CodeFrom"]
    try:
        code = (root / source).read_bytes().decode("utf-8")  # byte for byte: no newline translation
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"{name}: cannot read {source}: {exc}") from None
    if not code.strip():
        raise InvalidInput(f"{name}: {source} is empty")
    resource["Properties"]["Code"] = {"ZipFile": code}


def _render_containers(name: str, resource: dict, root: Path) -> None:
    """Its `ContainerDefinitions` from the file `ContainerDefinitionsFrom` names, placeholders filled."""
    source = resource["Metadata"]["ContainerDefinitionsFrom"]
    values = resource["Metadata"].get("Placeholders") or {}
    try:
        task_def = json.loads((root / source).read_text())
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"{name}: cannot read {source}: {exc}") from None
    used = set(_PLACEHOLDER.findall(json.dumps(task_def["containerDefinitions"])))
    missing = sorted(used - set(values))
    if missing:
        raise InvalidInput(f"{name}: {source} uses placeholders the template gives no value: "
                           f"{', '.join(missing)}")
    resource["Properties"]["ContainerDefinitions"] = [
        _cfn(container, values) for container in task_def["containerDefinitions"]]


def render_text(path: Path = TEMPLATE, root: Path = ROOT) -> str:
    """The rendered template as JSON text (what CloudFormation, cfn-lint and checkov read)."""
    return json.dumps(render(load(path), root), indent=1)


def _cfn(value, values: dict, verbatim: bool = False):
    """ECS API spelling -> CloudFormation spelling, placeholders -> intrinsic functions."""
    if isinstance(value, dict):
        return {(key if verbatim else key[:1].upper() + key[1:]): _cfn(item, values, key in _VERBATIM)
                for key, item in value.items()}
    if isinstance(value, list):
        return [_cfn(item, values) for item in value]
    if isinstance(value, str):
        names = _PLACEHOLDER.findall(value)
        if not names:
            return value
        if value == f"${{{names[0]}}}":
            return values[names[0]]  # the whole string is one value: no Fn::Sub needed
        return {"Fn::Sub": [value, {name: values[name] for name in sorted(set(names))}]}
    return value
