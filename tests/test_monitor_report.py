"""The drift report of `python -m model monitor --report`: what it shows, escaping, no fetches, and a
real render in headless Chromium (screenshot kept under $REPORT_SHOTS when set)."""

from __future__ import annotations

import base64
import io
import os
import re
import shutil
import subprocess
import sys
from datetime import timedelta

import pytest
from helpers import ROOT, cli_fails
from test_monitor import NOW, digits, digits_trained, monitor, scaled, write_records  # noqa: F401

from model.exit_codes import ExitCode

HOSTILE = "<script>alert(1)</script>"
PNG_URI = re.compile(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"')


@pytest.fixture
def drift_report(digits, tmp_path):  # noqa: F811 - the fixture imported above
    """The report of a digits version whose traffic was scaled by 1.3, and its JSON result."""
    import json

    write_records(digits["uri"], "digits", scaled(digits["held_out"]))
    page, found = tmp_path / "report.html", tmp_path / "drift.json"
    cli_fails(monitor(digits["uri"], "--report", str(page), "--json", str(found)), ExitCode.DRIFT,
              "drift in digits")
    return page.read_text(encoding="utf-8"), json.loads(found.read_text())


def test_the_report_shows_every_feature_and_plots_the_drifting_ones(drift_report):
    page, found = drift_report
    features = [r for r in found["results"] if r["kind"] != "predictions"]
    drifting = [name for name in found["drifting"] if name != "predictions"]
    assert len(features) == 64 and len(drifting) > 20
    rows = re.findall(r'<tr( class="drifting")?><th>(pixel_\d_\d)</th>', page)
    assert len(rows) == 64
    assert {name for css, name in rows if css} == set(drifting)
    images = PNG_URI.findall(page)
    assert len(images) == len(drifting) + 1  # one per drifting feature, one for the predictions
    for data in images[:3]:
        png = base64.b64decode(data)
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and int.from_bytes(png[16:20], "big") > 300
    assert 'class="verdict drift">drift' in page and "360" in page
    assert "PSI &gt;= 0.25" in page and "at least 200 records" in page
    top = max(features, key=lambda r: r["psi"])
    assert f"<th>{top['name']}</th><td>number</td><td class=\"num\">{top['psi']:.3f}</td>" in page
    assert f'alt="{top["name"]}: training and observed shares over' in page


def test_the_report_fetches_nothing(drift_report):
    page, _ = drift_report
    assert not re.search(r"(src|href)=\"(?!data:)", page)
    assert "http://" not in page and "https://" not in page and "@import" not in page
    assert "default-src 'none'" in page and "<script" not in page


def test_every_string_is_escaped():
    """A profile built from a table whose column names and values are hostile (model.profile)."""
    import pandas as pd

    from model.capture_files import format_time
    from model.drift import Thresholds, compare
    from model.monitor.check import MonitorResult
    from model.monitor.records import Captured, Window
    from model.monitor.report import render_drift_report
    from model.profile import profile

    frame = pd.DataFrame({HOSTILE: [HOSTILE, "b", "c", "b"] * 50, "age": list(range(200))})
    schema = {"type": "tabular", "columns": [{"name": HOSTILE, "kind": "category"},
                                              {"name": "age", "kind": "number"}]}
    baseline = profile(frame, schema, [HOSTILE, "x"] * 100, "classification", classes=[HOSTILE, "x"])
    inputs = [{HOSTILE: "new & <b>bold</b>", "age": 500.0}] * 300
    results = compare(baseline, inputs, [{"label": HOSTILE}] * 300, Thresholds())
    assert all(r.reasons for r in results)
    captured = Captured(records=300, sampled=300, files=1, inputs=inputs)
    captured.skipped[HOSTILE] = 2
    window = Window(NOW - timedelta(hours=1), NOW)
    result = MonitorResult(model=HOSTILE, version=HOSTILE, store=HOSTILE, window=window, captured=captured,
                           thresholds=Thresholds(), results=results, not_compared={HOSTILE: HOSTILE})
    page = render_drift_report(result)
    assert "<script" not in page.lower() and "<b>bold" not in page
    assert page.count("&lt;script&gt;alert(1)&lt;/script&gt;") >= 6
    assert len(PNG_URI.findall(page)) == 3  # two features, the predictions
    assert format_time(NOW)[:10] in page


def test_no_records_and_too_few_records_still_render(digits, tmp_path):  # noqa: F811
    page = tmp_path / "none.html"
    cli_fails(monitor(digits["uri"], "--report", str(page)), ExitCode.NOT_FOUND, "CAPTURE_RATE")
    html = page.read_text()
    assert 'class="verdict unknown">no records' in html and "data:image/png" not in html
    write_records(digits["uri"], "digits", digits["held_out"][:40])
    page = tmp_path / "few.html"
    assert monitor(digits["uri"], "--report", str(page)).returncode == 0
    html = page.read_text()
    assert "too few records to judge: 40 &lt; 200" in html


def test_monitoring_without_a_report_does_not_import_matplotlib():
    code = ("import sys, model.cli, model.monitor.check, model.monitor.records, model.monitor.report; "
            "print('matplotlib' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"



def test_the_report_renders_in_chromium(browser, drift_report, tmp_path):
    from matplotlib.image import imread

    page_html, found = drift_report
    path = tmp_path / "drift-report.html"
    path.write_text(page_html, encoding="utf-8")
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    errors, outside = [], []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("request", lambda r: None if r.url.startswith(("file://", "data:")) else outside.append(r.url))
    page.goto(path.as_uri())
    widths = page.eval_on_selector_all("img", "images => images.map(i => i.complete ? i.naturalWidth : 0)")
    features = [name for name in found["drifting"] if name != "predictions"]
    assert len(widths) == len(features) + 1 and all(width > 0 for width in widths)
    assert page.evaluate("document.documentElement.scrollWidth") <= 1200  # nothing runs off the side
    # The table is visible, and a drifting row is highlighted.
    assert page.locator("tr.drifting").count() == len(found["drifting"])
    assert page.locator("h1").inner_text().startswith("digits")
    shot = tmp_path / "drift-report.png"
    page.screenshot(path=str(shot), full_page=True)
    page.close()
    assert not errors and not outside

    pixels = imread(io.BytesIO(shot.read_bytes()), format="png")[..., :3]
    assert pixels.shape[0] > 900
    not_white = (pixels < 0.9).any(axis=-1).mean()
    assert not_white > 0.05 and pixels.std() > 0.05
    # REPORT_SHOTS=/some/dir keeps the screenshot for a person to look at.
    if os.environ.get("REPORT_SHOTS"):
        os.makedirs(os.environ["REPORT_SHOTS"], exist_ok=True)
        shutil.copy(shot, os.path.join(os.environ["REPORT_SHOTS"], shot.name))
