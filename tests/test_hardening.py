"""The smaller faults of issue 10, each reproduced: a full disk, a corrupt manifest, an empty name,
numpy's warnings in the log."""

from __future__ import annotations

import errno
import json
from pathlib import Path

import pytest
from helpers import run_cli

from model.errors import StoreError


def test_a_full_disk_leaves_no_temp_file_behind(tmp_path, monkeypatch):
    from model.backends import open_backend

    backend = open_backend(str(tmp_path / "store"))
    real_fsync = __import__("os").fsync

    def disk_full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("os.fsync", disk_full)
    with pytest.raises(StoreError, match="No space left on device"):
        backend.write("digits/versions/v/model.joblib", b"x" * 1000)
    with pytest.raises(StoreError, match="No space left on device"):
        backend.create("digits/versions/v/manifest.json", b"{}")
    monkeypatch.setattr("os.fsync", real_fsync)
    leftovers = [p for p in (tmp_path / "store").rglob("*") if p.is_file()]
    assert leftovers == [], leftovers


def test_one_corrupt_manifest_does_not_hide_the_others(local_store, trained_digits):
    from datetime import UTC, datetime

    from model.artifact import new_version
    from model.store import ModelStore

    store = ModelStore(local_store)
    artifact, manifest = trained_digits
    version = new_version(datetime(2031, 1, 1, tzinfo=UTC), manifest["artifact"]["sha256"])
    store.publish(artifact, {**manifest, "version": version})
    manifest_file = next(p for p in Path(local_store).rglob("manifest.json")
                         if version in str(p))
    manifest_file.write_text("{not json")

    result = run_cli("list", "--store", local_store)
    assert result.returncode == 6, result.stderr
    assert manifest["version"] in result.stdout  # the good version is still listed
    assert f"{version}   UNREADABLE MANIFEST" in result.stdout
    assert result.stderr.startswith(f"error: 1 version(s) have an unreadable manifest: {version}: ")
    listed = json.loads(run_cli("list", "--store", local_store, "--json").stdout)
    assert [row.get("error") is not None for row in listed["versions"]].count(True) == 1


@pytest.mark.parametrize("flag", ["--name", "--store"])
def test_an_empty_name_or_store_is_refused_not_the_default(local_store, flag):
    result = run_cli("list", "--store", local_store, flag, "")
    assert result.returncode == 2
    assert result.stderr.strip() == f"error: {flag} was given an empty value"


def test_numpy_warnings_never_reach_the_log_as_plain_text(gunicorn_server):
    import requests

    requests.post(gunicorn_server.url + "/predict", json={"instances": [[1e308] * 64]}, timeout=10)
    requests.post(gunicorn_server.url + "/predict", json={"instances": [[-1e300] * 64]}, timeout=10)
    plain = [line for line in gunicorn_server.log().splitlines() if line and not line.startswith("{")]
    assert plain == [], plain[:3]


def test_a_huge_header_gets_the_json_error_shape(gunicorn_server):
    import socket

    with socket.create_connection(("127.0.0.1", gunicorn_server.port), timeout=10) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n")
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.split(b"\r\n")[0].split(b" ")[1] in (b"400", b"431"), head
    assert b"Content-Type: application/json" in head
    error = json.loads(body)["error"]
    assert error["code"] in ("bad_request", "header_too_large") and error["message"]



def test_clean_removes_what_a_crashed_publish_left_and_nothing_else(store_uri, trained_digits):
    from model.store import ModelStore

    store = ModelStore(store_uri)
    artifact, manifest = trained_digits
    store.publish(artifact, manifest)
    # A publish that died after the pickle (an old one), and one that may still be running (now).
    store.backend.write("digits/versions/20200101T000000Z-deadbeef/model.joblib", b"half")
    from datetime import UTC, datetime

    running = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-0badcafe"
    store.backend.write(f"digits/versions/{running}/model.joblib", b"in progress")
    empty = Path(store_uri) / "digits/versions/20200102T000000Z-00000000"
    if store_uri.startswith("/"):  # a local store can also hold an empty version folder
        empty.mkdir()

    dry = run_cli("clean", "--store", store_uri, "--dry-run")
    assert dry.returncode == 0 and "would remove incomplete digits 20200101T000000Z-deadbeef" in dry.stdout
    assert running not in dry.stdout
    result = run_cli("clean", "--store", store_uri)
    assert result.returncode == 0, result.stderr
    assert "removing incomplete digits 20200101T000000Z-deadbeef (model.joblib)" in result.stdout
    keys = store.backend.list_keys("digits/versions")
    assert not any("20200101T000000Z-deadbeef" in k for k in keys)
    assert any(running in k for k in keys)  # a publish in progress is left alone
    assert store.versions("digits") == [manifest["version"]]
    assert store.manifest("digits", manifest["version"])["version"] == manifest["version"]
    assert not empty.exists()
