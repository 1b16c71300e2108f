"""The quality gate: refuse a candidate that is worse than what an alias serves today."""

from __future__ import annotations

from dataclasses import dataclass

from model.errors import GateError, NotFoundError
from model.evaluate import CLASSIFICATION, LOWER_IS_BETTER
from model.evaluate import METRICS as TASK_METRICS
from model.store import DEFAULT_ALIAS, ModelStore

# None: the task's own default (macro F1 for classifiers, R² for regressors).
DEFAULT_METRIC = None
DEFAULT_METRICS = {"classification": "macro_f1", "regression": "r2"}
DEFAULT_TOLERANCE = 0.01
METRICS = tuple(m for metrics in TASK_METRICS.values() for m in metrics)


@dataclass(frozen=True)
class GateResult:
    """What was compared and whether the candidate passes."""

    metric: str
    candidate: float
    baseline: float | None
    baseline_version: str | None
    tolerance: float
    passed: bool

    def describe(self) -> str:
        if self.baseline is None:
            return f"gate: no baseline, candidate {self.metric}={self.candidate:.4f} passes"
        verdict = "passes" if self.passed else "FAILS"
        return (
            f"gate: candidate {self.metric}={self.candidate:.4f} vs {self.baseline_version} "
            f"{self.metric}={self.baseline:.4f} (tolerance {self.tolerance}): {verdict}"
        )


def compare(
    candidate: dict, baseline: dict | None, *, metric: str | None, tolerance: float
) -> GateResult:
    """Compare two manifests on one metric (higher is better, except for MAE and RMSE, where the
    candidate may be at most `tolerance` above the baseline)."""
    task = candidate.get("task", CLASSIFICATION)
    metric = metric or DEFAULT_METRICS[task]
    if metric not in TASK_METRICS[task]:
        raise GateError(f"gate metric {metric!r} does not apply to a {task} model: use one of "
                        f"{', '.join(TASK_METRICS[task])}")
    value = float(candidate["metrics"][metric])
    if baseline is None or metric not in baseline.get("metrics", {}):
        return GateResult(metric, value, None, None, tolerance, True)
    base = float(baseline["metrics"][metric])
    passed = value <= base + tolerance if metric in LOWER_IS_BETTER else value >= base - tolerance
    return GateResult(metric, value, base, baseline["version"], tolerance, passed)


def schema_difference(candidate: dict, baseline: dict) -> str | None:
    """How the candidate's inputs or outputs differ from the baseline's, or None if they do not.

    Clients are built for what the alias serves: a different input schema (text vs tabular, the
    feature count, names or order) or different classes breaks every one of them.
    """
    new, old = candidate["input_schema"], baseline["input_schema"]
    new_task, old_task = candidate.get("task", CLASSIFICATION), baseline.get("task", CLASSIFICATION)
    if new_task != old_task:
        return f"it is a {new_task} model, {baseline['version']} is a {old_task} model"
    if new.get("type") != old.get("type"):
        return f"input is {new.get('type')}, {baseline['version']} takes {old.get('type')}"
    if new.get("type") == "tabular":
        new_features, old_features = list(new.get("features") or []), list(old.get("features") or [])
        if new.get("n_features") != old.get("n_features"):
            return (f"{new.get('n_features')} features ({_names(new_features)}), {baseline['version']} "
                    f"takes {old.get('n_features')} ({_names(old_features)})")
        if new_features != old_features:
            changed = [f"{a!r} -> {b!r}" for a, b in zip(old_features, new_features, strict=True) if a != b]
            return f"feature names or order differ from {baseline['version']}: {', '.join(changed[:3])}"
        kinds = _kinds(new), _kinds(old)
        changed = [f"{name} {kinds[1][name]} -> {kinds[0][name]}" for name in new_features
                   if kinds[0].get(name) != kinds[1].get(name)]
        if changed:
            return f"feature kinds differ from {baseline['version']}: {', '.join(changed[:3])}"
    if [str(c) for c in candidate["classes"]] != [str(c) for c in baseline["classes"]]:
        return (f"classes {_names([str(c) for c in candidate['classes']])}, {baseline['version']} has "
                f"{_names([str(c) for c in baseline['classes']])}")
    return None


def _kinds(schema: dict) -> dict[str, str]:
    # Manifests from before mixed tables have no columns: every feature is a number.
    columns = schema.get("columns") or [{"name": n, "kind": "number"} for n in schema.get("features") or []]
    return {c["name"]: c["kind"] for c in columns}


def _names(names: list[str], shown: int = 4) -> str:
    return ", ".join(names[:shown]) + (f", ... ({len(names)})" if len(names) > shown else "")


def check_schema(candidate: dict, baseline: dict | None, *, alias: str, allow: bool = False) -> None:
    """GateError if the candidate's schema or classes differ from the alias's target (unless `allow`)."""
    if baseline is None or allow:
        return
    difference = schema_difference(candidate, baseline)
    if difference:
        raise GateError(f"schema guard: {candidate['name']} {candidate['version']} would change what "
                        f"{alias} serves: {difference}; clients built for it would break "
                        "(--allow-schema-change if that is intended, or --name for another model)")


def check_gate(
    store: ModelStore,
    candidate: dict,
    *,
    alias: str = DEFAULT_ALIAS,
    metric: str | None = DEFAULT_METRIC,
    tolerance: float = DEFAULT_TOLERANCE,
    force: bool = False,
    allow_schema_change: bool = False,
) -> GateResult:
    """Compare a candidate manifest with the alias's current target; raise GateError if worse, or
    if its input schema or classes differ (the schema guard)."""
    try:
        current = store.resolve(candidate["name"], alias=alias)
        baseline = store.manifest(candidate["name"], current)
    except NotFoundError:
        baseline = None
    check_schema(candidate, baseline, alias=alias, allow=allow_schema_change)
    result = compare(candidate, baseline, metric=metric, tolerance=tolerance)
    if not result.passed and not force:
        raise GateError(result.describe() + " (use --force to override)")
    return result


def check_promotion(
    store: ModelStore,
    name: str,
    version: str,
    *,
    alias: str = DEFAULT_ALIAS,
    gate_alias: str | None = None,
    metric: str | None = DEFAULT_METRIC,
    tolerance: float = DEFAULT_TOLERANCE,
    force: bool = False,
    allow_schema_change: bool = False,
) -> GateResult | None:
    """The gate `promote` applies before moving `alias` to `version`; None when it does not apply.

    The schema guard always compares with what `alias` serves now. The metric gate compares with
    the gate alias's target (default: the alias being moved) and does not apply when another alias
    is gated or the alias already names the version. GateError if refused.
    """
    manifest = store.manifest(name, version)
    current = store.alias(name, alias)
    if current is not None and current.version == version:
        return None
    if current is not None:
        check_schema(manifest, store.manifest(name, current.version), alias=alias, allow=allow_schema_change)
    gate_alias = gate_alias or alias
    if gate_alias != alias:
        return None
    return check_gate(store, manifest, alias=gate_alias, metric=metric, tolerance=tolerance, force=force,
                      allow_schema_change=True)  # the guard ran above, against the alias itself
