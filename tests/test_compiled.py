"""Compiled models at publish time: which kinds convert to ONNX and match scikit-learn, what the
manifest records, and that the stores, candidates and the loader never hand over a wrong model.onnx."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import run_cli, write_churn_csv

from model.compiled import CompileError, Session, check_parity
from model.data import load_dataset
from model.errors import IntegrityError
from model.loader import load_model
from model.store import ModelStore
from model.train import train


@pytest.fixture(scope="module")
def churn_csv(tmp_path_factory):
    return write_churn_csv(tmp_path_factory.mktemp("data") / "churn.csv")


@pytest.fixture(scope="module")
def news_csv(tmp_path_factory):
    words = ["team", "won", "match", "goal", "laptop", "chip", "memory", "faster", "player", "coach",
             "screen", "battery", "price", "market", "bank"]
    rng = np.random.default_rng(0)
    rows = ["label,text"]
    for i in range(300):
        label = ["sport", "tech", "money"][i % 3]
        rows.append(f"{label},{' '.join(rng.choice(words, 10))} {label}word{i % 5}")
    path = tmp_path_factory.mktemp("text") / "news.csv"
    path.write_text("\n".join(rows) + "\n")
    return path


# (dataset, load options, recipe) -> compiles? The outcome per model kind the README lists.
KINDS = [
    ("digits", {}, "logreg", True),
    ("iris", {}, "linear_svc", True),
    ("breast_cancer", {}, "linear_svc", True),
    ("diabetes", {}, "forest_regressor", True),
    ("CHURN", {"label_column": "churned"}, "examples.churn_recipe:build", True),
    ("CHURN", {"label_column": "churned"}, "hgb_table", False),
    ("NEWS", {"text_column": "text"}, "tfidf", False),
]


@pytest.mark.parametrize(("dataset", "options", "recipe", "compiles"), KINDS)
def test_which_models_compile_and_match(churn_csv, news_csv, dataset, options, recipe, compiles):
    path = {"CHURN": str(churn_csv), "NEWS": str(news_csv)}.get(dataset, dataset)
    candidate = train(load_dataset(path, **options), name="m", recipe=recipe)
    record = candidate.manifest["onnx"]
    if not compiles:
        assert candidate.onnx is None and set(record) == {"skipped"}
        expected = "cannot convert HistGradientBoostingClassifier" if recipe == "hgb_table" else \
            "probabilities differ by up to"
        assert expected in record["skipped"]
        return
    assert record["file"] == "model.onnx" and record["size"] == len(candidate.onnx)
    assert record["worst_difference"] <= max(record["tolerance"].values())
    assert record["rows_checked"] >= candidate.manifest["data"]["test_rows"]
    # The parity sample re-checks without the pickle (what a pickle-free worker does at load).
    session = Session(candidate.onnx, candidate.manifest["input_schema"], candidate.manifest["task"])
    assert check_parity(session, record, candidate.manifest) <= max(record["tolerance"].values())


def _broken(candidate):
    """The same graph with one weight changed: the recorded sha256 follows, so only parity can tell."""
    import onnx

    from model.artifact import sha256_bytes

    graph = onnx.load_from_string(candidate.onnx)
    # skl2onnx keeps a linear model's weights in the node's attributes; shift class 0's intercept.
    intercepts = next(a for node in graph.graph.node for a in node.attribute if a.name == "intercepts")
    intercepts.floats[0] += 5.0
    data = graph.SerializeToString()
    manifest = json.loads(json.dumps(candidate.manifest))
    manifest["onnx"].update(sha256=sha256_bytes(data), size=len(data))
    return data, manifest


def test_a_changed_weight_fails_the_parity_recheck():
    candidate = train(load_dataset("digits"), name="digits")
    data, manifest = _broken(candidate)
    with pytest.raises(CompileError, match=r"differ|label"):
        check_parity(Session(data, manifest["input_schema"], "classification"), manifest["onnx"], manifest)


@pytest.fixture(scope="module")
def compiled_digits():
    return train(load_dataset("digits"), name="digits")


def test_publish_writes_model_onnx_and_the_loader_verifies_it(tmp_path, compiled_digits):
    store = ModelStore(str(tmp_path / "store"))
    c = compiled_digits
    with pytest.raises(IntegrityError, match=r"records model\.onnx but none was given"):
        store.publish(c.artifact, c.manifest)
    store.publish(c.artifact, c.manifest, onnx=c.onnx)
    loaded = load_model(store, "digits", version=c.manifest["version"], cache_dir=tmp_path / "cache")
    assert loaded.onnx == c.onnx and loaded.estimator is not None
    # Pickle-free: the same version loads without unpickling, even with the pickle replaced.
    (tmp_path / "store" / "digits" / "versions" / c.manifest["version"] / "model.joblib").write_bytes(b"junk")
    pickle_free = load_model(store, "digits", version=c.manifest["version"], pickle=False)
    assert pickle_free.estimator is None and pickle_free.onnx == c.onnx
    # A tampered model.onnx is refused, whatever the mode, and never taken from the cache either.
    onnx_path = tmp_path / "store" / "digits" / "versions" / c.manifest["version"] / "model.onnx"
    onnx_path.write_bytes(c.onnx[:-10] + b"0123456789")
    with pytest.raises(IntegrityError, match=r"model\.onnx of digits .* fails its size or sha256 check"):
        load_model(store, "digits", version=c.manifest["version"], pickle=False)


def test_pickle_free_loading_refuses_a_version_without_onnx(tmp_path, trained_digits):
    store = ModelStore(str(tmp_path / "store"))
    artifact, manifest = trained_digits  # trained with compile=False
    store.publish(artifact, manifest)
    with pytest.raises(IntegrityError, match=r"has no model\.onnx .*pickle-free mode"):
        load_model(store, "digits", version=manifest["version"], pickle=False)


def test_candidate_folders_carry_model_onnx(tmp_path):
    out = tmp_path / "candidate"
    result = run_cli("train", "--dataset", "iris", "--name", "iris", "--out", str(out), "--no-report")
    assert result.returncode == 0, result.stderr
    assert "onnx: compiled and parity-checked on" in result.stdout
    assert (out / "model.onnx").is_file()
    store = tmp_path / "store"
    published = run_cli("publish", str(out), "--store", str(store))
    assert published.returncode == 0, published.stderr
    version = ModelStore(str(store)).versions("iris")[0]
    published_onnx = store / "iris" / "versions" / version / "model.onnx"
    assert published_onnx.read_bytes() == (out / "model.onnx").read_bytes()
    # A candidate whose model.onnx was changed is refused before anything is published.
    (out / "model.onnx").write_bytes(b"not onnx")
    again = run_cli("publish", str(out), "--store", str(tmp_path / "other"))
    assert again.returncode == 6 and "model.onnx of iris" in again.stderr


def test_no_compile_and_the_reason_when_it_does_not(tmp_path, churn_csv):
    result = run_cli("train", "--dataset", str(churn_csv), "--label-column", "churned", "--name", "churn",
                     "--store", str(tmp_path / "s"), "--no-report")
    assert result.returncode == 0, result.stderr
    assert ("onnx: not compiled, served by scikit-learn: skl2onnx cannot convert "
            "HistGradientBoostingClassifier") in result.stdout
    plain = run_cli("train", "--dataset", "iris", "--name", "iris", "--store", str(tmp_path / "s"),
                    "--no-report", "--no-compile")
    assert plain.returncode == 0 and "onnx:" not in plain.stdout
