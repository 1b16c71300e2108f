"""A self-contained HTML report describing one model version, optionally beside another.

`render_report(manifest)` reads only the manifest (no artifact, no store): the metrics, the held-out
evaluation it carries (a confusion matrix, or a sample of actual/predicted values) and its lineage.
The page embeds its plots as base64 PNGs and its CSS inline, and its Content-Security-Policy
forbids every fetch, so it can be mailed, attached to a build or opened from a bucket as one file.
Every string taken from a manifest is escaped: a model name is user input.
"""

from __future__ import annotations

import json
import math
from html import escape

from model.report_plots import Plot, PlotError

# Headline metrics in display order, and whether a larger value is better.
METRICS = {
    "classification": {"accuracy": True, "macro_f1": True},
    "regression": {"mae": False, "rmse": False, "r2": True},
}
METRIC_NAMES = {"accuracy": "accuracy", "macro_f1": "macro F1", "mae": "MAE", "rmse": "RMSE", "r2": "R²"}
# classification_report's summary rows are not classes.
_NOT_CLASSES = {"accuracy", "macro avg", "weighted avg", "micro avg", "samples avg"}
NO_EVALUATION = (
    "This manifest carries no evaluation data, so there are no plots: "
    "they need a version trained with evaluation data (retrain to get them)."
)

_CSS = """
:root { color-scheme: light; }
body { margin: 0; background: #f3f4f6; color: #1f2937;
  font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
main { max-width: 1060px; margin: 0 auto; padding: 28px 24px 48px; }
header h1 { margin: 0; font-size: 26px; font-weight: 650; word-break: break-word; }
header .version { font: 600 15px ui-monospace, SFMono-Regular, Menlo, Consolas, monospace;
  background: #e0e7ff; color: #3730a3; border-radius: 6px; padding: 2px 8px; margin-left: 6px;
  vertical-align: middle; word-break: break-all; }
header p { margin: 6px 0 0; color: #6b7280; }
section { background: #fff; border: 1px solid #e5e7eb; border-radius: 10px; padding: 18px 22px;
  margin-top: 20px; overflow-x: auto; }
h2 { margin: 0 0 12px; font-size: 18px; font-weight: 620; }
h3 { margin: 18px 0 8px; font-size: 15px; font-weight: 600; color: #374151; }
table { border-collapse: collapse; font-size: 14px; }
th, td { text-align: left; padding: 5px 14px 5px 0; border-bottom: 1px solid #f0f1f3; vertical-align: top; }
thead th { color: #6b7280; font-weight: 600; border-bottom: 1px solid #d1d5db; }
tbody th { font-weight: 500; color: #4b5563; white-space: nowrap; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; padding-left: 14px; }
code { font: 13px ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; word-break: break-all; }
.tiles { display: flex; flex-wrap: wrap; gap: 12px; margin-bottom: 14px; }
.tile { border: 1px solid #e5e7eb; border-radius: 8px; padding: 10px 16px; min-width: 120px; }
.tile .label { font-size: 12px; color: #6b7280; text-transform: uppercase; letter-spacing: .04em; }
.tile .value { font-size: 22px; font-weight: 620; font-variant-numeric: tabular-nums; }
.plots { display: flex; flex-wrap: wrap; gap: 16px; align-items: flex-start; }
figure { margin: 0; max-width: 100%; }
figure img { display: block; max-width: 100%; height: auto; }
.note { background: #fffbeb; border: 1px solid #fde68a; border-radius: 8px; padding: 10px 14px;
  color: #92400e; margin: 8px 0; }
.better { color: #047857; font-weight: 600; }
.worse { color: #b91c1c; font-weight: 600; }
.muted { color: #6b7280; }
details summary { cursor: pointer; color: #374151; margin: 6px 0; }
footer { margin-top: 24px; font-size: 12px; color: #9ca3af; text-align: center; }
"""


def _text(value) -> str:
    """Any manifest value as escaped HTML text (strings as they are, the rest as JSON)."""
    if value is None:
        return '<span class="muted">—</span>'
    if not isinstance(value, str):
        value = json.dumps(value, sort_keys=True, default=str)
    return escape(value)


def _number(value) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _format(value) -> str:
    """A metric as text: four decimals (what the service page shows), exponent form when huge."""
    number = _number(value)
    if number is None:
        return _text(value)
    if isinstance(value, int):
        return f"{value:,}"
    return f"{number:.4f}" if abs(number) < 1e7 else f"{number:.4e}"


def _task(manifest: dict) -> str:
    # Manifests written before regression existed have no task: they are all classifiers.
    return str(manifest.get("task") or "classification")


def _rows(pairs) -> str:
    return "".join(f"<tr><th>{escape(str(key))}</th><td>{value}</td></tr>" for key, value in pairs)


def _table(pairs, empty: str = "none recorded") -> str:
    body = _rows(pairs)
    return f"<table><tbody>{body}</tbody></table>" if body else f'<p class="muted">{escape(empty)}</p>'


def _figure(plot: Plot) -> str:
    return (
        f'<figure><img src="{plot.uri}" width="{plot.width}" alt="{escape(plot.alt)}"></figure>'
    )


def _note(message: str) -> str:
    return f'<p class="note">{escape(message)}</p>'


def _classes(manifest: dict, per_class: dict) -> list[str]:
    """Class labels as per_class keys, in the manifest's class order, then any others."""
    named = [str(label) for label in manifest.get("classes") or [] if str(label) in per_class]
    return named + [key for key in per_class if key not in named and key not in _NOT_CLASSES]


def _per_class(manifest: dict) -> dict:
    per_class = (manifest.get("metrics") or {}).get("per_class")
    if not isinstance(per_class, dict):
        return {}
    return {str(key): scores for key, scores in per_class.items() if isinstance(scores, dict)}


def _summary(manifest: dict, task: str) -> str:
    metrics = manifest.get("metrics") or {}
    data = manifest.get("data") or {}
    tiles = [(METRIC_NAMES.get(key, key), metrics.get(key)) for key in METRICS.get(task, {})]
    tiles += [("test rows", data.get("test_rows"))]
    html = "".join(
        f'<div class="tile"><div class="label">{escape(label)}</div>'
        f'<div class="value">{_format(value)}</div></div>'
        for label, value in tiles
    )
    facts = [
        ("task", _text(task)),
        ("estimator", _text(manifest.get("estimator"))),
        ("data", _text(data.get("source"))),
        ("rows", f"{_format(data.get('rows'))} ({_format(data.get('train_rows'))} train, "
                 f"{_format(data.get('test_rows'))} test)"),
    ]
    if task == "classification":
        facts.append(("classes", _format(len(manifest.get("classes") or _per_class(manifest)))))
    return f'<section id="summary"><h2>Summary</h2><div class="tiles">{html}</div>{_table(facts)}</section>'


def _draw(draw, *args) -> str:
    """One plot as a <figure>, or a note saying why it could not be drawn (never an exception)."""
    try:
        return _figure(draw(*args))
    except (PlotError, TypeError, ValueError, KeyError, AttributeError) as exc:
        return _note(f"This plot could not be drawn from the manifest's evaluation data: {exc}")


def _classification_plots(manifest: dict, evaluation: dict) -> str:
    from model import report_plots

    parts = []
    matrix = evaluation.get("confusion_matrix")
    if isinstance(matrix, dict):
        labels, counts = matrix.get("labels") or [], matrix.get("matrix")
        parts.append(_draw(report_plots.confusion_matrix_plot, labels, counts))
    else:
        parts.append(_note("The evaluation data has no confusion matrix."))
    per_class = _per_class(manifest)
    labels = _classes(manifest, per_class)
    if labels:
        precision = [per_class[label].get("precision") for label in labels]
        recall = [per_class[label].get("recall") for label in labels]
        parts.append(_draw(report_plots.per_class_plot, labels, precision, recall))
    return "".join(parts)


def _regression_plots(evaluation: dict) -> str:
    from model import report_plots

    actual, predicted = evaluation.get("actual"), evaluation.get("predicted")
    if not actual or not predicted:
        return _note("The evaluation data has no actual/predicted sample.")
    return _draw(report_plots.predicted_vs_actual_plot, actual, predicted) + _draw(
        report_plots.residuals_plot, actual, predicted
    )


def _evaluation(manifest: dict, task: str) -> str:
    evaluation = manifest.get("evaluation")
    if not isinstance(evaluation, dict) or not evaluation:
        body = _note(NO_EVALUATION)
    elif task == "classification":
        body = _classification_plots(manifest, evaluation)
    elif task == "regression":
        body = _regression_plots(evaluation)
    else:
        body = _note(f"There are no plots for a {task!r} model.")
    title = "<h2>Evaluation on held-out data</h2>"
    return f'<section id="evaluation">{title}<div class="plots">{body}</div></section>'


def _cell(value, column: str) -> str:
    # train.py rounds every score to a float, support included: a count reads better without decimals.
    if column == "support" and isinstance(value, float) and value.is_integer():
        return _format(int(value))
    return _format(value)


def _per_class_table(manifest: dict) -> str:
    per_class = _per_class(manifest)
    labels = _classes(manifest, per_class)
    if not labels:
        return ""
    columns = ("precision", "recall", "f1-score", "support")
    head = "".join(f'<th class="num">{name}</th>' for name in columns)
    body = "".join(
        f"<tr><th>{escape(label)}</th>"
        + "".join(f'<td class="num">{_cell(per_class[label].get(name), name)}</td>' for name in columns)
        + "</tr>"
        for label in labels
    )
    table = f"<table><thead><tr><th>class</th>{head}</tr></thead><tbody>{body}</tbody></table>"
    # Dozens of rows would push lineage off the page: fold them.
    if len(labels) > 12:
        table = f"<details><summary>{len(labels)} classes</summary>{table}</details>"
    return f'<section id="per-class"><h2>Per-class scores</h2>{table}</section>'


def _comparison(manifest: dict, against: dict) -> str:
    task, other_task = _task(manifest), _task(against)
    other = f"{against.get('name', '?')} {against.get('version', '?')}"
    title = f"<h2>Compared with <code>{escape(other)}</code></h2>"
    if task != other_task:
        return (
            f'<section id="comparison">{title}'
            + _note(
                f"The two versions are of different tasks ({task} here, {other_task} there): "
                "their metrics are not comparable."
            )
            + "</section>"
        )
    mine, theirs = manifest.get("metrics") or {}, against.get("metrics") or {}
    rows = []
    for key, higher_is_better in METRICS.get(task, {}).items():
        a, b = _number(mine.get(key)), _number(theirs.get(key))
        direction = "higher is better" if higher_is_better else "lower is better"
        if a is None or b is None:
            difference, better, verdict = "—", "unknown", '<span class="muted">not comparable</span>'
        else:
            difference = f"{a - b:+.4f}"
            if math.isclose(a, b, rel_tol=0, abs_tol=1e-12):
                better, verdict = "tie", '<span class="muted">same</span>'
            elif (a > b) == higher_is_better:
                better, verdict = "candidate", '<span class="better">this version</span>'
            else:
                better = "other"
                verdict = '<span class="worse">other version</span>'
        rows.append(
            f'<tr data-metric="{escape(key)}" data-better="{better}">'
            f"<th>{escape(METRIC_NAMES.get(key, key))}</th>"
            f'<td class="num">{_format(mine.get(key))}</td><td class="num">{_format(theirs.get(key))}</td>'
            f'<td class="num">{difference}</td><td class="muted">{direction}</td><td>{verdict}</td></tr>'
        )
    head = (
        '<thead><tr><th>metric</th><th class="num">this version</th><th class="num">other version</th>'
        '<th class="num">difference</th><th>direction</th><th>better</th></tr></thead>'
    )
    notes = ""
    mine_data, their_data = manifest.get("data") or {}, against.get("data") or {}
    if mine_data.get("sha256") != their_data.get("sha256"):
        notes = _note("The two versions were trained and evaluated on different data: compare with care.")
    table = f"<table>{head}<tbody>{''.join(rows)}</tbody></table>"
    return f'<section id="comparison">{title}{table}{notes}</section>'


def _schema(manifest: dict) -> str:
    schema = manifest.get("input_schema") or {}
    features = schema.get("features") or []
    columns = [column for column in schema.get("columns") or [] if isinstance(column, dict)]
    count = len(columns) or len(features) or schema.get("n_features")
    facts = [("type", _text(schema.get("type"))), ("features", _format(count))]
    if columns:
        kinds: dict[str, int] = {}
        for column in columns:
            kind = str(column.get("kind", "?"))
            kinds[kind] = kinds.get(kind, 0) + 1
        facts.append(("column kinds", escape(", ".join(f"{kind}: {n}" for kind, n in sorted(kinds.items())))))
    html = _table(facts)
    if columns:
        body = "".join(
            f"<tr><th>{_text(column.get('name'))}</th><td>{_text(column.get('kind'))}</td>"
            f"<td>{escape(', '.join(str(v) for v in column.get('values') or []))}</td></tr>"
            for column in columns
        )
        html += (
            f"<details><summary>{len(columns)} columns</summary><table><thead><tr><th>name</th><th>kind</th>"
            f"<th>values</th></tr></thead><tbody>{body}</tbody></table></details>"
        )
    elif features:
        names = ", ".join(str(name) for name in features)
        html += (
            f"<details><summary>{len(features)} feature names</summary>"
            f"<p><code>{escape(names)}</code></p></details>"
        )
    return f"<h3>Input schema</h3>{html}"


def _lineage(manifest: dict) -> str:
    data = manifest.get("data") or {}
    digest = str(data.get("sha256") or "")
    # The full digest stays in the tooltip; 12 hex digits are enough to tell versions apart by eye.
    short = f'<code title="{escape(digest)}">{escape(digest[:12])}</code>' if digest else _text(None)
    facts = [
        ("data source", _text(data.get("source"))),
        ("data sha256", short),
        ("rows", _format(data.get("rows"))),
        ("train rows", _format(data.get("train_rows"))),
        ("test rows", _format(data.get("test_rows"))),
        ("git commit", f"<code>{_text(manifest.get('git_commit'))}</code>"),
        ("created", _text(manifest.get("created_at"))),
        ("estimator", _text(manifest.get("estimator"))),
    ]
    params = manifest.get("params") or {}
    runtime = manifest.get("runtime") or {}
    return (
        f'<section id="lineage"><h2>Data &amp; lineage</h2>{_table(facts)}'
        f"<h3>Parameters</h3>{_table(sorted((k, _text(v)) for k, v in params.items()))}"
        f"<h3>Runtime</h3>{_table(sorted((k, _text(v)) for k, v in runtime.items()))}"
        f"{_schema(manifest)}</section>"
    )


def render_report(manifest: dict, *, against: dict | None = None) -> str:
    """One self-contained HTML page (images embedded as base64 PNG) describing a model version.

    `manifest` is a version's manifest as the store holds it; `against`, if given, another version's
    (typically the one in production), compared metric by metric. A manifest without evaluation data
    still renders, with a note in place of the plots. Draws with matplotlib (imported here, on use).
    """
    task = _task(manifest)
    name, version = str(manifest.get("name", "?")), str(manifest.get("version", "?"))
    sections = [_summary(manifest, task)]
    if against is not None:
        sections.append(_comparison(manifest, against))
    sections.append(_evaluation(manifest, task))
    if task == "classification":
        sections.append(_per_class_table(manifest))
    sections.append(_lineage(manifest))
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        # Nothing may be fetched: images are data URIs, the style is inline, and there is no script.
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; img-src data:; "
        "style-src 'unsafe-inline'\">"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(name)} {escape(version)} — model report</title><style>{_CSS}</style></head>"
        f'<body><main><header><h1>{escape(name)}<span class="version">{escape(version)}</span></h1>'
        f"<p>{escape(task)} model · {_text(manifest.get('estimator'))} · "
        f"created {_text(manifest.get('created_at'))}</p>"
        f"</header>{''.join(sections)}<footer>model report · generated from the version's manifest</footer>"
        "</main></body></html>\n"
    )
