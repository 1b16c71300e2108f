"""The report's plots, each drawn with matplotlib and returned as an embeddable PNG data URI.

matplotlib is imported inside the functions: importing the model package must stay cheap, and the
service never draws. Figures are built with `Figure` + `FigureCanvasAgg`, so no global backend is
switched and nothing touches pyplot's state (safe in a process that also serves requests).
"""

from __future__ import annotations

import base64
import io
import math
from dataclasses import dataclass

# Rendered at 150 dpi but displayed at 96 CSS px per inch: crisp on high-density screens.
RENDER_DPI = 150
CSS_DPI = 96
# Above this many classes the confusion matrix loses its per-cell counts: they would overlap.
ANNOTATE_MAX_CLASSES = 25
# Above this many classes only every k-th tick is labelled.
TICK_LABELS_MAX = 60
LABEL_CHARS = 18

BLUE = "#2563eb"
AMBER = "#f59e0b"
RED = "#dc2626"
INK = "#1f2937"


class PlotError(ValueError):
    """The evaluation data cannot be drawn (wrong shape, empty, not numbers)."""


@dataclass(frozen=True)
class Plot:
    """A drawn figure: its PNG as a data URI, the width to show it at (CSS px) and its alt text."""

    uri: str
    width: int
    alt: str


def _figure(width: float, height: float, layout: str = "constrained"):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=RENDER_DPI, layout=layout)
    FigureCanvasAgg(figure)
    return figure


def _encode(figure, alt: str) -> Plot:
    buffer = io.BytesIO()
    # No "Software" chunk: the same manifest gives the same bytes whatever matplotlib drew it. A tight
    # box drops the margin left by square (fixed-aspect) axes in a figure sized before its labels.
    figure.savefig(
        buffer, format="png", dpi=RENDER_DPI, metadata={"Software": None}, facecolor="white",
        bbox_inches="tight", pad_inches=0.08,
    )
    png = buffer.getvalue()
    # The PNG's own width (bytes 16-20 of its IHDR chunk), shown at CSS_DPI.
    width = round(int.from_bytes(png[16:20], "big") * CSS_DPI / RENDER_DPI)
    uri = "data:image/png;base64," + base64.b64encode(png).decode("ascii")
    return Plot(uri=uri, width=width, alt=alt)


def _short(label) -> str:
    text = str(label)
    return text if len(text) <= LABEL_CHARS else text[: LABEL_CHARS - 1] + "…"


def _label_ticks(set_ticks, names: list[str], *, rotate: bool, fontsize: float) -> None:
    step = max(1, math.ceil(len(names) / TICK_LABELS_MAX))
    positions = list(range(0, len(names), step))
    # parse_math=False: a class named "$x" is text, not (possibly invalid) mathtext.
    extra = {"rotation": 45, "ha": "right", "rotation_mode": "anchor"} if rotate else {}
    set_ticks(positions, [names[i] for i in positions], parse_math=False, fontsize=fontsize, **extra)


def _numbers(values, what: str):
    import numpy as np

    try:
        array = np.asarray(values, dtype=float)
    except (TypeError, ValueError):
        raise PlotError(f"{what} holds values that are not numbers") from None
    return array


def confusion_matrix_plot(labels: list, matrix: list[list]) -> Plot:
    """Heatmap of counts, rows the true label and columns the predicted one."""
    import numpy as np

    counts = _numbers(matrix, "the confusion matrix")
    n = len(labels)
    if n == 0 or counts.shape != (n, n):
        raise PlotError(f"the confusion matrix is {counts.shape}, expected {n} x {n} for {n} labels")
    if not np.isfinite(counts).all() or (counts < 0).any():
        raise PlotError("the confusion matrix holds negative or non-finite counts")
    names = [_short(label) for label in labels]
    # Small matrices sit beside the per-class bars (two 4.8 in figures fit the page); big ones grow.
    side = min(10.0, max(4.0, 0.3 * n + 2.4))
    fontsize = 9 if n <= 12 else max(5.0, 9 - (n - 12) / 6)
    figure = _figure(side + 0.8, side, layout="compressed")
    axes = figure.add_subplot()
    image = axes.imshow(counts, cmap="Blues", vmin=0, interpolation="nearest")
    figure.colorbar(image, ax=axes, shrink=0.8, label="count")
    rotate = n > 6 or max(len(name) for name in names) > 4
    _label_ticks(axes.set_xticks, names, rotate=rotate, fontsize=fontsize)
    _label_ticks(axes.set_yticks, names, rotate=False, fontsize=fontsize)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    axes.set_title("Confusion matrix", color=INK)
    if n <= ANNOTATE_MAX_CLASSES:
        # White on dark cells, ink on light ones; zeros are greyed so the errors stand out.
        threshold = counts.max() / 2 if counts.max() > 0 else math.inf
        for (row, column), value in np.ndenumerate(counts):
            colour = "white" if value > threshold else ("#9ca3af" if value == 0 else INK)
            axes.text(column, row, f"{value:g}", ha="center", va="center", color=colour, fontsize=fontsize)
    return _encode(figure, f"Confusion matrix over {n} classes")


def per_class_plot(labels: list[str], precision: list[float], recall: list[float]) -> Plot:
    """Grouped bars: precision and recall for each class."""
    import numpy as np

    n = len(labels)
    if n == 0:
        raise PlotError("there are no per-class scores")
    precision_values = _numbers(precision, "the per-class precision")
    recall_values = _numbers(recall, "the per-class recall")
    names = [_short(label) for label in labels]
    width = min(10.0, max(4.8, 0.36 * n + 2.2))
    figure = _figure(width, 3.9)
    axes = figure.add_subplot()
    x = np.arange(n)
    axes.bar(x - 0.2, precision_values, 0.4, label="precision", color=BLUE)
    axes.bar(x + 0.2, recall_values, 0.4, label="recall", color=AMBER)
    axes.set_ylim(0, 1.05)
    axes.set_xlim(-0.6, n - 0.4)
    axes.set_ylabel("score")
    axes.set_xlabel("class")
    axes.grid(axis="y", alpha=0.3)
    axes.set_axisbelow(True)
    axes.spines[["top", "right"]].set_visible(False)
    rotate = n > 10 or max(len(name) for name in names) > 4
    _label_ticks(axes.set_xticks, names, rotate=rotate, fontsize=9 if n <= 20 else 7)
    figure.legend(loc="outside upper center", ncols=2, frameon=False)
    return _encode(figure, f"Precision and recall for each of {n} classes")


def _pairs(actual, predicted):
    import numpy as np

    actual_values = _numbers(actual, "evaluation.actual").ravel()
    predicted_values = _numbers(predicted, "evaluation.predicted").ravel()
    if actual_values.shape != predicted_values.shape:
        raise PlotError(
            f"evaluation has {actual_values.size} actual values but {predicted_values.size} predicted ones"
        )
    keep = np.isfinite(actual_values) & np.isfinite(predicted_values)
    if not keep.any():
        raise PlotError("evaluation has no finite (actual, predicted) pairs")
    return actual_values[keep], predicted_values[keep]


def predicted_vs_actual_plot(actual: list[float], predicted: list[float]) -> Plot:
    """Scatter of predicted against actual values, with the y = x line a perfect model would sit on."""
    actual_values, predicted_values = _pairs(actual, predicted)
    low = float(min(actual_values.min(), predicted_values.min()))
    high = float(max(actual_values.max(), predicted_values.max()))
    pad = (high - low) * 0.04 or 1.0
    figure = _figure(5.0, 4.6, layout="compressed")
    axes = figure.add_subplot()
    axes.scatter(actual_values, predicted_values, s=14, alpha=0.55, color=BLUE, edgecolors="none")
    axes.plot([low - pad, high + pad], [low - pad, high + pad], color=RED, lw=1.2, ls="--", label="y = x")
    axes.set_xlim(low - pad, high + pad)
    axes.set_ylim(low - pad, high + pad)
    axes.set_aspect("equal", adjustable="box")
    axes.set_xlabel("actual")
    axes.set_ylabel("predicted")
    axes.set_title(f"Predicted vs actual ({actual_values.size} held-out points)", color=INK, fontsize=10)
    axes.grid(alpha=0.3)
    axes.legend(loc="upper left", frameon=False)
    return _encode(figure, f"Predicted against actual values for {actual_values.size} held-out points")


def residuals_plot(actual: list[float], predicted: list[float]) -> Plot:
    """Histogram of residuals (actual - predicted), with zero marked."""
    actual_values, predicted_values = _pairs(actual, predicted)
    residuals = actual_values - predicted_values
    bins = min(40, max(10, round(math.sqrt(residuals.size))))
    figure = _figure(5.0, 4.6)
    axes = figure.add_subplot()
    axes.hist(residuals, bins=bins, color=BLUE, alpha=0.85, edgecolor="white")
    axes.axvline(0, color=RED, lw=1.2, ls="--")
    axes.set_xlabel("residual (actual \N{MINUS SIGN} predicted)")
    axes.set_ylabel("count")
    title = f"Residuals (mean {residuals.mean():.3g}, sd {residuals.std():.3g})"
    axes.set_title(title, color=INK, fontsize=10)
    axes.grid(axis="y", alpha=0.3)
    axes.set_axisbelow(True)
    axes.spines[["top", "right"]].set_visible(False)
    return _encode(figure, f"Histogram of {residuals.size} residuals")
