"""Training data and training: built-in datasets, CSV (local and s3://), text, and bad data."""

import boto3
import pytest

from model.artifact import REQUIRED_FIELDS, validate_manifest
from model.data import load_dataset
from model.errors import DataError
from model.train import train

WORDS = {
    "sports": "goal match team score player league coach season win referee",
    "space": "orbit rocket launch planet nasa moon satellite star galaxy astronaut",
    "cooking": "recipe oven flour butter sugar bake simmer garlic pepper sauce",
}


def write_text_csv(path, rows_per_class=20):
    import random

    rng = random.Random(0)
    lines = ["text,topic"]
    for topic, words in WORDS.items():
        vocab = words.split()
        for _ in range(rows_per_class):
            lines.append(" ".join(rng.choice(vocab) for _ in range(12)) + f",{topic}")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_default_model_manifest_is_complete(trained_digits):
    artifact, manifest = trained_digits
    validate_manifest(manifest)
    assert set(REQUIRED_FIELDS) <= set(manifest)
    assert manifest["classes"] == list(range(10))
    assert manifest["input_schema"]["n_features"] == 64
    assert len(manifest["example"]) == 64
    assert manifest["data"] | {"source": "sklearn:digits", "rows": 1797} == manifest["data"]
    assert manifest["data"]["test_rows"] == 360
    assert manifest["metrics"]["accuracy"] > 0.9
    assert set(manifest["metrics"]["per_class"]) == {str(c) for c in range(10)}
    assert manifest["artifact"]["size"] == len(artifact)
    assert manifest["version"].endswith(manifest["artifact"]["sha256"][:8])


def test_training_is_reproducible():
    a, _ = train(load_dataset("iris"), name="iris")
    b, _ = train(load_dataset("iris"), name="iris")
    assert a == b


def test_text_model_from_csv(tmp_path):
    dataset = load_dataset(str(write_text_csv(tmp_path / "t.csv")), label_column="topic",
                           text_column="text")
    _, manifest = train(dataset, name="topics")
    assert manifest["input_schema"] == {"type": "text"}
    assert manifest["classes"] == ["cooking", "space", "sports"]
    assert manifest["metrics"]["accuracy"] > 0.9
    assert "TfidfVectorizer" in manifest["estimator"]


def test_tabular_csv_from_s3(s3_bucket, tmp_path):
    rows = ["a,b,label"] + [f"{i},{i % 3},{i % 2}" for i in range(40)]
    boto3.client("s3").put_object(Bucket=s3_bucket, Key="data/train.csv", Body="\n".join(rows))
    dataset = load_dataset(f"s3://{s3_bucket}/data/train.csv")
    assert dataset.feature_names == ["a", "b"]
    assert dataset.rows == 40
    _, manifest = train(dataset, name="parity")
    assert manifest["classes"] == [0, 1]  # integer labels stay integers
    assert manifest["data"]["source"] == f"s3://{s3_bucket}/data/train.csv"


@pytest.mark.parametrize(
    ("content", "kwargs", "message"),
    [
        ("a,b\n1,2\n3,4\n", {}, "no label column 'label'"),
        ("a,label\n1,x\nfoo,y\n1,x\n2,y\n", {"column_kinds": {"a": "number"}},
         "row 3 column 'a' is not a finite number"),
        ("a,label\n1,x\n2,y\n", {"column_kinds": {"b": "number"}}, "no column 'b'"),
        ("a,label\n", {}, "no data rows"),
        ("", {}, "empty"),
        ("a,label\nnan,x\n2,y\n1,x\n2,y\n", {}, "row 2 column 'a' is not a finite number"),
        ("a,b,label\n1,2,x\n3\n", {}, "row 3 has fewer values"),
        ("label\nx\ny\n", {}, "no feature columns"),
        ("t,label\nhi,x\n", {"text_column": "text"}, "no text column 'text'"),
    ],
)
def test_bad_csv_gives_a_clear_error(tmp_path, content, kwargs, message):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(DataError, match=message):
        load_dataset(str(path), **kwargs)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("a,label\n1,x\n2,x\n3,x\n", "one class only"),
        ("a,label\n1,x\n2,y\n3,y\n", "single row"),
    ],
)
def test_labels_a_classifier_cannot_learn_from(tmp_path, content, message):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(DataError, match=message):
        train(load_dataset(str(path)), name="bad")


def test_unknown_dataset_and_missing_file(tmp_path):
    with pytest.raises(DataError, match="unknown dataset"):
        load_dataset("mnist")
    with pytest.raises(DataError, match="cannot read"):
        load_dataset(str(tmp_path / "absent.csv"))
