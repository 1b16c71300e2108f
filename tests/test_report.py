"""The HTML model report: real fitted models' metrics on the page, escaping, plots, comparison, Chromium.

The manifests are built from models fitted here (iris, diabetes) with sklearn.metrics, the way
training describes a version, so the numbers on the page are ones a real version would carry.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import re
import shutil
import subprocess
import sys

import pytest
from helpers import ROOT

from model.report import NO_EVALUATION, render_report

HOSTILE = "<script>alert(1)</script>"
PNG_URI = re.compile(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"')


def build_manifest(estimator, X, y, *, task: str, name: str, source: str, seed: int = 0) -> dict:
    """Fit `estimator` on a held-out split and describe it as a manifest with evaluation data."""
    from sklearn.metrics import (
        accuracy_score,
        classification_report,
        confusion_matrix,
        f1_score,
        mean_absolute_error,
        mean_squared_error,
        r2_score,
    )
    from sklearn.model_selection import train_test_split

    stratify = y if task == "classification" else None
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.25, random_state=seed, stratify=stratify
    )
    estimator.fit(X_train, y_train)
    steps = [step for _, step in estimator.steps] if hasattr(estimator, "steps") else [estimator]
    predicted = estimator.predict(X_test)
    manifest = {
        "name": name,
        "version": "20260101T000000Z-" + hashlib.sha256(repr(estimator).encode()).hexdigest()[:8],
        "created_at": "2026-01-01T00:00:00Z",
        "git_commit": "0123456789abcdef0123456789abcdef01234567",
        "estimator": " -> ".join(type(step).__name__ for step in steps),
        "params": {"seed": seed, "test_size": 0.25},
        "runtime": {"python": "3.11", "scikit_learn": "1.9.1"},
        "data": {
            "source": source,
            "sha256": "ab" * 32,
            "rows": len(y),
            "train_rows": len(y_train),
            "test_rows": len(y_test),
        },
        "input_schema": {"type": "tabular", "features": [f"x{i}" for i in range(X.shape[1])]},
        "task": task,
    }
    if task == "classification":
        labels = sorted(set(y.tolist()))
        report = classification_report(y_test, predicted, output_dict=True, zero_division=0)
        manifest["classes"] = labels
        manifest["metrics"] = {
            "accuracy": float(accuracy_score(y_test, predicted)),
            "macro_f1": float(f1_score(y_test, predicted, average="macro")),
            "per_class": {
                str(label): {k: float(v) for k, v in scores.items()}
                for label, scores in report.items()
                if label not in ("accuracy", "macro avg", "weighted avg")
            },
        }
        matrix = confusion_matrix(y_test, predicted, labels=labels)
        manifest["evaluation"] = {"confusion_matrix": {"labels": labels, "matrix": matrix.tolist()}}
    else:
        manifest["metrics"] = {
            "mae": float(mean_absolute_error(y_test, predicted)),
            "rmse": float(mean_squared_error(y_test, predicted) ** 0.5),
            "r2": float(r2_score(y_test, predicted)),
        }
        manifest["evaluation"] = {
            "actual": [float(v) for v in y_test[:1000]],
            "predicted": [float(v) for v in predicted[:1000]],
        }
    return manifest


@pytest.fixture(scope="module")
def iris_manifest():
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = load_iris(return_X_y=True)
    model = Pipeline([("scale", StandardScaler()), ("clf", LogisticRegression(max_iter=1000))])
    return build_manifest(model, X, y, task="classification", name="iris", source="sklearn:iris")


@pytest.fixture(scope="module")
def weak_iris_manifest():
    from sklearn.datasets import load_iris
    from sklearn.tree import DecisionTreeClassifier

    X, y = load_iris(return_X_y=True)
    # A stump tells one class from the other two and no more: clearly worse than the candidate.
    stump = DecisionTreeClassifier(max_depth=1, random_state=0)
    return build_manifest(stump, X, y, task="classification", name="iris", source="sklearn:iris")


@pytest.fixture(scope="module")
def diabetes_manifests():
    from sklearn.datasets import load_diabetes
    from sklearn.dummy import DummyRegressor
    from sklearn.ensemble import RandomForestRegressor

    X, y = load_diabetes(return_X_y=True)
    forest = RandomForestRegressor(n_estimators=20, max_depth=6, random_state=0, n_jobs=1)
    good = build_manifest(forest, X, y, task="regression", name="diabetes", source="sklearn:diabetes")
    mean = build_manifest(DummyRegressor(), X, y, task="regression", name="diabetes",
                          source="sklearn:diabetes")
    return good, mean


def _images(page_html: str) -> list[bytes]:
    return [base64.b64decode(data) for data in PNG_URI.findall(page_html)]


def _png_size(png: bytes) -> tuple[int, int]:
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    return int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")


def _comparison_row(page_html: str, metric: str) -> str:
    match = re.search(rf'<tr data-metric="{metric}" data-better="(\w+)">(.*?)</tr>', page_html)
    assert match, f"no comparison row for {metric}"
    return match.group(1), match.group(2)


def test_classification_report_shows_the_real_metrics_and_two_plots(iris_manifest):
    page = render_report(iris_manifest)
    metrics = iris_manifest["metrics"]
    assert 0.8 < metrics["accuracy"] <= 1.0
    assert f"{metrics['accuracy']:.4f}" in page
    assert f"{metrics['macro_f1']:.4f}" in page
    for label, scores in metrics["per_class"].items():
        row = re.search(rf"<tr><th>{label}</th>(.*?)</tr>", page).group(1)
        cells = re.findall(r'<td class="num">([^<]*)</td>', row)
        assert cells == [f"{scores['precision']:.4f}", f"{scores['recall']:.4f}",
                         f"{scores['f1-score']:.4f}", str(int(scores["support"]))]
    assert "<h1>iris" in page and iris_manifest["version"] in page
    images = _images(page)
    assert len(images) == 2  # confusion matrix, per-class bars
    for png in images:
        width, height = _png_size(png)
        assert width > 400 and height > 300
    assert 'alt="Confusion matrix over 3 classes"' in page
    assert "abababababab</code>" in page  # the data digest, shortened
    assert "StandardScaler -&gt; LogisticRegression" in page
    assert NO_EVALUATION not in page


def test_regression_report_shows_the_real_metrics_and_two_plots(diabetes_manifests):
    good, _ = diabetes_manifests
    page = render_report(good)
    for key in ("mae", "rmse", "r2"):
        assert f"{good['metrics'][key]:.4f}" in page
    assert 0.2 < good["metrics"]["r2"] < 0.8
    assert len(_images(page)) == 2  # predicted vs actual, residuals
    assert "Predicted against actual values" in page and "Histogram of" in page
    assert "Confusion matrix" not in page and "per-class" not in page


def test_every_manifest_string_is_escaped(iris_manifest, weak_iris_manifest):
    per_class = iris_manifest["metrics"]["per_class"]
    matrix = iris_manifest["evaluation"]["confusion_matrix"]["matrix"]
    hostile = {
        **iris_manifest,
        "name": HOSTILE,
        "version": HOSTILE,
        "estimator": HOSTILE,
        "git_commit": HOSTILE,
        "created_at": HOSTILE,
        "params": {HOSTILE: HOSTILE},
        "runtime": {"python": HOSTILE},
        "data": {**iris_manifest["data"], "source": HOSTILE, "sha256": HOSTILE},
        "input_schema": {
            "type": HOSTILE, "columns": [{"name": HOSTILE, "kind": HOSTILE, "values": [HOSTILE]}],
        },
        "classes": [HOSTILE, "1", "2"],
        "metrics": {
            **iris_manifest["metrics"],
            "per_class": {HOSTILE if k == "0" else k: v for k, v in per_class.items()},
        },
        "evaluation": {"confusion_matrix": {"labels": [HOSTILE, "1", "2"], "matrix": matrix}},
    }
    against = {**weak_iris_manifest, "name": HOSTILE, "version": HOSTILE}
    page = render_report(hostile, against=against)
    assert "<script" not in page.lower()
    assert page.count("&lt;script&gt;alert(1)&lt;/script&gt;") >= 12
    # The hostile class label still gets its plots (drawn as text, not parsed).
    assert len(_images(page)) == 2


def test_comparison_says_which_classifier_is_better(iris_manifest, weak_iris_manifest):
    page = render_report(iris_manifest, against=weak_iris_manifest)
    assert "Compared with" in page and weak_iris_manifest["version"] in page
    for key in ("accuracy", "macro_f1"):
        mine, theirs = iris_manifest["metrics"][key], weak_iris_manifest["metrics"][key]
        assert mine > theirs
        better, row = _comparison_row(page, key)
        assert better == "candidate"
        assert f"{mine:.4f}" in row and f"{theirs:.4f}" in row and f"{mine - theirs:+.4f}" in row
        assert "higher is better" in row
    # Swapped, the other one wins.
    swapped = render_report(weak_iris_manifest, against=iris_manifest)
    assert _comparison_row(swapped, "accuracy")[0] == "other"
    # Against itself: a tie, a zero difference.
    same = render_report(iris_manifest, against=iris_manifest)
    better, row = _comparison_row(same, "accuracy")
    assert better == "tie" and "+0.0000" in row
    assert "different data" not in same


def test_comparison_of_regressors_knows_lower_error_is_better(diabetes_manifests):
    good, mean = diabetes_manifests
    assert good["metrics"]["mae"] < mean["metrics"]["mae"]
    page = render_report(good, against=mean)
    for key in ("mae", "rmse"):
        better, row = _comparison_row(page, key)
        assert better == "candidate", key  # the candidate's error is smaller: it wins
        assert "lower is better" in row
        assert f"{good['metrics'][key] - mean['metrics'][key]:+.4f}" in row
        assert row.startswith("<th>" + key.upper())
    better, row = _comparison_row(page, "r2")
    assert better == "candidate" and "higher is better" in row
    swapped = render_report(mean, against=good)
    assert [_comparison_row(swapped, key)[0] for key in ("mae", "rmse", "r2")] == ["other"] * 3


def test_comparison_across_tasks_is_refused_with_a_reason(iris_manifest, diabetes_manifests):
    page = render_report(iris_manifest, against=diabetes_manifests[0])
    assert "different tasks" in page and "classification here, regression there" in page
    assert "data-metric=" not in page


def test_old_manifest_without_evaluation_or_task_still_renders(iris_manifest, diabetes_manifests):
    old = {key: value for key, value in iris_manifest.items() if key not in ("evaluation", "task")}
    page = render_report(old)
    assert NO_EVALUATION in page
    assert "data:image/png" not in page
    assert f"{old['metrics']['accuracy']:.4f}" in page and "classification model" in page
    regression = {key: value for key, value in diabetes_manifests[0].items() if key != "evaluation"}
    page = render_report(regression, against=diabetes_manifests[1])
    assert NO_EVALUATION in page and "data:image/png" not in page
    assert _comparison_row(page, "mae")[0] == "candidate"
    # The bare minimum: a name and nothing else.
    assert "<h1>bare" in render_report({"name": "bare"})


def test_malformed_evaluation_is_a_note_not_a_crash(iris_manifest, diabetes_manifests):
    broken = {**iris_manifest, "evaluation": {"confusion_matrix": {"labels": [0, 1, 2], "matrix": [[1, 2]]}}}
    page = render_report(broken)
    assert "could not be drawn" in page and "expected 3 x 3" in page
    assert len(_images(page)) == 1  # the per-class bars still come from the metrics
    good = diabetes_manifests[0]
    uneven = {**good, "evaluation": {"actual": [1.0, 2.0, 3.0], "predicted": [1.0, "x"]}}
    assert "could not be drawn" in render_report(uneven)
    short = {**good, "evaluation": {"actual": [1.0, 2.0, 3.0], "predicted": [1.0, 2.0]}}
    assert "3 actual values but 2 predicted" in render_report(short)


def test_many_classes_render(tmp_path):
    from sklearn.datasets import make_classification
    from sklearn.naive_bayes import GaussianNB

    X, y = make_classification(n_samples=1500, n_features=20, n_informative=12, n_classes=30,
                               n_clusters_per_class=1, random_state=0)
    manifest = build_manifest(GaussianNB(), X, y, task="classification", name="thirty", source="synthetic")
    page = render_report(manifest)
    assert len(_images(page)) == 2
    assert "<summary>30 classes</summary>" in page
    (tmp_path / "thirty.html").write_text(page)


def test_importing_the_module_draws_nothing():
    code = "import sys, model.report, model.report_plots; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_page_fetches_nothing(iris_manifest, weak_iris_manifest):
    page = render_report(iris_manifest, against=weak_iris_manifest)
    assert not re.search(r"(src|href)=\"(?!data:)", page)
    assert "http://" not in page and "https://" not in page and "@import" not in page
    assert "default-src 'none'" in page



@pytest.mark.parametrize("kind", ["classifier", "regressor"])
def test_report_renders_in_chromium(kind, browser, iris_manifest, weak_iris_manifest,
                                    diabetes_manifests, tmp_path):
    from matplotlib.image import imread

    if kind == "classifier":
        page_html = render_report(iris_manifest, against=weak_iris_manifest)
    else:
        page_html = render_report(diabetes_manifests[0], against=diabetes_manifests[1])
    path = tmp_path / f"report-{kind}.html"
    path.write_text(page_html, encoding="utf-8")
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    errors, outside = [], []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("request", lambda r: None if r.url.startswith(("file://", "data:")) else outside.append(r.url))
    page.goto(path.as_uri())
    widths = page.eval_on_selector_all("img", "images => images.map(i => i.complete ? i.naturalWidth : 0)")
    assert len(widths) == 2 and all(width > 0 for width in widths)
    # Nothing runs off the side: the page fits its viewport width.
    assert page.evaluate("document.documentElement.scrollWidth") <= 1200
    shot = tmp_path / f"report-{kind}.png"
    page.screenshot(path=str(shot), full_page=True)
    page.close()
    assert not errors and not outside

    pixels = imread(io.BytesIO(shot.read_bytes()), format="png")[..., :3]
    assert pixels.shape[0] > 900  # a full page, longer than the viewport
    not_white = (pixels < 0.9).any(axis=-1).mean()
    assert not_white > 0.05 and pixels.std() > 0.05
    # REPORT_SHOTS=/some/dir keeps the screenshots for a person to look at.
    if os.environ.get("REPORT_SHOTS"):
        os.makedirs(os.environ["REPORT_SHOTS"], exist_ok=True)
        shutil.copy(shot, os.path.join(os.environ["REPORT_SHOTS"], shot.name))
