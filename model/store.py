"""The model store: immutable versions and movable aliases, on a local folder or S3.

Layout (the same on both backends)::

    <store>/<name>/versions/<version>/model.joblib
    <store>/<name>/versions/<version>/manifest.json
    <store>/<name>/versions/<version>/model.onnx       (compiled and parity-checked, when it converts)
    <store>/<name>/versions/<version>/signature.json   (signed versions)
    <store>/<name>/versions/<version>/report.html      (optional, written after the manifest)
    <store>/<name>/aliases/<alias>.json
    <store>/<name>/history/<alias>/<time>-<version>.json

A version is complete only once its manifest exists: publishing writes the pickle first and the
manifest last, so a crash in between leaves nothing that is listed or loaded.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from model.artifact import (
    ARTIFACT_FILE,
    MANIFEST_FILE,
    REPORT_FILE,
    compiled_file,
    validate_manifest,
    verify_compiled,
)
from model.backends import open_backend
from model.errors import ConflictError, IntegrityError, NotFoundError, StoreError

# The defaults every command and the service share (flags and MODEL_* variables override them).
DEFAULT_STORE = "store"
DEFAULT_NAME = "digits"
DEFAULT_ALIAS = "production"
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_VERSION_RE = re.compile(r"^\d{8}T\d{6}Z-[0-9a-f]{8}$")


def is_version(value: str) -> bool:
    """True if `value` has the form of a version id (time plus hash), as opposed to an alias name."""
    return bool(_VERSION_RE.match(value or ""))


def check_name(kind: str, value: str) -> str:
    """Refuse names that would escape the layout (slashes, dots, empty)."""
    if not value or not _NAME_RE.match(value) or value in (".", ".."):
        raise StoreError(
            f"invalid {kind} {value!r}: use letters, digits, '.', '_' or '-' (max 128 characters)"
        )
    return value


def check_version(version: str) -> str:
    """Refuse a string that is not a version id (e.g. 20261122T013000Z-3f9a1c2b)."""
    if not _VERSION_RE.match(version or ""):
        raise NotFoundError(
            f"{version!r} is not a version id (expected e.g. 20261122T013000Z-3f9a1c2b)"
        )
    return version


@dataclass(frozen=True)
class Alias:
    """Where an alias points, where it pointed before, and the token a conditional move needs."""

    name: str
    version: str
    previous: str | None
    updated_at: str
    etag: str

    def to_json(self) -> dict:
        return {
            "alias": self.name,
            "version": self.version,
            "previous": self.previous,
            "updated_at": self.updated_at,
        }


class ModelStore:
    """Versions and aliases of named models in one store (see the module docstring)."""

    def __init__(self, uri: str, *, s3_client=None):
        self.backend = open_backend(uri, s3_client=s3_client)
        self.uri = self.backend.uri

    def check_writable(self) -> None:
        """Raise unless a version could be published now, before any work that would be lost: the
        S3 bucket exists (StoreNotFoundError, exit 4), the endpoint answers and the credentials work
        (StoreError, exit 3), and an object can be written (and removed again) under the store's
        prefix, or the local folder can be created and written (StoreError, exit 3)."""
        self.backend.check_writable()

    # -- keys -----------------------------------------------------------------------------
    @staticmethod
    def _version_key(name: str, version: str, file: str) -> str:
        return f"{check_name('model name', name)}/versions/{check_version(version)}/{file}"

    @staticmethod
    def _alias_key(name: str, alias: str) -> str:
        return f"{check_name('model name', name)}/aliases/{check_name('alias', alias)}.json"

    # -- versions -------------------------------------------------------------------------
    def models(self) -> list[str]:
        """Names of the models that have at least one complete version.

        Lists the top-level folders, then each one's versions only: a model's other folders (its
        captured predictions, thousands of files a day) are never listed."""
        return sorted(name for name in self.backend.list_folders("")
                      if _NAME_RE.match(name) and self.versions(name))

    def _did_you_mean(self, name: str) -> str:
        """A hint naming the closest model in the store (or the models there), for a mistyped name."""
        import difflib

        models = self.models()
        close = difflib.get_close_matches(name, models, n=1)
        if close:
            return f"; did you mean {close[0]!r}?"
        return f" (models there: {', '.join(models)})" if models else ""

    def _no_versions(self, name: str) -> NotFoundError:
        return NotFoundError(f"model {name!r} has no versions in {self.uri}{self._did_you_mean(name)}")

    def versions(self, name: str) -> list[str]:
        """Complete versions of a model, newest first. Versions without a manifest are skipped."""
        check_name("model name", name)
        found = []
        for key in self.backend.list_keys(f"{name}/versions"):
            parts = key.split("/")
            if len(parts) == 4 and parts[3] == MANIFEST_FILE and _VERSION_RE.match(parts[2]):
                found.append(parts[2])
        return sorted(found, reverse=True)

    def known_versions(self, name: str) -> list[str]:
        """Like `versions`, but a model without any is NotFoundError, naming the closest model there."""
        found = self.versions(name)
        if not found:
            raise self._no_versions(name)
        return found

    def incomplete(self, name: str, older_than: timedelta) -> dict[str, list[str]]:
        """Versions that never got their manifest (a publish that crashed or ran out of disk), by
        version, with their keys. Only those whose id time is older than `older_than`: a younger
        one may be a publish still in progress."""
        check_name("model name", name)
        now = datetime.now(UTC)
        found: dict[str, list[str]] = {}
        for key in self.backend.list_keys(f"{name}/versions"):
            parts = key.split("/")
            if len(parts) == 4 and _VERSION_RE.match(parts[2]):
                found.setdefault(parts[2], []).append(key)
        stale = {}
        for version, keys in found.items():
            started = datetime.strptime(version[:16], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
            if not any(k.endswith("/" + MANIFEST_FILE) for k in keys) and now - started > older_than:
                stale[version] = sorted(keys)
        return stale

    def remove_incomplete(self, name: str, version: str) -> None:
        """Delete a version that has no manifest (never a complete one: those are immutable)."""
        if self.backend.exists(self._version_key(name, version, MANIFEST_FILE)):
            raise ConflictError(f"version {version} of {name} is complete: versions are immutable")
        for key in self.backend.list_keys(f"{name}/versions/{version}"):
            self.backend.delete(key)

    def prune(self, name: str) -> int:
        """Remove empty version folders (local stores); how many."""
        return self.backend.prune(f"{check_name('model name', name)}/versions")

    def manifest(self, name: str, version: str, *, verifier=None) -> dict:
        """The manifest of one complete version (validated).

        With a `verifier` (model.signing) the version's signature over the manifest's exact bytes is
        checked first: a missing or wrong signature is an IntegrityError.
        """
        key = self._version_key(name, version, MANIFEST_FILE)
        try:
            data, _ = self.backend.read(key)
        except NotFoundError:
            if not self.versions(name):
                raise self._no_versions(name) from None
            raise NotFoundError(f"version {version!r} of model {name!r} not found") from None
        if verifier is not None:
            verify_signature(data, self.signature(name, version), verifier, f"{name} {version}")
        return parse_manifest(data, name, version)

    def manifest_bytes(self, name: str, version: str) -> bytes:
        """The manifest exactly as stored (what a signature covers)."""
        data, _ = self.backend.read(self._version_key(name, version, MANIFEST_FILE))
        return data

    def signature(self, name: str, version: str):
        """The version's model.signing.Signature, or None if it was published unsigned."""
        from model.signing import SIGNATURE_FILE, Signature

        try:
            data, _ = self.backend.read(self._version_key(name, version, SIGNATURE_FILE))
        except NotFoundError:
            return None
        return Signature.from_bytes(data)

    def read_compiled(self, name: str, version: str, manifest: dict) -> bytes:
        """The version's ONNX file, checked against the manifest (IntegrityError if missing or wrong)."""
        try:
            data, _ = self.backend.read(self._version_key(name, version, compiled_file(manifest)))
        except NotFoundError:
            raise IntegrityError(f"{compiled_file(manifest)} of {name} {version} is missing") from None
        verify_compiled(data, manifest)
        return data

    def read_artifact(self, name: str, version: str) -> bytes:
        """The pickle's bytes, unverified: callers check them against the manifest."""
        try:
            data, _ = self.backend.read(self._version_key(name, version, ARTIFACT_FILE))
        except NotFoundError:
            raise IntegrityError(f"artifact of {name} {version} is missing") from None
        return data

    def publish(self, artifact: bytes, manifest: dict, *, signer=None, onnx: bytes | None = None) -> dict:
        """Publish a new version: the pickle and model.onnx first, then the signature, the manifest last
        (create-only).

        The version id comes from the manifest. With a `signer` (model.signing) the manifest's bytes
        are signed. A version is not listed until its manifest exists. `onnx` is required when the
        manifest records a compiled file, and checked against it.
        """
        validate_manifest(manifest)
        if compiled_file(manifest):
            if onnx is None:
                raise IntegrityError(f"{manifest['name']} {manifest['version']} records "
                                     f"{compiled_file(manifest)} but none was given to publish")
            verify_compiled(onnx, manifest)
        name, version = manifest["name"], manifest["version"]
        self.backend.check()
        manifest_key = self._version_key(name, version, MANIFEST_FILE)
        if self.backend.exists(manifest_key):
            raise ConflictError(f"version {version} of {name} already exists; versions are immutable")
        body = _dump(manifest)
        self.backend.write(self._version_key(name, version, ARTIFACT_FILE), artifact)
        if compiled_file(manifest):
            self.backend.write(self._version_key(name, version, compiled_file(manifest)), onnx)
        if signer is not None:
            from model.signing import SIGNATURE_FILE

            self.backend.write(self._version_key(name, version, SIGNATURE_FILE), signer.sign(body).to_bytes())
        self.backend.create(manifest_key, body)
        return manifest

    def write_report(self, name: str, version: str, html: str) -> None:
        """Store a complete version's HTML report (model/report.py) beside its manifest.

        The report is derived from the manifest, not part of what the signature covers: it can be
        written again (a newer comparison), and the service sends it with a script-free policy.
        """
        self.manifest(name, version)  # only for complete versions
        self.backend.write(self._version_key(name, version, REPORT_FILE), html.encode("utf-8"))

    def read_report(self, name: str, version: str) -> str:
        """A version's stored HTML report; NotFoundError if none was written."""
        try:
            data, _ = self.backend.read(self._version_key(name, version, REPORT_FILE))
        except NotFoundError:
            raise NotFoundError(f"{name} {version} has no report (python -m model report {version} "
                                "--publish writes one)") from None
        return data.decode("utf-8")

    # -- aliases --------------------------------------------------------------------------
    def alias(self, name: str, alias: str = DEFAULT_ALIAS) -> Alias | None:
        """Read an alias, or None if it was never set."""
        try:
            data, etag = self.backend.read(self._alias_key(name, alias))
        except NotFoundError:
            return None
        try:
            record = json.loads(data)
            return Alias(alias, record["version"], record.get("previous"), record["updated_at"], etag)
        except (ValueError, KeyError, TypeError):
            raise IntegrityError(f"alias {alias!r} of {name} is not a valid alias record") from None

    def aliases(self, name: str) -> dict[str, Alias]:
        """All aliases of a model, by alias name."""
        found = {}
        for key in self.backend.list_keys(f"{check_name('model name', name)}/aliases"):
            stem = key.rsplit("/", 1)[-1]
            if stem.endswith(".json"):
                record = self.alias(name, stem[: -len(".json")])
                if record:
                    found[record.name] = record
        return found

    def move_alias(
        self, name: str, alias: str, version: str, *, expected: Alias | str | None = "read"
    ) -> Alias:
        """Point `alias` at `version`, keeping its old target as `previous`.

        The write is conditional on the alias still being what was read (`expected`; by default it
        is read here), so of two concurrent moves one wins and the other gets ConflictError.
        """
        self.manifest(name, version)  # refuse unknown or incomplete versions
        current = self.alias(name, alias) if expected == "read" else expected
        record = {
            "alias": alias,
            "version": version,
            "previous": current.version if current else None,
            "updated_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        key = self._alias_key(name, alias)
        self.backend.write_if(key, _dump(record), current.etag if current else None)
        # One object per move (never rewritten): the alias keeps one `previous`, this keeps them all.
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        self.backend.write(f"{check_name('model name', name)}/history/{check_name('alias', alias)}/"
                           f"{stamp}-{version}.json", _dump(record))
        moved = self.alias(name, alias)
        assert moved is not None
        return moved

    def history(self, name: str, alias: str = DEFAULT_ALIAS) -> list[dict]:
        """Every move of `alias`, newest first: {"version", "previous", "updated_at"}."""
        prefix = f"{check_name('model name', name)}/history/{check_name('alias', alias)}"
        moves = []
        for key in sorted(self.backend.list_keys(prefix), reverse=True):
            if key.endswith(".json"):
                data, _ = self.backend.read(key)
                try:
                    moves.append(json.loads(data))
                except ValueError:
                    raise IntegrityError(f"alias history entry {key} is not valid JSON") from None
        return moves

    def rollback(self, name: str, alias: str = DEFAULT_ALIAS) -> Alias:
        """Move an alias back to its previous version (the previous becomes the one rolled from)."""
        current = self.alias(name, alias)
        if current is None:
            raise NotFoundError(f"alias {alias!r} of model {name!r} is not set")
        if not current.previous:
            raise NotFoundError(f"alias {alias!r} of {name} has no previous version to roll back to")
        return self.move_alias(name, alias, current.previous, expected=current)

    def resolve(self, name: str, *, alias: str | None = None, version: str | None = None) -> str:
        """The concrete version a (pinned version | alias) selects; a pin wins over an alias."""
        if version:
            self.manifest(name, version)
            return version
        alias = alias or DEFAULT_ALIAS
        record = self.alias(name, alias)
        if record is None:
            if not self.versions(name):
                raise self._no_versions(name)
            raise NotFoundError(f"alias {alias!r} of model {name!r} is not set")
        return record.version


def parse_manifest(data: bytes, name: str, version: str) -> dict:
    """A manifest's bytes as a validated dict that describes `name` `version`."""
    try:
        manifest = json.loads(data)
    except ValueError:
        raise IntegrityError(f"manifest of {name} {version} is not valid JSON") from None
    validate_manifest(manifest)
    if manifest["name"] != name or manifest["version"] != version:
        raise IntegrityError(
            f"manifest at {name}/{version} describes {manifest['name']}/{manifest['version']}"
        )
    return manifest


def verify_signature(manifest_bytes: bytes, signature, verifier, what: str) -> None:
    """IntegrityError unless `signature` is `verifier`'s valid signature over `manifest_bytes`."""
    if signature is None:
        raise IntegrityError(f"{what} is not signed, and a verification key is configured")
    try:
        verifier.verify(manifest_bytes, signature)
    except IntegrityError as exc:
        raise IntegrityError(f"{what}: {exc}") from None


def _dump(obj: dict) -> bytes:
    return (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode()
