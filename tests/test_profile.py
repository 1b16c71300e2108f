"""The training data's profile in the manifest (model/profile.py): bins, category and boolean shares,
text lengths and tokens, the held-out predictions; recorded by train and import, signed with the rest
of the manifest, summarised by `show`."""

from __future__ import annotations

import io
import json
from collections import Counter

import joblib
import numpy as np
import pytest
from helpers import ROOT, cli_ok, run_cli
from test_train import write_text_csv

from model.data import load_dataset
from model.profile import numbers, tokens
from model.train import DEFAULT_SEED, DEFAULT_TEST_SIZE, train

DIGITS_MANIFEST_LIMIT = 64 * 1024  # bytes of manifest.json as stored, profile included
PROFILE_LIMIT = 32 * 1024  # bytes of any profile here as compact JSON


def _split(dataset, stratify=True):
    """The rows train() fits on and holds out, by the same split."""
    from sklearn.model_selection import train_test_split

    return train_test_split(dataset.X, dataset.y, test_size=DEFAULT_TEST_SIZE, random_state=DEFAULT_SEED,
                            stratify=dataset.y if stratify else None)


def _check_number(entry, values):
    """Edges non-decreasing, shares sum to 1 and equal np.histogram's over the same edges."""
    edges, shares = entry["edges"], entry["shares"]
    assert edges == sorted(edges) and len(shares) == len(edges) - 1
    assert sum(shares) == pytest.approx(1, abs=1e-5)
    assert entry["min"] == edges[0] == pytest.approx(values.min(), rel=1e-5)
    assert entry["max"] == edges[-1] == pytest.approx(values.max(), rel=1e-5)
    assert entry["mean"] == pytest.approx(values.mean(), rel=1e-4, abs=1e-9)
    if edges[0] < edges[-1]:
        counts, _ = np.histogram(values, bins=np.asarray(edges))
        np.testing.assert_allclose(shares, counts / len(values), atol=1e-5)


def _compact(value) -> int:
    return len(json.dumps(value, sort_keys=True, separators=(",", ":")))


def test_digits_profile_describes_training_rows_and_holdout_predictions(trained_digits):
    artifact, manifest = trained_digits
    profile = manifest["profile"]
    dataset = load_dataset("digits")
    X_train, X_test, _, _ = _split(dataset)
    assert profile["version"] == 1 and profile["data"] == "train" and profile["rows"] == len(X_train)
    names = manifest["input_schema"]["features"]
    assert sorted(profile["features"]) == sorted(names)
    for j, name in enumerate(names):
        entry = profile["features"][name]
        assert entry["kind"] == "number" and "missing" not in entry
        _check_number(entry, X_train[:, j])
    # A pixel that is always 0 in training: one bin holding every row.
    assert profile["features"]["pixel_0_0"]["edges"] == [0.0, 0.0]
    assert profile["features"]["pixel_0_0"]["shares"] == [1.0]

    predicted = joblib.load(io.BytesIO(artifact)).predict(X_test)
    shares = profile["predictions"]["classes"]
    assert profile["predictions"]["rows"] == len(X_test)
    assert list(shares) == [str(c) for c in manifest["classes"]]
    assert sum(shares.values()) == pytest.approx(1, abs=1e-5)
    for label, share in shares.items():
        assert share == pytest.approx(np.mean(predicted.astype(str) == label), abs=1e-6)


def test_digits_manifest_stays_small_and_signed_with_the_profile(tmp_path, trained_digits):
    from model.errors import IntegrityError
    from model.signing import generate_key_pair, signer, verifier
    from model.store import ModelStore

    artifact, manifest = trained_digits
    assert _compact(manifest["profile"]) < 16 * 1024
    signing, verify = generate_key_pair(tmp_path / "keys")
    store = ModelStore(str(tmp_path / "store"))
    store.publish(artifact, manifest, signer=signer(str(signing)))
    name, version = manifest["name"], manifest["version"]
    stored = store.manifest_bytes(name, version)
    assert len(stored) < DIGITS_MANIFEST_LIMIT
    assert store.manifest(name, version, verifier=verifier(str(verify)))["profile"] == manifest["profile"]

    # The signature covers the profile: one edited share and the version is refused.
    path = tmp_path / "store" / name / "versions" / version / "manifest.json"
    edited = json.loads(stored)
    edited["profile"]["features"]["pixel_0_1"]["shares"][0] += 0.01
    path.write_text(json.dumps(edited, indent=2, sort_keys=True) + "\n")
    with pytest.raises(IntegrityError):
        store.manifest(name, version, verifier=verifier(str(verify)))


def test_mixed_table_records_category_and_boolean_shares():
    dataset = load_dataset(str(ROOT / "examples/churn.csv"), label_column="churned")
    _, manifest = train(dataset, name="churn", recipe="examples.churn_recipe:build", compile=False)
    features = manifest["profile"]["features"]
    X_train, _, _, _ = _split(dataset)
    assert {name: entry["kind"] for name, entry in features.items()} == {
        "age": "number", "plan": "category", "active": "boolean", "note": "category"}
    expected = X_train["plan"].value_counts(normalize=True)
    assert features["plan"]["shares"] == pytest.approx(expected.to_dict(), abs=1e-6)
    assert features["plan"]["other"] == 0 and features["plan"]["distinct"] == 3
    active = X_train["active"].mean()
    assert features["active"]["shares"] == pytest.approx({"true": active, "false": 1 - active}, abs=1e-6)
    _check_number(features["age"], X_train["age"].to_numpy())
    assert sum(manifest["profile"]["predictions"]["classes"].values()) == pytest.approx(1, abs=1e-5)
    assert _compact(manifest["profile"]) < 4 * 1024


def test_text_model_records_lengths_and_vocabulary(tmp_path):
    dataset = load_dataset(str(write_text_csv(tmp_path / "t.csv")), label_column="topic", text_column="text")
    artifact, manifest = train(dataset, name="topics", compile=False)
    text = manifest["profile"]["text"]
    X_train, _, _, _ = _split(dataset)
    lengths = np.asarray([len(t) for t in X_train], dtype=float)
    _check_number(text["length"], lengths)
    counts = Counter(token for t in X_train for token in tokens(t))
    assert sorted(text["tokens"]) == sorted(counts)  # a small vocabulary: all of it
    frequency = [counts[t] for t in text["tokens"]]
    assert frequency == sorted(frequency, reverse=True)
    assert text["coverage"] == 1.0 and text["distinct_tokens"] == len(counts)
    fitted = joblib.load(io.BytesIO(artifact))
    assert text["vectorizer_vocabulary"] == len(fitted.steps[0][1].vocabulary_)
    assert "features" not in manifest["profile"]


def test_a_large_vocabulary_keeps_the_top_tokens_and_a_bounded_profile(tmp_path):
    rng = np.random.default_rng(0)
    words = [f"w{i:05d}" for i in range(20_000)]
    ranks = np.minimum(rng.zipf(1.3, size=(1200, 60)), len(words)) - 1
    path = tmp_path / "big.csv"
    path.write_text("text,topic\n" + "".join(
        f"{' '.join(words[r] for r in row)},{'ab'[i % 2]}\n" for i, row in enumerate(ranks)))
    dataset = load_dataset(str(path), label_column="topic", text_column="text")
    _, manifest = train(dataset, name="big", compile=False)
    text = manifest["profile"]["text"]
    assert len(text["tokens"]) == 1000 < text["distinct_tokens"]
    assert text["tokens"][:3] == ["w00000", "w00001", "w00002"]
    assert 0.5 < text["coverage"] < 1
    assert _compact(manifest["profile"]) < 16 * 1024


def test_regressor_profile_bins_its_holdout_predictions():
    dataset = load_dataset("diabetes")
    artifact, manifest = train(dataset, name="diabetes", recipe="forest_regressor", compile=False)
    _, X_test, _, _ = _split(dataset, stratify=False)
    predicted = joblib.load(io.BytesIO(artifact)).predict(X_test)
    entry = manifest["profile"]["predictions"]
    assert entry["rows"] == len(X_test) and "classes" not in entry
    _check_number(entry, predicted)


def test_number_entries_for_constant_discrete_and_missing_values():
    assert numbers([3, 3, 3]) == {"kind": "number", "edges": [3.0, 3.0], "shares": [1.0], "min": 3.0,
                                  "max": 3.0, "mean": 3.0}
    binary = numbers([0, 1, 1, 1])  # few distinct values: one bin each
    assert binary["edges"] == [0.0, 0.5, 1.0] and binary["shares"] == [0.25, 0.75]
    gappy = numbers([1.0, np.nan, 2.0, np.nan])
    assert gappy["missing"] == 0.5 and gappy["shares"] == [0.5, 0.5]
    assert numbers([np.nan])["edges"] == []


def test_import_records_a_profile_of_the_holdout_and_show_summarises_it(tmp_path):
    from sklearn.datasets import load_wine
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.model_selection import train_test_split

    X, y = load_wine(return_X_y=True, as_frame=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0)
    forest = RandomForestClassifier(n_estimators=20, random_state=0).fit(X_train, y_train)
    joblib.dump(forest, tmp_path / "wine.joblib")
    X_test.assign(label=y_test).to_csv(tmp_path / "holdout.csv", index=False)
    store = str(tmp_path / "store")
    cli_ok(run_cli("import", str(tmp_path / "wine.joblib"), "--data", str(tmp_path / "holdout.csv"),
                   "--name", "wine", "--store", store, "--no-report"))

    full = json.loads(cli_ok(run_cli("show", "--name", "wine", "--store", store, "--profile")))
    assert full["data"] == "holdout" and full["rows"] == len(X_test)
    assert sorted(full["features"]) == sorted(X.columns)
    _check_number(full["features"]["alcohol"], X_test["alcohol"].to_numpy())
    predicted = forest.predict(X_test)
    assert full["predictions"]["classes"] == pytest.approx(
        {str(c): float(np.mean(predicted == c)) for c in forest.classes_}, abs=1e-6)

    shown = cli_ok(run_cli("show", "--name", "wine", "--store", store))
    summary = json.loads(shown)["profile"]
    assert summary["features"] == {"number": X.shape[1]} and summary["rows"] == len(X_test)
    assert summary["predictions"]["classes"] == full["predictions"]["classes"]
    assert "edges" not in shown and len(shown.splitlines()) < 200


def test_a_notebook_publish_profiles_the_training_rows_it_is_given(tmp_path):
    from sklearn.datasets import load_wine
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split

    from model.publish import publish_estimator

    X, y = load_wine(return_X_y=True, as_frame=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0)
    fitted = LogisticRegression(max_iter=5000).fit(X_train, y_train)
    manifest = publish_estimator(fitted, X_test, y_test, name="wine", store=str(tmp_path / "s"),
                                 report=False, X_train=X_train)
    assert manifest["profile"]["data"] == "train" and manifest["profile"]["rows"] == len(X_train)
    _check_number(manifest["profile"]["features"]["proline"], X_train["proline"].to_numpy())
