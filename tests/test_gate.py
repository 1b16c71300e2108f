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
    with pytest.raises(GateError, match="unknown gate metric"):
        check_gate(ModelStore(local_store), trained_digits[1], metric="auc")
