"""The monitor's comparison: captured records against the version's training profile, and a verdict.

`monitor(store, name, version, span, thresholds)` reads the window's records (model.monitor.records),
compares them with the manifest's `profile` through model.drift.compare (the same statistics as the
service's live gauges) and returns a MonitorResult: every feature's Drift, the predictions', which
profile features could not be compared (excluded or hashed at capture) and the verdict:

- "no records": nothing was captured in the window (exit 4: is CAPTURE_RATE set?);
- "too few records": fewer than --min-records, where PSI's small-sample bias alone would approach
  the threshold (exit 0, said so);
- "drift": a feature or the predictions crossed a threshold (exit 20);
- "no drift" (exit 0).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from model.capture_files import HASH_PREFIX
from model.drift import Drift, Thresholds, compare
from model.errors import ModelError, NotFoundError
from model.exit_codes import ExitCode
from model.monitor.records import Captured, Window, read_captured

NO_RECORDS, TOO_FEW, DRIFT, NO_DRIFT = "no records", "too few records", "drift", "no drift"
TOP = 20  # rows of the printed table, besides the drifting features


class DriftDetected(ModelError):
    """A feature or the predictions crossed a drift threshold (`model monitor`)."""

    exit_code = ExitCode.DRIFT


@dataclass
class MonitorResult:
    """What `python -m model monitor` found, for the printed table, --json and --report."""

    model: str
    version: str
    store: str
    window: Window
    captured: Captured
    thresholds: Thresholds
    results: list[Drift] = field(default_factory=list)
    not_compared: dict[str, str] = field(default_factory=dict)  # profile feature -> why not

    @property
    def features(self) -> list[Drift]:
        """The inputs' results (features, or the text), highest PSI first."""
        return sorted((r for r in self.results if r.kind != "predictions"), key=lambda r: -r.psi)

    @property
    def predictions(self) -> Drift | None:
        return next((r for r in self.results if r.kind == "predictions"), None)

    @property
    def drifting(self) -> list[Drift]:
        """The results that crossed a threshold: features by PSI, then the predictions."""
        found = [r for r in self.features if r.reasons]
        return found + [r for r in [self.predictions] if r is not None and r.reasons]

    @property
    def verdict(self) -> str:
        if self.captured.records == 0:
            return NO_RECORDS
        if self.captured.records < self.thresholds.min_records:
            return TOO_FEW
        return DRIFT if self.drifting else NO_DRIFT

    @property
    def exit_code(self) -> int:
        return {NO_RECORDS: ExitCode.NOT_FOUND, DRIFT: ExitCode.DRIFT}.get(self.verdict, ExitCode.OK)

    def to_json(self) -> dict:
        """The --json file: everything the report shows, as numbers."""
        return {
            "model": self.model, "version": self.version, "store": self.store,
            "window": self.window.to_json(), **self.captured.to_json(),
            "thresholds": asdict(self.thresholds),
            "verdict": self.verdict, "exit_code": int(self.exit_code),
            "drifting": [r.name for r in self.drifting],
            "not_compared": self.not_compared,
            "results": [r.to_json() for r in [*self.features, *[p for p in [self.predictions] if p]]],
        }

    def last_line(self) -> str:
        """The verdict as one line: the printed output's last."""
        records = self.captured.records
        if self.verdict == NO_RECORDS:
            return (f"no captured records of {self.model} {self.version} from {self.window} in {self.store}: "
                    "is capture on (CAPTURE_RATE > 0 on the service)?")
        if self.verdict == TOO_FEW:
            return (f"too few records to judge: {records} < {self.thresholds.min_records} (--min-records) "
                    f"from {self.window}")
        if self.verdict == DRIFT:
            names = [f"{r.name} ({'; '.join(r.reasons)})" for r in self.drifting]
            shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
            return f"drift: {len(names)} crossed a threshold in {records} records: {shown}"
        top = self.features[0] if self.features else None
        worst = f"; highest PSI {top.psi:.3f} ({top.name})" if top else ""
        return f"no drift in {records} records from {self.window}{worst}"


def _not_compared(profile: dict, inputs: list, compared: set[str]) -> dict[str, str]:
    """Profile features absent from the comparison, and why (excluded or hashed at capture)."""
    missing = {}
    names = list(profile.get("features") or {}) + (["text"] if "text" in profile else [])
    for name in names:
        if name in compared:
            continue
        if name == "text" and "features" not in profile:
            values = inputs
        else:
            values = [row.get(name) for row in inputs if isinstance(row, dict)]
        hashed = any(isinstance(v, str) and v.startswith(HASH_PREFIX) for v in values[:100])
        if hashed:
            missing[name] = "hashed at capture (CAPTURE_HASH)"
        elif inputs:
            missing[name] = "absent from the records (CAPTURE_EXCLUDE)"
        else:
            missing[name] = "no input captured (CAPTURE_EXCLUDE or CAPTURE_HASH of input)"
    return missing


def monitor(store, name: str, version: str, span: Window, thresholds: Thresholds) -> MonitorResult:
    """Read the version's captured records in the window and compare them with its profile.

    Raises NotFoundError when the version's manifest has no profile (versions trained before
    profiles existed: retrain or re-import it).
    """
    manifest = store.manifest(name, version)
    profile = manifest.get("profile")
    if not profile:
        raise NotFoundError(f"{name} {version} has no training profile in its manifest (published before "
                            "profiles were recorded): retrain or re-import it to monitor it")
    captured = read_captured(store.backend, name, version, span)
    result = MonitorResult(model=name, version=version, store=store.uri, window=span, captured=captured,
                           thresholds=thresholds)
    if captured.records:
        # A result over no values (a text model whose every input was hashed) says nothing: it is
        # listed as not compared instead.
        compared = compare(profile, captured.inputs, captured.predictions, thresholds)
        result.results = [r for r in compared if r.records]
        result.not_compared = _not_compared(profile, captured.inputs, {r.name for r in result.results})
    return result


def _percent(value: float) -> str:
    return f"{value:.1%}" if value else "-"


def table_lines(result: MonitorResult, top: int = TOP) -> list[str]:
    """The printed table: the `top` features by PSI plus every drifting one, then the predictions."""
    features = result.features
    shown = [r for i, r in enumerate(features) if i < top or r.reasons]
    lines = []
    if shown:
        width = max(len("feature"), *(len(r.name) for r in shown))
        lines.append(f"{'feature':<{width}}  {'kind':<8} {'PSI':>7}  {'outside':>7}  {'unseen':>7}  "
                     f"{'missing':>7}  drift")
        for r in shown:
            lines.append(f"{r.name:<{width}}  {r.kind:<8} {r.psi:>7.3f}  {_percent(r.out_of_range):>7}  "
                         f"{_percent(r.unseen):>7}  {_percent(r.missing):>7}  {'; '.join(r.reasons) or 'no'}")
        if len(shown) < len(features):
            lines.append(f"({len(features) - len(shown)} more feature(s) below the threshold: --json or "
                         "--report lists them all)")
    for name, why in result.not_compared.items():
        lines.append(f"not compared: {name}: {why}")
    predicted = result.predictions
    if predicted is not None:
        state = "; ".join(predicted.reasons) or "no drift"
        lines.append(f"predictions: PSI {predicted.psi:.3f} against the held-out predictions over "
                     f"{predicted.records} records: {state}")
    elif result.captured.records:
        lines.append("predictions: not compared (none captured as objects, or no held-out profile)")
    skipped = result.captured.skipped
    if skipped:
        reasons = ", ".join(f"{count} {reason}" for reason, count in sorted(skipped.items()))
        lines.append(f"skipped: {result.captured.skipped_total} ({reasons})")
    if result.captured.sampled < result.captured.records:
        lines.append(f"compared a random sample of {result.captured.sampled} of {result.captured.records} "
                     "records")
    lines.append(result.last_line())
    return lines
