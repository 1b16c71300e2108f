"""The drift report: one self-contained HTML page of a `python -m model monitor` run.

Header (model, version, window, records, thresholds, verdict), a table of every compared feature
(PSI, outside the training range, unseen, missing, why it drifts), one small bar plot per drifting
feature and one for the predictions (training against observed shares per bin). Like the model
report (model/report.py, whose style it shares) it fetches nothing: the plots are PNG data URIs,
the CSS is inline, the Content-Security-Policy forbids the rest, and every string from the store,
the records or the profile is escaped (a feature name or a category value is user input).
"""

from __future__ import annotations

from html import escape

from model.monitor.check import DRIFT, NO_DRIFT, MonitorResult
from model.report import _CSS, _figure, _note
from model.report_plots import PlotError

MAX_PLOTS = 100  # beyond this many drifting features the page would weigh megabytes: the rest listed

_EXTRA_CSS = """
.verdict { display: inline-block; border-radius: 6px; padding: 2px 10px; font-weight: 650; }
.verdict.drift { background: #fee2e2; color: #991b1b; }
.verdict.ok { background: #d1fae5; color: #065f46; }
.verdict.unknown { background: #fef3c7; color: #92400e; }
tr.drifting th, tr.drifting td { background: #fef2f2; }
"""


def _percent(value: float) -> str:
    return f"{value:.1%}" if value else '<span class="muted">0</span>'


def _verdict(result: MonitorResult) -> str:
    css = {DRIFT: "drift", NO_DRIFT: "ok"}.get(result.verdict, "unknown")
    return f'<span class="verdict {css}">{escape(result.verdict)}</span>'


def _header(result: MonitorResult) -> str:
    captured, limits = result.captured, result.thresholds
    tiles = [("records", f"{captured.records:,}"), ("drifting", str(len(result.drifting))),
             ("files", f"{captured.files:,}"), ("skipped", f"{captured.skipped_total:,}")]
    tiles_html = "".join(f'<div class="tile"><div class="label">{escape(label)}</div>'
                         f'<div class="value">{escape(value)}</div></div>' for label, value in tiles)
    rows = [
        ("verdict", _verdict(result)),
        ("window", escape(str(result.window))),
        ("store", f"<code>{escape(result.store)}</code>"),
        ("thresholds", escape(f"PSI >= {limits.psi:g}; outside the training range >= "
                              f"{limits.out_of_range:.0%}; unseen categories >= {limits.unseen:.0%}; "
                              "token coverage drop >= "
                              f"{limits.coverage_drop:.0%}; at least {limits.min_records} records")),
    ]
    if captured.sampled < captured.records:
        rows.append(("sample", escape(f"a random {captured.sampled:,} of the {captured.records:,} records")))
    if captured.skipped:
        reasons = ", ".join(f"{count} {reason}" for reason, count in sorted(captured.skipped.items()))
        rows.append(("skipped", escape(reasons)))
    body = "".join(f"<tr><th>{escape(key)}</th><td>{value}</td></tr>" for key, value in rows)
    return (f'<section><h2>Summary</h2><div class="tiles">{tiles_html}</div>'
            f"<table><tbody>{body}</tbody></table>{_note(result.last_line())}</section>")


def _features_table(result: MonitorResult) -> str:
    rows = []
    for r in result.features + [p for p in [result.predictions] if p is not None]:
        css = ' class="drifting"' if r.reasons else ""
        coverage = "" if r.coverage is None else escape(f"coverage {r.coverage:.1%} (training "
                                                         f"{(r.baseline_coverage or 0):.1%})")
        why = escape("; ".join(r.reasons)) or '<span class="muted">no</span>'
        rows.append(f"<tr{css}><th>{escape(r.name)}</th><td>{escape(r.kind)}</td>"
                    f'<td class="num">{r.psi:.3f}</td><td class="num">{_percent(r.out_of_range)}</td>'
                    f'<td class="num">{_percent(r.unseen)}</td><td class="num">{_percent(r.missing)}</td>'
                    f"<td>{why}{' · ' + coverage if coverage else ''}</td></tr>")
    if not rows:
        return '<section><h2>Features</h2><p class="muted">nothing compared</p></section>'
    missing = "".join(f"<li><code>{escape(name)}</code>: {escape(why)}</li>"
                      for name, why in result.not_compared.items())
    skipped = f"<h3>Not compared</h3><ul>{missing}</ul>" if missing else ""
    return ("<section><h2>Features</h2><table><thead><tr><th>feature</th><th>kind</th>"
            '<th class="num">PSI</th><th class="num">outside range</th><th class="num">unseen</th>'
            '<th class="num">missing</th><th>drift</th></tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table>{skipped}</section>")


def _plots(result: MonitorResult) -> str:
    from model.monitor.plots import shares_plot

    chosen = [r for r in result.features if r.reasons]
    figures, notes = [], []
    for r in chosen[:MAX_PLOTS]:
        try:
            figures.append(_figure(shares_plot(r)))
        except (PlotError, ValueError) as exc:
            notes.append(_note(f"{r.name}: the plot could not be drawn ({exc})"))
    if len(chosen) > MAX_PLOTS:
        notes.append(_note(f"{len(chosen) - MAX_PLOTS} more drifting features are not plotted "
                           "(see the table)"))
    drifting = '<p class="muted">No feature crossed a threshold.</p>'
    if figures:
        drifting = f'<h3>Drifting features</h3><div class="plots">{"".join(figures)}</div>'
    elif chosen:
        drifting = "<h3>Drifting features</h3>"
    predicted = ""
    if result.predictions is not None and result.predictions.bins:
        predicted = ("<h3>Predictions against the held-out ones</h3>"
                     f'<div class="plots">{_figure(shares_plot(result.predictions))}</div>')
    return (f"<section><h2>Training and observed shares</h2>{drifting}{''.join(notes)}{predicted}"
            "</section>")


def render_drift_report(result: MonitorResult) -> str:
    """The HTML page of a monitor run (draws with matplotlib, imported here on use)."""
    sections = [_header(result)]
    if result.captured.records:
        sections += [_features_table(result), _plots(result)]
    title = f"{result.model} {result.version}"
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        # Nothing may be fetched: images are data URIs, the style is inline, and there is no script.
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; img-src data:; "
        "style-src 'unsafe-inline'\">"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)} — drift report</title><style>{_CSS}{_EXTRA_CSS}</style></head>"
        f'<body><main><header><h1>{escape(result.model)}<span class="version">{escape(result.version)}'
        f"</span></h1><p>drift report · {escape(str(result.window))} · {result.captured.records:,} records · "
        f"{_verdict(result)}</p></header>{''.join(sections)}"
        "<footer>drift report · captured records against the version's training profile "
        "(python -m model monitor)</footer></main></body></html>\n"
    )
