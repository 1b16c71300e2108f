"""The quality gate: refuse a candidate that is worse than what an alias serves today."""

from __future__ import annotations

from dataclasses import dataclass

from model.errors import GateError, NotFoundError
from model.store import DEFAULT_ALIAS, ModelStore

DEFAULT_METRIC = "macro_f1"
DEFAULT_TOLERANCE = 0.01
METRICS = ("accuracy", "macro_f1")


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
    candidate: dict, baseline: dict | None, *, metric: str, tolerance: float
) -> GateResult:
    """Compare two manifests on one metric; higher is better."""
    if metric not in METRICS:
        raise GateError(f"unknown gate metric {metric!r}: use one of {', '.join(METRICS)}")
    value = float(candidate["metrics"][metric])
    if baseline is None or metric not in baseline.get("metrics", {}):
        return GateResult(metric, value, None, None, tolerance, True)
    base = float(baseline["metrics"][metric])
    return GateResult(metric, value, base, baseline["version"], tolerance, value >= base - tolerance)


def check_gate(
    store: ModelStore,
    candidate: dict,
    *,
    alias: str = DEFAULT_ALIAS,
    metric: str = DEFAULT_METRIC,
    tolerance: float = DEFAULT_TOLERANCE,
    force: bool = False,
) -> GateResult:
    """Compare a candidate manifest with the alias's current target; raise GateError if worse."""
    try:
        current = store.resolve(candidate["name"], alias=alias)
        baseline = store.manifest(candidate["name"], current)
    except NotFoundError:
        baseline = None
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
    metric: str = DEFAULT_METRIC,
    tolerance: float = DEFAULT_TOLERANCE,
    force: bool = False,
) -> GateResult | None:
    """The gate `promote` applies before moving `alias` to `version`; None when it does not apply.

    It compares with the gate alias's target (default: the alias being moved) and does not apply
    when another alias is gated or the alias already names the version. GateError if refused.
    """
    manifest = store.manifest(name, version)
    gate_alias = gate_alias or alias
    if gate_alias != alias:
        return None
    current = store.alias(name, alias)
    if current is not None and current.version == version:
        return None
    return check_gate(store, manifest, alias=gate_alias, metric=metric, tolerance=tolerance, force=force)
