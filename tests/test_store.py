"""The model store: layout, publish crash-safety, aliases and their races, on both backends."""

import threading

import boto3
import pytest

from model.errors import ConflictError, IntegrityError, NotFoundError, StoreError
from model.loader import load_model
from model.store import ModelStore


def _published(store_uri, trained_digits):
    store = ModelStore(store_uri)
    artifact, manifest = trained_digits
    store.publish(artifact, manifest)
    return store, manifest["version"]


def _second_version(trained_digits, suffix="1"):
    """Another version of the same model (same pickle, a later version id)."""
    artifact, manifest = trained_digits
    later = dict(manifest, version=f"2099010{suffix}T000000Z-{manifest['artifact']['sha256'][:8]}")
    return artifact, later


def test_publish_list_promote_load_verify(store_uri, trained_digits):
    store, version = _published(store_uri, trained_digits)
    artifact, newer = _second_version(trained_digits)
    store.publish(artifact, newer)

    assert store.versions("digits") == [newer["version"], version]  # newest first
    assert store.models() == ["digits"]
    assert store.manifest("digits", version)["metrics"]["accuracy"] > 0.9

    store.move_alias("digits", "production", version)
    moved = store.move_alias("digits", "production", newer["version"])
    assert (moved.version, moved.previous) == (newer["version"], version)

    loaded = load_model(store, "digits")
    assert loaded.version == newer["version"]
    assert loaded.estimator.predict_proba([[0.0] * 64]).shape == (1, 10)

    back = store.rollback("digits")
    assert (back.version, back.previous) == (version, newer["version"])
    assert load_model(store, "digits").version == version
    # A pinned version wins over the alias.
    assert load_model(store, "digits", version=newer["version"]).version == newer["version"]


def test_layout_matches_the_contract_on_s3(s3_bucket, trained_digits):
    store, version = _published(f"s3://{s3_bucket}/team/models", trained_digits)
    store.move_alias("digits", "production", version)
    keys = sorted(o["Key"] for o in boto3.client("s3").list_objects_v2(Bucket=s3_bucket)["Contents"])
    history = [k for k in keys if "/history/" in k]
    assert len(history) == 1 and history[0].startswith("team/models/digits/history/production/")
    assert history[0].endswith(f"-{version}.json")  # one object per alias move
    assert [k for k in keys if k not in history] == [
        "team/models/digits/aliases/production.json",
        f"team/models/digits/versions/{version}/manifest.json",
        f"team/models/digits/versions/{version}/model.joblib",
    ]


def test_layout_matches_the_contract_on_disk(tmp_path, trained_digits):
    store, version = _published(str(tmp_path / "st"), trained_digits)
    store.move_alias("digits", "production", version)
    files = sorted(
        p.relative_to(tmp_path / "st").as_posix()
        for p in (tmp_path / "st").rglob("*")
        if p.is_file() and not p.name.startswith(".")
    )
    history = [f for f in files if f.startswith("digits/history/production/")]
    assert len(history) == 1 and history[0].endswith(f"-{version}.json")
    assert [f for f in files if f not in history] == [
        "digits/aliases/production.json",
        f"digits/versions/{version}/manifest.json",
        f"digits/versions/{version}/model.joblib",
    ]


def test_crash_between_pickle_and_manifest_lists_nothing(store_uri, trained_digits, monkeypatch):
    store = ModelStore(store_uri)

    def crash(key, data):
        raise OSError("simulated crash before the manifest was written")

    monkeypatch.setattr(store.backend, "create", crash)
    artifact, manifest = trained_digits
    with pytest.raises(OSError):
        store.publish(artifact, manifest)
    # The pickle is there, but the version is incomplete: not listed, not loadable.
    assert store.backend.exists(f"digits/versions/{manifest['version']}/model.joblib")
    assert store.versions("digits") == []
    with pytest.raises(NotFoundError):
        store.manifest("digits", manifest["version"])
    with pytest.raises(NotFoundError):
        store.move_alias("digits", "production", manifest["version"])
    assert store.alias("digits", "production") is None


def test_versions_are_immutable(store_uri, trained_digits):
    store, _ = _published(store_uri, trained_digits)
    with pytest.raises(ConflictError, match="immutable"):
        store.publish(*trained_digits)


def test_two_concurrent_promotions_one_wins(store_uri, trained_digits):
    store, first = _published(store_uri, trained_digits)
    store.move_alias("digits", "production", first)
    a_art, a = _second_version(trained_digits, "1")
    b_art, b = _second_version(trained_digits, "2")
    store.publish(a_art, a)
    store.publish(b_art, b)

    # Both writers read the alias, then both try to move it: the second write must be refused.
    seen = store.alias("digits", "production")
    store.move_alias("digits", "production", a["version"], expected=seen)
    with pytest.raises(ConflictError, match="another writer"):
        store.move_alias("digits", "production", b["version"], expected=seen)
    current = store.alias("digits", "production")
    assert (current.version, current.previous) == (a["version"], first)


def test_racing_threads_lose_no_update(store_uri, trained_digits):
    store, first = _published(store_uri, trained_digits)
    store.move_alias("digits", "production", first)
    seen = store.alias("digits", "production")
    targets = []
    for i in range(1, 5):
        art, man = _second_version(trained_digits, str(i))
        store.publish(art, man)
        targets.append(man["version"])
    outcomes = []
    barrier = threading.Barrier(len(targets))

    def promote(version):
        writer = ModelStore(store_uri)
        barrier.wait()
        try:
            writer.move_alias("digits", "production", version, expected=seen)
            outcomes.append(("won", version))
        except ConflictError:
            outcomes.append(("lost", version))

    threads = [threading.Thread(target=promote, args=(v,)) for v in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [v for result, v in outcomes if result == "won"]
    assert len(winners) == 1
    assert store.alias("digits", "production").version == winners[0]
    assert store.alias("digits", "production").previous == first


def test_unknown_names_versions_and_aliases(store_uri, trained_digits):
    store, version = _published(store_uri, trained_digits)
    with pytest.raises(NotFoundError, match="no versions"):
        store.resolve("nope")
    with pytest.raises(NotFoundError, match="not set"):
        store.resolve("digits", alias="staging")
    with pytest.raises(NotFoundError, match="not found"):
        store.manifest("digits", "20000101T000000Z-00000000")
    with pytest.raises(NotFoundError, match="not a version id"):
        store.manifest("digits", "../../etc")
    with pytest.raises(StoreError, match="invalid alias"):
        store.move_alias("digits", "../x", version)
    store.move_alias("digits", "production", version)
    with pytest.raises(NotFoundError, match="no previous"):
        store.rollback("digits")


@pytest.mark.parametrize(
    "uri", ["s3://", "s3://Bad_Bucket/x", "ftp://host/path", "file://remote-host/x", "  "]
)
def test_malformed_store_uri(uri):
    with pytest.raises(StoreError, match=r"malformed|empty"):
        ModelStore(uri)


def test_missing_bucket(aws_env, trained_digits):
    store = ModelStore("s3://no-such-bucket-here/models")
    with pytest.raises(StoreError, match="does not exist"):
        store.publish(*trained_digits)
    with pytest.raises(StoreError, match="does not exist"):
        store.versions("digits")


def test_manifest_missing_fields_is_refused(store_uri, trained_digits):
    store, version = _published(store_uri, trained_digits)
    store.backend.write(f"digits/versions/{version}/manifest.json", b'{"name": "digits"}')
    with pytest.raises(IntegrityError, match="missing the field"):
        store.manifest("digits", version)
    store.backend.write(f"digits/versions/{version}/manifest.json", b"{not json")
    with pytest.raises(IntegrityError, match="not valid JSON"):
        store.manifest("digits", version)


def test_local_store_files_are_readable_by_other_users(tmp_path, trained_digits):
    # A container's non-root user reads a mounted store: files must not be owner-only.
    store, version = _published(str(tmp_path / "st"), trained_digits)
    store.move_alias("digits", "production", version)
    for path in (tmp_path / "st").rglob("*"):
        if path.is_file() and not path.name.startswith("."):
            assert path.stat().st_mode & 0o044 == 0o044, path


def test_listing_models_never_lists_a_models_other_folders(store_uri, trained_digits):
    """`models` (and `list`, and the did-you-mean hint) read the top-level folders and each one's
    versions, never what else a model folder holds: its captured predictions grow by thousands of
    files a day."""
    store, _ = _published(store_uri, trained_digits)
    for i in range(3):
        store.backend.write(f"digits/capture/version=v/date=2026-12-02/hour=17/f-{i}.jsonl", b"{}\n")
    store.backend.write("notes/readme.txt", b"not a model")  # a folder without versions
    listed = []
    original = store.backend.list_keys
    store.backend.list_keys = lambda prefix: listed.append(prefix) or original(prefix)
    assert store.models() == ["digits"]
    assert listed and all(prefix.endswith("/versions") for prefix in listed), listed
