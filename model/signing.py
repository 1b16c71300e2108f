"""Signed model versions: a signature over the manifest's exact bytes, checked before unpickling.

The manifest pins the pickle's sha256, so a valid signature over the manifest vouches for the pickle
too. Publishing writes `signature.json` beside the manifest (before it: the manifest stays the
version's completion marker). A reader with a verification key refuses a version whose signature is
missing, made by another key, or does not match, before a byte of the pickle is unpickled.

Keys (given as `--sign-key`/`MODEL_SIGNING_KEY` and `--verify-key`/`MODEL_VERIFY_KEY`):

    PATH            an Ed25519 key in PEM (private to sign, public to verify); `python -m model keygen`
    kms:KEY         an AWS KMS asymmetric key (ECC_NIST_P256, ECDSA_SHA_256): KMS signs, and
                    verification calls kms:Verify (the service needs only that permission)
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from model.errors import IntegrityError, ModelError, UsageError

SIGNATURE_FILE = "signature.json"
KMS_ALGORITHM = "ECDSA_SHA_256"


@dataclass(frozen=True)
class Signature:
    """What `signature.json` holds."""

    algorithm: str  # ed25519 or kms:ECDSA_SHA_256
    key_id: str
    value: bytes

    def to_bytes(self) -> bytes:
        return (json.dumps({"algorithm": self.algorithm, "key_id": self.key_id,
                            "signature": base64.b64encode(self.value).decode()}, indent=2) + "\n").encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> Signature:
        try:
            record = json.loads(data)
            return cls(record["algorithm"], record["key_id"], base64.b64decode(record["signature"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise IntegrityError(f"the signature record is malformed: {exc}") from None


def _public_key_id(public_key) -> str:
    from cryptography.hazmat.primitives import serialization

    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return "ed25519:" + hashlib.sha256(raw).hexdigest()[:16]


class Ed25519Signer:
    """Signs with a local Ed25519 private key (the publishing side's secret)."""

    def __init__(self, path: Path):
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        try:
            key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
        except (OSError, ValueError, TypeError) as exc:
            raise UsageError(f"cannot read the signing key {path}: {exc}") from None
        if not isinstance(key, Ed25519PrivateKey):
            raise UsageError(f"the signing key {path} is not an Ed25519 private key")
        self._key = key
        self.key_id = _public_key_id(key.public_key())

    def sign(self, payload: bytes) -> Signature:
        return Signature("ed25519", self.key_id, self._key.sign(payload))


class Ed25519Verifier:
    """Verifies with the matching public key (what the service is given)."""

    def __init__(self, path: Path):
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

        try:
            key = serialization.load_pem_public_key(Path(path).read_bytes())
        except (OSError, ValueError, TypeError) as exc:
            raise UsageError(f"cannot read the verification key {path}: {exc}") from None
        if not isinstance(key, Ed25519PublicKey):
            raise UsageError(f"the verification key {path} is not an Ed25519 public key")
        self._key = key
        self.key_id = _public_key_id(key)

    def verify(self, payload: bytes, signature: Signature) -> None:
        from cryptography.exceptions import InvalidSignature

        if signature.algorithm != "ed25519" or signature.key_id != self.key_id:
            raise IntegrityError(f"signed by {signature.algorithm} key {signature.key_id}, not by the "
                                 f"configured key {self.key_id}")
        try:
            self._key.verify(signature.value, payload)
        except InvalidSignature:
            raise IntegrityError("the signature does not match the manifest") from None


class KmsSigner:
    """Signs through AWS KMS (the private key never leaves KMS); verifies with kms:Verify."""

    def __init__(self, key: str, client=None):
        self.key_id = key
        self._client = client

    @property
    def client(self):
        if self._client is None:
            import boto3

            self._client = boto3.client("kms")
        return self._client

    def _call(self, action: str, **kwargs):
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return getattr(self.client, action)(KeyId=self.key_id, MessageType="RAW",
                                                SigningAlgorithm=KMS_ALGORITHM, **kwargs)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            if error.get("Code") == "KMSInvalidSignatureException":
                raise IntegrityError("the signature does not match the manifest (KMS)") from None
            raise ModelError(f"KMS {action} with {self.key_id}: {error.get('Code')}: "
                             f"{error.get('Message')}") from None
        except BotoCoreError as exc:
            raise ModelError(f"KMS {action} with {self.key_id}: {exc}") from None

    def sign(self, payload: bytes) -> Signature:
        answer = self._call("sign", Message=payload)
        return Signature(f"kms:{KMS_ALGORITHM}", answer["KeyId"], answer["Signature"])

    def verify(self, payload: bytes, signature: Signature) -> None:
        if signature.algorithm != f"kms:{KMS_ALGORITHM}":
            raise IntegrityError(f"signed with {signature.algorithm}, not the configured KMS key")
        if not self._call("verify", Message=payload, Signature=signature.value).get("SignatureValid"):
            raise IntegrityError("the signature does not match the manifest (KMS)")


def signer(spec: str | None):
    """The signer a `--sign-key` value names, or None."""
    if not spec:
        return None
    return KmsSigner(spec.removeprefix("kms:")) if spec.startswith("kms:") else Ed25519Signer(Path(spec))


def verifier(spec: str | None):
    """The verifier a `--verify-key` value names, or None (no signature is required then)."""
    if not spec:
        return None
    return KmsSigner(spec.removeprefix("kms:")) if spec.startswith("kms:") else Ed25519Verifier(Path(spec))


def generate_key_pair(folder: Path) -> tuple[Path, Path]:
    """Write signing.pem (private, mode 0600) and verify.pem (public) into `folder`."""
    import os

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    folder.mkdir(parents=True, exist_ok=True)
    private, public = folder / "signing.pem", folder / "verify.pem"
    if private.exists():
        raise UsageError(f"{private} exists: not overwriting a signing key")
    key = Ed25519PrivateKey.generate()
    fd = os.open(private, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                   serialization.NoEncryption()))
    public.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                     serialization.PublicFormat.SubjectPublicKeyInfo))
    return private, public
