"""The quality gate compares a candidate with what the alias serves today."""

import pytest

from model.errors import GateError
from model.gate import check_gate, compare
from model.store import ModelStore


def _with(manifest, **metrics):
    return dict(manifest, metrics=dict(manifest["metrics"], **metrics))


def test_compare_within_and_beyond_tolerance(trained_digits):
    _, base = trained_digits
    assert compare(_with(base, macro_f1=0.96), _with(base, macro_f1=0.965),
                   metric="macro_f1", tolerance=0.01).passed
    assert not compare(_with(base, macro_f1=0.90), _with(base, macro_f1=0.965),
                       metric="macro_f1", tolerance=0.01).passed
    assert compare(_with(base, accuracy=0.5), None, metric="accuracy", tolerance=0).passed


def test_gate_refuses_a_worse_candidate_unless_forced(local_store, trained_digits):
    store = ModelStore(local_store)
    _, current = trained_digits
    worse = _with(current, macro_f1=current["metrics"]["macro_f1"] - 0.2)
    with pytest.raises(GateError, match="FAILS"):
        check_gate(store, worse)
    assert check_gate(store, worse, force=True).passed is False
    assert check_gate(store, worse, tolerance=0.5).passed


def test_unknown_metric(local_store, trained_digits):
    with pytest.raises(GateError, match="gate metric 'auc' does not apply to a classification model: "
                                       "use one of accuracy, macro_f1"):
        check_gate(ModelStore(local_store), trained_digits[1], metric="auc")
    with pytest.raises(GateError, match="does not apply to a classification model"):
        check_gate(ModelStore(local_store), trained_digits[1], metric="rmse")


def _regressor(**metrics):
    return {"name": "r", "version": "v", "task": "regression", "metrics": metrics}


def test_regression_metrics_know_which_way_is_better():
    base = _regressor(r2=0.50, mae=40.0, rmse=50.0)
    # The default for a regressor is R² (higher is better).
    result = compare(_regressor(r2=0.45, mae=41.0, rmse=52.0), base, metric=None, tolerance=0.01)
    assert (result.metric, result.passed) == ("r2", False)
    assert compare(_regressor(r2=0.495, mae=1, rmse=1), base, metric=None, tolerance=0.01).passed
    # MAE and RMSE: lower is better, the tolerance is how much higher is still accepted.
    assert compare(_regressor(r2=0, mae=39.0, rmse=0), base, metric="mae", tolerance=0.01).passed
    assert compare(_regressor(r2=0, mae=40.5, rmse=0), base, metric="mae", tolerance=1.0).passed
    assert not compare(_regressor(r2=0, mae=42.0, rmse=0), base, metric="mae", tolerance=1.0).passed
    assert not compare(_regressor(r2=0, mae=0, rmse=55.0), base, metric="rmse", tolerance=1.0).passed
    with pytest.raises(GateError, match="does not apply to a regression model"):
        compare(_regressor(r2=0.5), base, metric="accuracy", tolerance=0.01)
