"""Training: build the recipe's estimator, fit it on a split, evaluate it on the held-out part,
describe it (model/publish.py)."""

from __future__ import annotations

import numpy as np

from model.data import Dataset, check_classes
from model.errors import DataError, RecipeError
from model.evaluate import REGRESSION, task_of
from model.recipes import DEFAULT_MIXED, DEFAULT_TABULAR, DEFAULT_TEXT, load_recipe

DEFAULT_SEED = 42
DEFAULT_TEST_SIZE = 0.2
_MAX_CLASSES = 50


def default_recipe(dataset: Dataset) -> str:
    """The built-in recipe for a dataset: tf-idf for text, scaled logistic regression for tables of
    numbers, gradient boosting over one transformer per column kind for mixed tables."""
    if dataset.kind == "text":
        return DEFAULT_TEXT
    return DEFAULT_MIXED if dataset.frame else DEFAULT_TABULAR


def _target(dataset: Dataset, task: str, recipe: str) -> np.ndarray:
    """The labels as the task needs them: floats for a regressor; a classifier refuses continuous ones."""
    from sklearn.utils.multiclass import type_of_target

    if task == REGRESSION:
        try:
            return dataset.y.astype(np.float64)
        except ValueError:
            sample = next(v for v in dataset.y if not _is_number(v))
            raise RecipeError(f"recipe {recipe} builds a regressor, but the label column has values that are "
                              f"not numbers ({sample!r})") from None
    kind = type_of_target(dataset.y)
    distinct = len(np.unique(dataset.y))
    # Whole numbers with a value for almost every few rows (a price, a score) are a quantity to
    # predict, not classes: sklearn calls them multiclass, a classifier would learn nothing useful.
    numeric = dataset.y.dtype.kind in "iuf"
    if kind == "continuous" or (numeric and distinct > _MAX_CLASSES and distinct > dataset.rows / 10):
        raise RecipeError(f"recipe {recipe} builds a classifier, but the label column looks continuous "
                          f"({distinct} distinct numbers in {dataset.rows} rows): use a regressor recipe, "
                          "such as forest_regressor")
    check_classes(dataset)
    return dataset.y


def _is_number(value) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


def train(
    dataset: Dataset,
    *,
    name: str,
    recipe: str | None = None,
    params: dict | None = None,
    seed: int = DEFAULT_SEED,
    test_size: float = DEFAULT_TEST_SIZE,
    compile: bool = True,
):
    """Fit and evaluate a recipe's model: a model.publish.Candidate (pickle, manifest with its version,
    and model.onnx when the model compiles), which unpacks as `(artifact, manifest)`."""
    from sklearn.model_selection import train_test_split

    from model.publish import build_manifest

    params = dict(params or {})
    recipe = recipe or default_recipe(dataset)
    if not 0 < test_size < 1:
        raise DataError(f"test size must be between 0 and 1, got {test_size}")
    estimator = load_recipe(recipe).build(params, seed, dataset.columns)
    task = task_of(estimator)
    y = _target(dataset, task, recipe)
    try:
        X_train, X_test, y_train, y_test = train_test_split(
            dataset.X, y, test_size=test_size, random_state=seed, stratify=None if task == REGRESSION else y
        )
    except ValueError as exc:
        raise DataError(f"cannot split {dataset.source} into train and test sets: {exc}") from None
    try:
        estimator.fit(X_train, y_train)
    except Exception as exc:  # the recipe's estimator is user code: any failure in fit is the recipe's
        first = (str(exc).strip().splitlines() or [""])[0][:300]
        raise RecipeError(f"recipe {recipe} failed to fit on {dataset.source}: {type(exc).__name__}: "
                          f"{first}") from None
    return build_manifest(
        estimator, X_test, y_test, name=name, source=dataset.source, recipe=recipe,
        params={**params, "seed": seed, "test_size": test_size},
        data={"sha256": dataset.sha256, "rows": dataset.rows, "train_rows": len(y_train),
              "test_rows": len(y_test)},
        columns=dataset.columns,
        compile=compile,
        X_train=X_train,
    )
