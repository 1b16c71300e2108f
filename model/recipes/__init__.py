"""Recipes: the training code of a model, one small Python file each.

A recipe is a function `build(params, seed)` (optionally also taking `columns`, the table's column
specs from model/tabular.py) that returns an *unfitted* scikit-learn estimator. It is named either
by a module in this package (`--recipe hgb_table`) or by `package.module:function` anywhere
importable (`--recipe churn.training:build`). The built-in models are recipes too: `logreg` for
tables of numbers, `tfidf` for text, `hgb_table` for tables with other kinds of columns.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
from dataclasses import dataclass

from model.errors import RecipeError

DEFAULT_TABULAR = "logreg"
DEFAULT_TEXT = "tfidf"
DEFAULT_MIXED = "hgb_table"
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_TARGET = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


@dataclass(frozen=True)
class Recipe:
    """A loaded recipe: its name as given and the function that builds the estimator."""

    name: str
    function: object

    def build(self, params: dict, seed: int, columns: list[dict] | None):
        """The unfitted estimator; RecipeError if the recipe raises or returns no estimator."""
        accepted = inspect.signature(self.function).parameters
        kwargs = {"columns": columns} if "columns" in accepted else {}
        try:
            estimator = self.function(dict(params), seed, **kwargs)
        except Exception as exc:  # the recipe is user code: any failure is the recipe's
            raise RecipeError(f"recipe {self.name} failed to build the estimator: "
                              f"{type(exc).__name__}: {_first_line(exc)}") from None
        if not (hasattr(estimator, "fit") and hasattr(estimator, "predict")):
            raise RecipeError(f"recipe {self.name} returned {type(estimator).__name__}, not a scikit-learn "
                              "estimator (it needs fit and predict)")
        return estimator


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else "")[:300]


def builtin() -> list[str]:
    """The recipes shipped in this package."""
    return sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))


def load_recipe(spec: str) -> Recipe:
    """Import a recipe by built-in name or `package.module:function`; RecipeError saying why not."""
    spec = (spec or "").strip()
    if _TARGET.match(spec):
        module_name, function_name = spec.split(":")
    elif _NAME.match(spec):
        if spec not in builtin():
            import difflib

            close = difflib.get_close_matches(spec, builtin(), n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise RecipeError(f"no recipe {spec!r}: {hint}use one of {', '.join(builtin())}, or "
                              "package.module:function")
        module_name, function_name = f"{__name__}.{spec}", "build"
    else:
        raise RecipeError(f"malformed recipe {spec!r}: a name from model/recipes/ or package.module:function")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # ImportError, or the module's own code failing
        raise RecipeError(f"cannot import recipe {spec}: {type(exc).__name__}: {_first_line(exc)}") from None
    function = getattr(module, function_name, None)
    if not callable(function):
        raise RecipeError(f"recipe {spec}: {module_name} has no function {function_name!r}")
    return Recipe(spec, function)
