"""Task definitions: render the repo's template, validate it with botocore's own ECS model, derive revisions.

A revision pins the deployed unit: the image by digest and the model by MODEL_VERSION. An empty
MODEL_VERSION renders as "follow the alias at start-up": the variable is then left out entirely.
"""

from __future__ import annotations

import copy
import json
import re
import string
from pathlib import Path

from deploy.errors import InvalidInput

CONTAINER_NAME = "model-service"
# Placeholders whose value may be empty (the variable is then dropped from the container environment).
_OPTIONAL_ENV = {"MODEL_VERSION", "MODEL_ALIAS", "MODEL_VERIFY_KEY", "CAPTURE_RATE", "CAPTURE_EXCLUDE",
                 "CAPTURE_HASH"}


def _register_shape():
    import botocore.session

    model = botocore.session.get_session().get_service_model("ecs")
    return model.operation_model("RegisterTaskDefinition").input_shape


def placeholders(template_text: str) -> set[str]:
    """The ${NAME} placeholders a template uses."""
    return {m.group("named") or m.group("braced") for m in string.Template.pattern.finditer(template_text)
            if m.group("named") or m.group("braced")}


def render(template_text: str, values: dict[str, str]) -> dict:
    """Fill the template's placeholders (JSON-escaped) and return the validated definition.

    Refuses a placeholder without a value, a value for a required placeholder that is empty,
    and text that is not JSON after filling.
    """
    needed = placeholders(template_text)
    # An optional placeholder without a value is empty: its variable is then left out.
    values = {**{n: "" for n in needed & _OPTIONAL_ENV if values.get(n) is None}, **{
        k: v for k, v in values.items() if v is not None}}
    missing = sorted(
        n for n in needed if values.get(n) is None or (values[n] == "" and n not in _OPTIONAL_ENV)
    )
    if missing:
        raise InvalidInput(f"task definition template has unfilled placeholders: {', '.join(missing)}")
    escaped = {k: json.dumps(str(v))[1:-1] for k, v in values.items() if v is not None}
    try:
        text = string.Template(template_text).substitute(escaped)
    except (ValueError, KeyError) as exc:
        raise InvalidInput(f"task definition template is malformed: {exc}") from None
    try:
        definition = json.loads(text)
    except ValueError as exc:
        raise InvalidInput(f"task definition template is not valid JSON: {exc}") from None
    for container in definition.get("containerDefinitions", []) if isinstance(definition, dict) else []:
        if isinstance(container, dict) and isinstance(container.get("environment"), list):
            container["environment"] = [
                e for e in container["environment"]
                if not (isinstance(e, dict) and e.get("name") in _OPTIONAL_ENV and e.get("value") == "")
            ]
    validate(definition)
    return definition


def render_file(path: Path, values: dict[str, str]) -> dict:
    """render() a template file."""
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise InvalidInput(f"cannot read task definition template {path}: {exc.strerror}") from None
    return render(text, values)


def validate(definition: dict) -> dict:
    """Check a definition against the RegisterTaskDefinition input shape and this service's needs."""
    from botocore.validate import ParamValidator

    if not isinstance(definition, dict):
        raise InvalidInput("task definition must be a JSON object")
    report = ParamValidator().validate(definition, _register_shape())
    if report.has_errors():
        first = report.generate_report().splitlines()[1:2] or [report.generate_report()]
        raise InvalidInput(f"task definition is invalid: {first[0].strip()}")
    container = service_container(definition)
    if not container.get("image"):
        raise InvalidInput(f"container {container['name']!r} has no image")
    return definition


def service_container(definition: dict, name: str = CONTAINER_NAME) -> dict:
    """The container that runs the model service (by name, or the only container)."""
    containers = definition.get("containerDefinitions") or []
    named = [c for c in containers if c.get("name") == name]
    if named:
        return named[0]
    if len(containers) == 1:
        return containers[0]
    raise InvalidInput(f"task definition has no container named {name!r}")


def environment(definition: dict) -> dict[str, str]:
    """The service container's environment as a dict."""
    return {e["name"]: e.get("value", "") for e in service_container(definition).get("environment", [])}


def pinned_unit(definition: dict) -> tuple[str, str | None]:
    """(image, MODEL_VERSION or None): what a revision deploys."""
    image = service_container(definition).get("image", "")
    return image, environment(definition).get("MODEL_VERSION") or None


def derive(registered: dict, *, image: str | None = None, model_version: str | None = None,
           model_alias: str | None = None) -> dict:
    """RegisterTaskDefinition input for a new revision of `registered` with image/model replaced.

    Only the fields RegisterTaskDefinition accepts are copied (describe adds ARN, revision, status...).
    """
    members = set(_register_shape().members)
    definition = {k: copy.deepcopy(v) for k, v in registered.items() if k in members}
    container = service_container(definition)
    if image:
        container["image"] = image
    env = [e for e in container.get("environment", []) if e.get("name") not in ("MODEL_VERSION",)]
    if model_version:
        env.append({"name": "MODEL_VERSION", "value": model_version})
    if model_alias:
        env = [e for e in env if e.get("name") != "MODEL_ALIAS"]
        env.append({"name": "MODEL_ALIAS", "value": model_alias})
    container["environment"] = env
    return validate(definition)


_DIGEST_RE = re.compile(r"^[^@\s]+@sha256:[0-9a-f]{64}$")


def is_digest_ref(image: str) -> bool:
    """True for `repo@sha256:<64 hex>` (an immutable image reference)."""
    return bool(_DIGEST_RE.match(image or ""))
