"""The HTML page in headless Chromium: fill the form, submit, read the label and the bars."""

import json

import pytest
import requests


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
    # Published without model.onnx: scikit-learn serves, and the page says so.
    path = page.locator("#serving-path").get_attribute("data-path")
    assert path == manifest["serving"]["path"] == "sklearn"
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


# ---- other kinds of model: a regressor, a mixed-type table, a classifier with scores only ----------
class Servers(dict):
    """GunicornServers by model name (one worker each), started on first use."""

    def __init__(self, folder, uri: str):
        super().__init__()
        self.folder, self.uri = folder, uri

    def __missing__(self, name: str):
        from helpers import GunicornServer

        env = {"MODEL_STORE": self.uri, "MODEL_NAME": name}
        server = GunicornServer(self.folder / name, env, workers=1, wait_ready=False)
        try:
            server.wait_until("/ready", timeout=30)
        except BaseException:
            server.stop()  # a server that never gets ready must not outlive the test
            raise
        self[name] = server
        return server


@pytest.fixture(scope="module")
def model_servers(tmp_path_factory):
    """Servers of a regressor, a mixed-table classifier (with its report) and a LinearSVC, from one
    local store."""
    from test_service_models import build_models, publish_models

    from model.report import render_report
    from model.store import ModelStore

    folder = tmp_path_factory.mktemp("kinds")
    uri = str(folder / "store")
    manifests = publish_models(uri, build_models(), names=["diabetes", "churn", "iris-svc"])
    ModelStore(uri).write_report("churn", manifests["churn"]["version"], render_report(manifests["churn"]))
    servers = Servers(folder, uri)
    yield servers
    for server in servers.values():
        server.stop()


def open_page(browser, server):
    page = browser.new_page(viewport={"width": 900, "height": 1000})
    errors, outside = [], []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("request", lambda r: None if r.url.startswith(server.url) else outside.append(r.url))
    page.goto(server.url + "/")
    return page, errors, outside


def submit(page):
    page.locator("#submit").click()
    page.locator("#result:not([hidden])").wait_for(timeout=10_000)


def test_a_regressor_shows_its_value(browser, model_servers, tmp_path_factory):
    server = model_servers["diabetes"]
    manifest = requests.get(server.url + "/model", timeout=5).json()
    page, errors, outside = open_page(browser, server)
    assert page.locator("#metric-r2").inner_text() == f"{manifest['metrics']['r2']:.4f}"
    assert page.locator("#report-link").count() == 0  # no report was written for it
    assert json.loads(page.locator("#instance").input_value()) == manifest["example"]

    expected = requests.post(server.url + "/predict", json={"instances": [manifest["example"]]},
                             timeout=5).json()["predictions"][0]["value"]
    submit(page)
    assert page.locator("#result-title").inner_text() == "Predicted value"
    assert float(page.locator("#result-label").get_attribute("data-value")) == pytest.approx(expected)
    assert float(page.locator("#result-label").inner_text()) == pytest.approx(expected, rel=1e-5)
    assert page.locator("#bars .bar").count() == 0
    page.screenshot(path=str(tmp_path_factory.mktemp("shots") / "regressor.png"), full_page=True)

    page.locator("#instance").fill("[1, 2]")
    page.locator("#submit").click()
    page.locator("#error:not([hidden])").wait_for(timeout=10_000)
    assert "has 2 values, the model expects 10" in page.locator("#error").inner_text()
    assert not errors and not outside
    page.close()


def test_a_mixed_table_classifier_shows_bars_and_links_its_report(browser, model_servers, tmp_path_factory):
    server = model_servers["churn"]
    manifest = requests.get(server.url + "/model", timeout=5).json()
    page, errors, outside = open_page(browser, server)
    assert "plan (category)" in page.locator("#input-kind").inner_text()
    assert json.loads(page.locator("#instance").input_value()) == manifest["example"]

    row = [70.0, "team", False, "slow billing support"]
    page.locator("#instance").fill(json.dumps(row))
    expected = requests.post(server.url + "/predict", json={"instances": [row]}, timeout=5).json()
    submit(page)
    prediction = expected["predictions"][0]
    assert page.locator("#result-label").inner_text() == prediction["label"]
    bars = page.locator("#bars .bar")
    assert bars.count() == 2 and bars.nth(0).get_attribute("data-class") == prediction["label"]
    assert float(bars.nth(0).get_attribute("data-probability")) == pytest.approx(
        prediction["probabilities"][prediction["label"]])
    shots = tmp_path_factory.mktemp("shots")
    page.screenshot(path=str(shots / "mixed.png"), full_page=True)

    page.locator("#instance").fill(json.dumps([70.0, "gold", False, "x"]))
    page.locator("#submit").click()
    page.locator("#error:not([hidden])").wait_for(timeout=10_000)
    assert 'plan: expected one of basic, pro, team; got "gold"' in page.locator("#error").inner_text()

    # The report opens from the page, and renders under its script-free policy.
    with page.expect_navigation():
        page.locator("#report-link").click()
    assert page.url == server.url + "/report"
    assert "churn" in page.content()
    page.screenshot(path=str(shots / "report.png"), full_page=True)
    assert not errors and not outside
    page.close()


def test_a_classifier_without_probabilities_shows_scores(browser, model_servers, tmp_path_factory):
    server = model_servers["iris-svc"]
    page, errors, outside = open_page(browser, server)
    row = [6.3, 2.8, 5.1, 1.5]
    page.locator("#instance").fill(json.dumps(row))
    expected = requests.post(server.url + "/predict", json={"instances": [row]},
                             timeout=5).json()["predictions"][0]
    submit(page)
    assert page.locator("#result-label").inner_text() == str(expected["label"])
    bars = page.locator("#bars .bar")
    assert bars.count() == 3
    scores = {bars.nth(i).get_attribute("data-class"): float(bars.nth(i).get_attribute("data-score"))
              for i in range(3)}
    assert scores == pytest.approx(expected["scores"])
    assert bars.nth(0).get_attribute("data-class") == str(expected["label"])  # the top score first
    assert "the highest wins" in page.locator("#bars-note").inner_text()
    page.screenshot(path=str(tmp_path_factory.mktemp("shots") / "scores.png"), full_page=True)
    assert not errors and not outside
    page.close()
