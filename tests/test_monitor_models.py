"""`python -m model monitor` on the other kinds of model: a text model (length and token coverage) and
a regressor (its predicted values' bins against the held-out ones)."""

from __future__ import annotations

import json
import random
from datetime import timedelta

import pytest
from helpers import cli_fails, cli_ok, run_cli
from test_monitor import NOW, hashed, monitor, predictions_of, write_records
from test_train import WORDS

from model.capture_files import format_time
from model.exit_codes import ExitCode
from model.store import ModelStore
from model.train import DEFAULT_SEED, DEFAULT_TEST_SIZE

OTHER_WORDS = ["invoice", "ledger", "audit", "payroll", "tax", "receipt", "budget", "fiscal", "accrual"]


def texts(seed: int, per_topic: int, words: dict[str, str] = WORDS) -> list[str]:
    """Texts as tests/test_train.py's write_text_csv makes them: 12 words of one topic's vocabulary."""
    rng = random.Random(seed)
    return [" ".join(rng.choice(vocab.split()) for _ in range(12)) for vocab in words.values()
            for _ in range(per_topic)]


@pytest.fixture(scope="module")
def topics(tmp_path_factory):
    folder = tmp_path_factory.mktemp("topics")
    data = folder / "topics.csv"
    labels = [topic for topic in WORDS for _ in range(150)]
    data.write_text("text,topic\n" + "".join(f"{t},{label}\n" for t, label in
                                             zip(texts(0, 150), labels, strict=True)))
    uri = str(folder / "store")
    cli_ok(run_cli("train", "--store", uri, "--name", "topics", "--dataset", str(data), "--label-column",
                   "topic", "--text-column", "text", "--promote", "production", "--no-compile",
                   "--no-report"))
    return uri


def test_a_text_model_drifts_when_its_vocabulary_changes(topics, tmp_path):
    import shutil

    uri = str(tmp_path / "store")
    shutil.copytree(topics, uri)
    write_records(uri, "topics", texts(9, 100))  # new texts, the same vocabulary
    out = cli_ok(monitor(uri, "--name", "topics"))
    assert out.strip().splitlines()[-1].startswith("no drift in 300 records"), out
    # The same lengths of words, but half of every text from a vocabulary training never saw.
    rng = random.Random(3)
    mixed = [" ".join(w if i % 2 else rng.choice(OTHER_WORDS) for i, w in enumerate(t.split()))
             for t in texts(10, 100)]
    write_records(uri, "topics", mixed, writer="shifted")
    result = monitor(uri, "--name", "topics", "--json", str(tmp_path / "d.json"))
    cli_fails(result, ExitCode.DRIFT, "drift in topics")
    found = json.loads((tmp_path / "d.json").read_text())
    text = next(r for r in found["results"] if r["name"] == "text")
    assert text["kind"] == "text" and text["baseline_coverage"] == 1.0
    assert text["coverage"] == pytest.approx(0.75, abs=0.05)  # 600 texts, half of 300 of them foreign
    assert any("token coverage" in reason for reason in text["reasons"])
    # Texts hashed at capture: the text is not compared, the predictions still are.
    fresh = texts(11, 100)
    write_records(uri, "topics", [hashed(t) for t in fresh], predictions_of(uri, "topics", fresh),
                  start=NOW - timedelta(days=2))
    out = cli_ok(monitor(uri, "--name", "topics", "--since", "3d", "--until",
                         format_time(NOW - timedelta(days=1))))
    assert "not compared: text: no input captured" in out and "predictions: PSI" in out
    assert out.strip().splitlines()[-1].startswith("no drift in 300 records")


def test_a_regressor_compares_its_predicted_values(tmp_path):
    from sklearn.model_selection import train_test_split

    from model.data import load_dataset

    uri = str(tmp_path / "store")
    cli_ok(run_cli("train", "--store", uri, "--name", "diabetes", "--dataset", "diabetes", "--recipe",
                   "forest_regressor", "--promote", "production", "--no-compile", "--no-report"))
    dataset = load_dataset("diabetes")
    _, X_test, _, _ = train_test_split(dataset.X, dataset.y, test_size=DEFAULT_TEST_SIZE,
                                       random_state=DEFAULT_SEED)
    store = ModelStore(uri)
    names = store.manifest("diabetes", store.resolve("diabetes"))["input_schema"]["features"]
    rows = [dict(zip(names, map(float, row), strict=True)) for row in X_test]  # 89 held-out rows
    write_records(uri, "diabetes", rows)
    out = cli_ok(monitor(uri, "--name", "diabetes", "--min-records", "80", "--json",
                         str(tmp_path / "a.json")))
    assert out.strip().splitlines()[-1].startswith(f"no drift in {len(rows)} records"), out
    predicted = json.loads((tmp_path / "a.json").read_text())["results"][-1]
    assert predicted["name"] == "predictions" and len(predicted["bins"]) == 10
    # Higher BMI and blood pressure: the predicted progression moves up.
    shifted = [dict(row, bmi=row["bmi"] + 0.08, bp=row["bp"] + 0.06) for row in rows]
    write_records(uri, "diabetes", shifted, writer="shifted")
    result = monitor(uri, "--name", "diabetes", "--min-records", "80", "--json", str(tmp_path / "b.json"))
    cli_fails(result, ExitCode.DRIFT, "drift in diabetes")
    found = json.loads((tmp_path / "b.json").read_text())
    assert {"bmi", "predictions"} <= set(found["drifting"])
    assert "predictions: PSI" in result.stdout and "predictions: PSI 0.0" not in result.stdout
