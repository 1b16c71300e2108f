"""The HTML page in headless Chromium: fill the form, submit, read the label and the bars."""

import shutil

import pytest
import requests
from helpers import require_tool

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def browser():
    require_tool("chromium", "the page test drives a real browser")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium"), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def test_form_predicts_and_draws_bars(browser, gunicorn_server, tmp_path_factory):
    from sklearn.datasets import load_digits

    manifest = requests.get(gunicorn_server.url + "/model", timeout=5).json()
    page = browser.new_page(viewport={"width": 900, "height": 1100})
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    outside = []
    page.on("request", lambda r: None if r.url.startswith(gunicorn_server.url) else outside.append(r.url))
    page.goto(gunicorn_server.url + "/")

    assert manifest["version"] in page.locator("#model-version").inner_text()
    assert page.locator("#metric-accuracy").inner_text() == f"{manifest['metrics']['accuracy']:.4f}"
    prefilled = page.locator("#instance").input_value()
    assert [float(v) for v in prefilled.strip("[]").split(",")] == manifest["example"]

    # A digit the model gets right, typed into the form: the page must show the API's answer.
    digits = load_digits()
    row, truth = digits.data[7].tolist(), int(digits.target[7])
    api = requests.post(gunicorn_server.url + "/predict", json={"instances": [row]}, timeout=5).json()
    expected = api["predictions"][0]
    assert expected["label"] == truth
    page.locator("#instance").fill(str(row))
    page.locator("#submit").click()
    page.locator("#result:not([hidden])").wait_for(timeout=10_000)

    assert page.locator("#result-label").inner_text() == str(truth)
    assert manifest["version"] in page.locator("#result-version").inner_text()
    bars = page.locator("#bars .bar")
    assert bars.count() == len(manifest["classes"])
    first = bars.nth(0)
    assert first.get_attribute("data-class") == str(truth)
    assert float(first.get_attribute("data-probability")) == pytest.approx(
        expected["probabilities"][str(truth)]
    )
    widths = [bars.nth(i).locator(".fill").bounding_box()["width"] for i in range(bars.count())]
    assert widths == sorted(widths, reverse=True) and widths[0] > 10 * max(widths[1], 1)
    shot = tmp_path_factory.mktemp("page") / "page.png"
    page.screenshot(path=str(shot), full_page=True)

    # Bad input shows the API's explanation instead of a result.
    page.locator("#instance").fill("[1, 2, 3]")
    page.locator("#submit").click()
    page.locator("#error:not([hidden])").wait_for(timeout=10_000)
    assert "has 3 values, the model expects 64" in page.locator("#error").inner_text()
    assert page.locator("#result").is_hidden()
    assert not errors and not outside
    page.close()
