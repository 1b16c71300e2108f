"""Signed models: write access to the store is no longer code execution where a key is configured.

Reproduced first as the issue did: a pickle whose `__reduce__` runs a payload, published with a
manifest carrying its correct sha256, ran on `python -m model verify` and in every worker. With a
verification key the version is refused before it is unpickled, because nobody without the signing
key can sign its manifest.
"""

from __future__ import annotations

import json
import pickle

import pytest
import requests
from helpers import GunicornServer, run_cli

from model.artifact import sha256_bytes


class Payload:
    """Unpickling this writes a marker file: the attacker's code running."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))  # opening for writing creates the file


@pytest.fixture
def keys(tmp_path):
    from model.signing import generate_key_pair

    signing, verify = generate_key_pair(tmp_path / "keys")
    _, other = generate_key_pair(tmp_path / "other")
    return {"signing": str(signing), "verify": str(verify), "other": str(other)}


@pytest.fixture
def signed_store(tmp_path, keys, trained_digits):
    from model.signing import signer
    from model.store import ModelStore

    uri = str(tmp_path / "store")
    store = ModelStore(uri)
    artifact, manifest = trained_digits
    store.publish(artifact, manifest, signer=signer(keys["signing"]))
    store.move_alias("digits", "production", manifest["version"])
    return {"uri": uri, "store": store, "version": manifest["version"], "manifest": manifest}


def plant_malicious_version(store, manifest: dict, marker) -> str:
    """What someone with write access but no signing key can do: a valid, unsigned version."""
    from datetime import UTC, datetime

    from model.artifact import new_version

    bad = pickle.dumps(Payload(str(marker)))
    version = new_version(datetime(2032, 1, 1, tzinfo=UTC), sha256_bytes(bad))
    store.publish(bad, {**manifest, "version": version,
                        "artifact": {**manifest["artifact"], "sha256": sha256_bytes(bad), "size": len(bad)}})
    return version


def test_without_a_key_a_malicious_pickle_runs(signed_store, tmp_path):
    marker = tmp_path / "pwned"
    version = plant_malicious_version(signed_store["store"], signed_store["manifest"], marker)
    run_cli("verify", "--store", signed_store["uri"], "--version", version)
    assert marker.exists()  # the threat the signature closes


def test_with_a_key_it_is_refused_before_unpickling(signed_store, keys, tmp_path):
    marker = tmp_path / "pwned"
    version = plant_malicious_version(signed_store["store"], signed_store["manifest"], marker)
    result = run_cli("verify", "--store", signed_store["uri"], "--version", version,
                     "--verify-key", keys["verify"])
    assert result.returncode == 6
    assert result.stderr.strip() == \
        f"error: digits {version} is not signed, and a verification key is configured"
    assert not marker.exists()
    promote = run_cli("promote", version, "--store", signed_store["uri"], "--verify-key", keys["verify"])
    assert promote.returncode == 6 and not marker.exists()


def test_a_signed_version_verifies_and_others_keys_or_edits_do_not(signed_store, keys):
    uri, version = signed_store["uri"], signed_store["version"]
    ok = run_cli("verify", "--store", uri, "--verify-key", keys["verify"])
    assert ok.returncode == 0 and "signature by ed25519:" in ok.stdout and "valid" in ok.stdout
    other = run_cli("verify", "--store", uri, "--verify-key", keys["other"])
    assert other.returncode == 6 and "not by the configured key" in other.stderr
    # An edit of the signed manifest (a better-looking metric) breaks the signature.
    path = next(p for p in __import__("pathlib").Path(uri).rglob("manifest.json") if version in str(p))
    edited = json.loads(path.read_text())
    edited["metrics"]["macro_f1"] = 0.999
    path.write_text(json.dumps(edited, indent=2, sort_keys=True) + "\n")
    tampered = run_cli("verify", "--store", uri, "--verify-key", keys["verify"])
    assert tampered.returncode == 6 and "does not match" in tampered.stderr


def test_the_service_refuses_an_unsigned_version(signed_store, keys, tmp_path):
    marker = tmp_path / "pwned"
    store = signed_store["store"]
    version = plant_malicious_version(store, signed_store["manifest"], marker)
    store.move_alias("digits", "production", version)
    server = GunicornServer(tmp_path / "g", {"MODEL_STORE": signed_store["uri"],
                                             "MODEL_VERIFY_KEY": keys["verify"]},
                            workers=1, wait_ready=False)
    try:
        answer = requests.get(server.url + "/ready", timeout=10)
        assert answer.status_code == 503 and "not signed" in answer.json()["error"]["message"]
        assert not marker.exists()
    finally:
        server.stop()


def test_kms_signs_and_verifies_on_the_moto_server(aws_env, tmp_path, trained_digits):
    import boto3

    from model.errors import IntegrityError
    from model.signing import signer, verifier
    from model.store import ModelStore

    kms = boto3.client("kms")
    key = kms.create_key(KeyUsage="SIGN_VERIFY", KeySpec="ECC_NIST_P256")["KeyMetadata"]["KeyId"]
    other = kms.create_key(KeyUsage="SIGN_VERIFY", KeySpec="ECC_NIST_P256")["KeyMetadata"]["KeyId"]
    store = ModelStore(str(tmp_path / "store"))
    artifact, manifest = trained_digits
    store.publish(artifact, manifest, signer=signer(f"kms:{key}"))
    assert store.manifest("digits", manifest["version"], verifier=verifier(f"kms:{key}"))["version"]
    with pytest.raises(IntegrityError, match="does not match"):
        store.manifest("digits", manifest["version"], verifier=verifier(f"kms:{other}"))
    assert store.signature("digits", manifest["version"]).algorithm == "kms:ECDSA_SHA_256"
