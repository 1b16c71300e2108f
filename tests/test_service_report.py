"""GET /report: the served version's HTML report from the store, its headers, caching and errors."""

from __future__ import annotations

import shutil

import pytest

from service.app import create_app, start_model

REPORT = ("<!doctype html><html><body><h1>digits report</h1>"
          "<img src='data:image/png;base64,AA=='></body></html>")
CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"


def serve(uri: str):
    app = create_app({"MODEL_STORE": uri, "MODEL_NAME": "digits", "LOG_LEVEL": "WARNING",
                      "MODEL_RETRY_INITIAL": "0.05", "MODEL_RETRY_MAX": "0.2"})
    started = start_model(app, wait=60)
    return app, started


@pytest.fixture
def store(tmp_path, trained_digits):
    """A local store with digits published and on production; (uri, ModelStore, version)."""
    from model.store import ModelStore

    uri = str(tmp_path / "store")
    store = ModelStore(uri)
    artifact, manifest = trained_digits
    store.publish(artifact, manifest)
    store.move_alias("digits", "production", manifest["version"])
    return uri, store, manifest["version"]


@pytest.fixture
def served(store):
    uri, _, _ = store
    app, started = serve(uri)
    assert started, app.extensions["service"].holder.error
    yield app.test_client()
    app.extensions["service"].holder.stop()


def test_the_report_is_served_with_a_script_free_policy_and_cached(store, served, tmp_path):
    _, model_store, version = store
    model_store.write_report("digits", version, REPORT)
    response = served.get("/report")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/html; charset=utf-8"
    assert response.headers["Content-Security-Policy"] == CSP
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.get_data(as_text=True) == REPORT
    # Versions are immutable: once read, the worker does not ask the store again.
    (tmp_path / "store" / "digits" / "versions" / version / "report.html").unlink()
    assert served.get("/report").get_data(as_text=True) == REPORT
    page = served.get("/").get_data(as_text=True)
    assert 'id="report-link" href="/report">Model report</a>' in page


def test_a_version_without_a_report_is_a_404_and_the_page_has_no_link(store, served, monkeypatch):
    _, model_store, version = store
    response = served.get("/report")
    assert response.status_code == 404
    assert response.json["error"]["code"] == "not_found"
    assert f"digits {version} has no report" in response.json["error"]["message"]
    assert "Model report" not in served.get("/").get_data(as_text=True)
    # A report written later shows up once the remembered absence expires.
    model_store.write_report("digits", version, REPORT)
    assert served.get("/report").status_code == 404  # still remembered as absent
    monkeypatch.setattr("service.reports.ABSENT_SECONDS", 0.0)
    assert served.get("/report").get_data(as_text=True) == REPORT
    assert "Model report" in served.get("/").get_data(as_text=True)


def test_an_unreachable_store_is_a_503(store, served, tmp_path):
    folder = tmp_path / "store"
    shutil.move(folder, tmp_path / "moved")
    folder.write_text("not a folder any more")  # reads under it fail with an OS error, not "missing"
    response = served.get("/report")
    assert response.status_code == 503
    assert response.json["error"]["code"] == "store_unreachable"
    assert response.json["error"]["message"].startswith("the model store cannot be reached")
    assert served.get("/").status_code == 200  # the page only loses its link


def test_no_model_no_report(tmp_path):
    app, started = serve(str(tmp_path / "empty"))
    try:
        assert not started
        response = app.test_client().get("/report")
        assert response.status_code == 503 and response.json["error"]["code"] == "not_ready"
    finally:
        app.extensions["service"].holder.stop()


def test_the_openapi_document_lists_the_report(served):
    responses = served.get("/openapi.json").json["paths"]["/report"]["get"]["responses"]
    assert set(responses) == {"200", "404", "503"}
    assert "text/html" in responses["200"]["content"]
