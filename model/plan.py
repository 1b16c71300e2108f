"""The training plan: which models the repo trains, from which data, with which recipe.

`model/training.toml` names them; the train pipeline (`make train`) trains an entry with
`python -m model train --plan model/training.toml [--model NAME]`, so a change to the plan or to a
recipe under model/ is what retrains a model::

    [digits]                 # the model name
    dataset = "digits"       # a built-in dataset, a .csv path or an s3:// URI
    recipe = "logreg"        # a model/recipes/ name or package.module:function
    # label_column = "label"; text_column = "text"
    # params = { C = 0.5 }; column_kinds = { plan = "category" }
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from model.errors import UsageError

_KEYS = {"dataset", "recipe", "label_column", "text_column", "params", "column_kinds"}


@dataclass(frozen=True)
class PlanEntry:
    """One model the plan trains."""

    name: str
    dataset: str
    recipe: str | None = None
    label_column: str | None = None
    text_column: str | None = None
    params: dict = field(default_factory=dict)
    column_kinds: dict = field(default_factory=dict)


def load_plan(path: Path, model: str | None = None) -> PlanEntry:
    """The entry named `model` (default: the first) of a plan file; UsageError saying what is wrong."""
    try:
        plan = tomllib.loads(Path(path).read_text())
    except FileNotFoundError:
        raise UsageError(f"no plan file {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path} is not valid TOML: {exc}") from None
    if not plan:
        raise UsageError(f"{path} names no model")
    name = model or next(iter(plan))
    if name not in plan:
        raise UsageError(f"{path} has no model {name!r} (it has {', '.join(plan)})")
    entry = plan[name]
    if not isinstance(entry, dict) or "dataset" not in entry:
        raise UsageError(f"{path}: [{name}] needs a dataset")
    unknown = sorted(set(entry) - _KEYS)
    if unknown:
        raise UsageError(f"{path}: [{name}] has unknown keys {', '.join(unknown)} "
                         f"(known: {', '.join(sorted(_KEYS))})")
    for key in ("params", "column_kinds"):
        if not isinstance(entry.get(key, {}), dict):
            raise UsageError(f"{path}: [{name}] {key} must be a table, e.g. {key} = {{ key = value }}")
    return PlanEntry(name=name, dataset=str(entry["dataset"]), recipe=entry.get("recipe"),
                     label_column=entry.get("label_column"), text_column=entry.get("text_column"),
                     params={k: str(v) for k, v in entry.get("params", {}).items()},
                     column_kinds=dict(entry.get("column_kinds", {})))
