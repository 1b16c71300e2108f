"""model/drift.py: PSI and its reading, the bins of numbers and categories, the thresholds, and the
comparison of inputs with a profile built by model/profile.py from real columns."""

from __future__ import annotations

import math

import numpy as np
import pytest

from model import drift
from model.drift import Thresholds, compare, judge, psi
from model.profile import categories, numbers, profile


def test_psi_is_the_symmetric_divergence_with_smoothed_observed_shares():
    expected = [0.5, 0.3, 0.2]
    counts = [30, 30, 40]
    o = [(c + 0.5) / 101.5 for c in counts]
    by_hand = sum((oi - ei) * math.log(oi / ei) for oi, ei in zip(o, expected, strict=True))
    assert psi(expected, counts) == pytest.approx(by_hand, rel=1e-12)
    assert psi(expected, [0, 0, 0]) == 0.0 and psi([], []) == 0.0
    # The same distribution: small, and smaller with more records.
    assert psi(expected, [500, 300, 200]) < 1e-3
    assert psi(expected, [5000, 3000, 2000]) < psi(expected, [500, 300, 200])


def test_an_empty_bin_in_a_small_sample_is_not_a_drift_by_itself():
    """Without smoothing, one 5 % bin left empty in 100 records cost 0.05 * ln(0.05 / 1e-4) = 0.31."""
    expected = [0.05] + [0.95 / 9] * 9
    counts = [0] + [100 / 9] * 9
    assert psi(expected, counts) < 0.15
    # A bin empty in training that fills up is a drift, bounded by the floor instead of infinite.
    assert 0.25 < psi([0.0, 0.5, 0.5], [30, 35, 35]) < 10


def test_number_bins_follow_the_profile_rule_and_count_outside_and_missing():
    values = np.arange(100, dtype=float)
    entry = numbers(values)
    counts, outside, missing = drift.number_bins(entry, values.tolist())
    assert counts.tolist() == [round(share * 100) for share in entry["shares"]]
    assert outside == 0 and missing == 0
    odd = [-5.0, 0.0, 99.0, 150.0, None, float("nan"), "x", True]
    counts, outside, missing = drift.number_bins(entry, odd)
    assert counts[0] == 2 and counts[-1] == 2 and counts.sum() == 4  # outside values in the outer bins
    assert outside == 2 and missing == 4  # None, NaN, a string and a boolean are not numbers


def test_unseen_categories_only_when_the_profile_lists_every_value():
    complete = categories(["a", "b", "c"] * 20)
    names, counts, unseen, missing = drift.category_bins(complete, ["a", "b", "z", "z", None])
    assert names == ["a", "b", "c", "other"] and counts.tolist() == [1, 1, 0, 2]
    assert unseen == 2 and missing == 1
    # More than 50 values in training: "other" exists, so a value outside the top 50 is not "unseen".
    many = categories([f"v{i}" for i in range(60)] * 3)
    assert many["other"] > 0
    _, _, unseen, _ = drift.category_bins(many, ["v59", "new"])
    assert unseen == 0


def test_judge_needs_min_records_and_says_why():
    result = drift.Drift(name="x", kind="number", records=150, psi=0.9, out_of_range=0.5)
    assert judge(result, Thresholds()).reasons == []  # 150 < 200: too few to judge
    assert judge(result, Thresholds(min_records=100)).reasons == [
        "PSI 0.900 >= 0.25", "50.0% outside the training range (>= 5%)"]
    quiet = drift.Drift(name="x", kind="number", records=1000, psi=0.1, out_of_range=0.01, unseen=0.01)
    assert judge(quiet, Thresholds()).reasons == []
    text = drift.Drift(name="text", kind="text", records=500, psi=0.0, coverage=0.6, baseline_coverage=0.9)
    assert judge(text, Thresholds()).reasons == ["token coverage 60.0%, 30.0% below training's 90.0%"]


@pytest.fixture(scope="module")
def table_profile():
    """A real table's profile: a number, a category, a boolean; a classifier's held-out shares."""
    import pandas as pd

    rng = np.random.default_rng(3)
    frame = pd.DataFrame({"age": rng.normal(45, 12, 3000).round(), "plan": rng.choice(["a", "b", "c"], 3000),
                          "active": rng.random(3000) < 0.6})
    schema = {"type": "tabular", "columns": [{"name": "age", "kind": "number"},
                                              {"name": "plan", "kind": "category"},
                                              {"name": "active", "kind": "boolean"}]}
    predicted = rng.choice(["yes", "no"], 600, p=[0.3, 0.7])
    return profile(frame, schema, predicted, "classification", classes=["no", "yes"])


def _rows(rng, n, *, age_shift=0.0, plan=("a", "b", "c")):
    return [{"age": float(round(rng.normal(45 + age_shift, 12))), "plan": str(rng.choice(plan)),
             "active": bool(rng.random() < 0.6)} for _ in range(n)]


def test_the_same_population_does_not_drift(table_profile):
    rng = np.random.default_rng(4)
    for _ in range(20):
        predictions = [{"label": str(label)} for label in rng.choice(["yes", "no"], 300, p=[0.3, 0.7])]
        results = compare(table_profile, _rows(rng, 300), predictions)
        assert [r.name for r in results] == ["age", "plan", "active", "predictions"]
        assert not any(r.reasons for r in results), [(r.name, r.psi) for r in results]


def test_shifts_are_found_by_the_right_statistic(table_profile):
    rng = np.random.default_rng(5)
    predictions = [{"label": "yes"}] * 250 + [{"label": "no"}] * 50 + ["sha256:ab"] * 10
    results = {r.name: r for r in compare(table_profile, _rows(rng, 300, age_shift=15, plan=("a", "d")),
                                          predictions)}
    assert results["age"].psi > 0.25 and results["age"].reasons
    assert results["plan"].unseen == pytest.approx(0.5, abs=0.1)
    assert any("unseen" in reason for reason in results["plan"].reasons)
    assert results["predictions"].records == 300  # the hashed predictions are not counted
    assert results["predictions"].psi > 0.25
    assert not results["active"].reasons


def test_hashed_and_absent_columns_are_not_compared(table_profile):
    rows = [{"age": "sha256:00", "active": True} for _ in range(300)]
    assert [r.name for r in compare(table_profile, rows, [])] == ["active"]


def test_the_training_extremes_are_inside_despite_the_profiles_rounding():
    """The profile keeps 6 significant digits: diabetes' `sex` is -0.04464164 or 0.05068012, and its
    rounded min/max must not put every training value outside the training range."""
    values = np.asarray([-0.0446416365069974, 0.0506801187398187] * 50)
    entry = numbers(values)
    assert entry["min"] != values.min()  # rounded
    _, outside, _ = drift.number_bins(entry, values.tolist())
    assert outside == 0
    _, outside, _ = drift.number_bins(entry, [-0.0447, 0.0507, 0.0, -0.04464164])
    assert outside == 2  # beyond the rounding: outside
