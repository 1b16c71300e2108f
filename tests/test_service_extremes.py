"""Outputs are checked like inputs: extreme but finite rows through the service's paths and
scikit-learn's own, side by side (a seeded property test: many random rows, one rule)."""

from __future__ import annotations

import io

import numpy as np
import pytest

from service.errors import InvalidInput


@pytest.fixture(scope="module")
def predictor(trained_digits):
    import joblib

    from service.predict import Predictor

    artifact, manifest = trained_digits
    estimator = joblib.load(io.BytesIO(artifact))
    made = Predictor(estimator, manifest, max_batch=1000)
    assert made.path == "sklearn"  # published without model.onnx
    return made, estimator


def extreme_rows(count: int, n: int, seed: int = 0) -> np.ndarray:
    """Rows mixing ordinary pixel values with magnitudes up to 1e308 (half near the top), either sign."""
    rng = np.random.default_rng(seed)
    rows = rng.uniform(0, 16, (count, n))
    for row in rows:
        picked = rng.choice(n, size=int(rng.integers(1, 6)), replace=False)
        low = 0.0 if rng.random() < 0.5 else 305.0
        signs = rng.choice([-1.0, 1.0], size=picked.size)
        row[picked] = signs * 10.0 ** rng.uniform(low, 308.25, picked.size)
    return rows


def test_the_reported_overflow_is_a_400_naming_the_value(predictor):
    service, _ = predictor
    with pytest.raises(InvalidInput, match=r"instances\[0\]\[\d+\] \(pixel_\d_\d\) = 1e\+308 is too large"):
        service.predict(service.to_matrix([[1e308] * 64]))


def test_random_extreme_rows_get_what_scikit_learn_gives_or_a_400(predictor):
    service, estimator = predictor
    refused = answered = 0
    for row in extreme_rows(400, 64):
        try:
            with np.errstate(all="ignore"):
                expected = estimator.predict_proba(row[None, :])
            sklearn_refuses = not np.isfinite(expected).all()
        except ValueError:
            sklearn_refuses = True
        try:
            predictions, _ = service.predict(service.to_matrix([row.tolist()]))
        except InvalidInput as exc:
            assert sklearn_refuses, f"the service refused a row scikit-learn answers: {exc}"
            refused += 1
            continue
        assert not sklearn_refuses, "the service answered a row scikit-learn refuses"
        got = np.array([list(predictions[0]["probabilities"].values())])
        assert np.isfinite(got).all()
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-9)
        answered += 1
    assert refused > 20 and answered > 20  # both sides of the rule were exercised


def test_a_400_for_overflow_over_http(gunicorn_server):
    import requests

    answer = requests.post(gunicorn_server.url + "/predict", json={"instances": [[1e308] * 64]}, timeout=10)
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert error["code"] == "invalid_input" and "too large" in error["message"]
