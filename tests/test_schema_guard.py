"""The schema guard: a different model never silently becomes production.

Reproduced first as the issue found it: `python -m model train --dataset wine` (no --name) published
a 13-feature wine model as a version of `digits`, the gate compared metrics only and passed it, and
`promote` moved production to it: every client sending 64 numbers would then get 400s.
"""

from __future__ import annotations

import re

from helpers import run_cli


def test_wine_published_as_digits_is_refused_at_train_and_at_promote(local_store, tmp_path):
    train = run_cli("train", "--dataset", "wine", "--store", local_store)
    assert train.returncode == 8, train.stdout + train.stderr
    assert "schema guard" in train.stderr and "13 features (alcohol" in train.stderr
    assert "takes 64 (pixel_0_0" in train.stderr and "--allow-schema-change" in train.stderr
    assert run_cli("list", "--store", local_store).stdout.count("\n") == 3  # still one version

    # Published on purpose (the flag), it is still not promoted without saying so again.
    published = run_cli("train", "--dataset", "wine", "--store", local_store, "--allow-schema-change")
    assert published.returncode == 0, published.stderr
    version = re.search(r"published digits (\S+)", published.stdout).group(1)
    refused = run_cli("promote", version, "--store", local_store)
    assert refused.returncode == 8 and "schema guard" in refused.stderr
    resolved = run_cli("resolve", "--store", local_store).stdout.strip()
    assert resolved != version
    allowed = run_cli("promote", version, "--store", local_store, "--allow-schema-change", "--force")
    assert allowed.returncode == 0, allowed.stderr
    assert run_cli("resolve", "--store", local_store).stdout.strip() == version


def test_a_version_with_the_same_schema_passes_the_guard(local_store):
    again = run_cli("train", "--store", local_store, "--seed", "7")
    assert again.returncode == 0, again.stderr


def test_the_rollout_applies_the_guard_before_anything_changes():
    from fakes import FakeEcs, deployment, run_scripted

    from model.exit_codes import ExitCode

    class WineStore:
        """The promotion candidate has other features than production's version."""

        def __init__(self):
            from model.store import Alias

            self.production = Alias("production", "v-old", None, "t", "e1")
            self.moves = []

        def resolve(self, name, alias=None, version=None):
            return version or self.production.version

        def alias(self, name, alias):
            return self.production

        def manifest(self, name, version, verifier=None):
            features = [f"f{i}" for i in range(13 if version == "v-new" else 64)]
            return {"name": name, "version": version, "classes": [0, 1, 2], "metrics": {"macro_f1": 0.9},
                    "input_schema": {"type": "tabular", "features": features, "n_features": len(features)}}

    fake = FakeEcs([lambda f: [deployment(f.td, "COMPLETED")]])
    error, _ = run_scripted(fake, store=WineStore())
    assert error.exit_code == ExitCode.GATE_REFUSED and "schema guard" in str(error)
    assert fake.registered == [] and fake.updates == []


def test_what_is_in_the_store_is_easy_to_see(local_store):
    """`models` names every model; `show` falls back to the newest version; names get a suggestion."""
    import json

    wine = run_cli("train", "--dataset", "wine", "--name", "wine", "--store", local_store)
    assert wine.returncode == 0, wine.stderr
    models = json.loads(run_cli("models", "--store", local_store, "--json").stdout)["models"]
    assert [m["name"] for m in models] == ["digits", "wine"]
    assert "production" in models[0]["aliases"] and models[1]["aliases"] == {}
    table = run_cli("models", "--store", local_store).stdout
    assert "digits" in table and "wine" in table and "production=" in table

    shown = run_cli("show", "--name", "wine", "--store", local_store)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["name"] == "wine"
    assert "alias 'production' of wine is not set; showing the newest version" in shown.stderr

    typo = run_cli("show", "--name", "wnie", "--store", local_store)
    assert typo.returncode == 4 and "did you mean 'wine'?" in typo.stderr
    dataset = run_cli("train", "--dataset", "digts", "--store", local_store)
    assert dataset.returncode == 7 and "did you mean 'digits'?" in dataset.stderr


def test_history_and_rollback_to_a_named_version(store_uri, trained_digits):
    """A second rollback used to go forward again (one `previous`); history keeps every move."""
    import json
    from datetime import UTC, datetime

    from model.artifact import new_version
    from model.store import ModelStore

    store = ModelStore(store_uri)
    artifact, manifest = trained_digits
    versions = []
    for year in (2031, 2032, 2033):
        version = new_version(datetime(year, 1, 1, tzinfo=UTC), manifest["artifact"]["sha256"])
        store.publish(artifact, {**manifest, "version": version})
        store.move_alias("digits", "production", version)
        versions.append(version)

    moves = json.loads(run_cli("history", "--store", store_uri, "--json").stdout)["moves"]
    assert [m["version"] for m in moves] == versions[::-1]
    assert moves[-1]["previous"] is None and moves[0]["previous"] == versions[1]

    back = run_cli("rollback", "--store", store_uri, "--to", versions[0])
    assert back.returncode == 0, back.stderr
    assert store.alias("digits", "production").version == versions[0]
    table = run_cli("history", "--store", store_uri).stdout
    assert table.splitlines()[1].split()[1] == versions[0]  # the rollback is the newest move
    missing = run_cli("rollback", "--store", store_uri, "--to", "20200101T000000Z-deadbeef")
    assert missing.returncode == 4


def test_a_different_task_or_column_kind_is_a_schema_change():
    from model.gate import schema_difference

    def manifest(task="classification", plan="category"):
        columns = [{"name": "age", "kind": "number"}, {"name": "plan", "kind": plan}]
        return {"version": "v1", "task": task, "classes": [0, 1] if task == "classification" else [],
                "input_schema": {"type": "tabular", "features": ["age", "plan"], "n_features": 2,
                                 "columns": columns, "frame": True}}

    assert schema_difference(manifest(), manifest()) is None
    assert schema_difference(manifest(task="regression"), manifest()) == \
        "it is a regression model, v1 is a classification model"
    assert schema_difference(manifest(plan="text"), manifest()) == \
        "feature kinds differ from v1: plan category -> text"
