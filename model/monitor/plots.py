"""The drift report's plot: training against observed shares per bin, for one feature.

Drawn like the model report's plots (model/report_plots.py: an Agg figure, no pyplot state, a PNG
data URI); matplotlib is imported only when a plot is drawn, so neither the service nor a monitor
run without --report needs it.
"""

from __future__ import annotations

from model.drift import Drift
from model.report_plots import AMBER, BLUE, INK, Plot, _encode, _figure, _label_ticks, _short

MAX_BARS = 52  # a category's 50 values plus "other" (and one spare): more are cut to the largest


def shares_plot(result: Drift) -> Plot:
    """Grouped bars: each bin's share in training (blue; the held-out predictions' for the
    predictions) and in the captured records (amber)."""
    import numpy as np

    bins, expected, observed = list(result.bins), list(result.expected), list(result.observed)
    if len(bins) > MAX_BARS:
        # Keep the bins where the two distributions differ most: the ones the PSI comes from.
        order = sorted(range(len(bins)), key=lambda i: -abs(observed[i] - expected[i]))[:MAX_BARS]
        order.sort()
        bins, expected, observed = ([seq[i] for i in order] for seq in (bins, expected, observed))
    n = len(bins)
    names = [_short(b) for b in bins]
    width = min(9.0, max(4.2, 0.32 * n + 1.8))
    figure = _figure(width, 2.7)
    axes = figure.add_subplot()
    x = np.arange(n)
    baseline = "held-out" if result.kind == "predictions" else "training"
    axes.bar(x - 0.2, expected, 0.4, label=baseline, color=BLUE)
    axes.bar(x + 0.2, observed, 0.4, label="observed", color=AMBER)
    top = max([*expected, *observed, 0.01])
    axes.set_ylim(0, top * 1.4)  # headroom for the legend above the bars
    axes.set_xlim(-0.6, n - 0.4)
    axes.set_ylabel("share", fontsize=8)
    axes.tick_params(axis="y", labelsize=7)
    axes.grid(axis="y", alpha=0.3)
    axes.set_axisbelow(True)
    axes.spines[["top", "right"]].set_visible(False)
    rotate = n > 6 or max((len(name) for name in names), default=0) > 6
    _label_ticks(axes.set_xticks, names, rotate=rotate, fontsize=7)
    # parse_math=False: a feature named "$x" is text, not mathtext.
    axes.set_title(f"{_short(result.name)} · PSI {result.psi:.3f}", color=INK, fontsize=9,
                   parse_math=False)
    # Inside the axes, where the bars leave room: above them it read as the caption of the plot above.
    axes.legend(loc="best", frameon=False, fontsize=7)
    return _encode(figure, f"{result.name}: training and observed shares over {n} bins")
