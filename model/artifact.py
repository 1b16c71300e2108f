"""The artifact format: a joblib pickle plus a JSON manifest that makes it verifiable.

A *candidate* is the same pair in a local folder, produced by `train --out DIR` and published
later (`publish DIR`), so a pipeline can train, gate and publish in separate stages.
"""

from __future__ import annotations

import hashlib
import io
import json
import platform
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from model.errors import DataError, IntegrityError

ARTIFACT_FILE = "model.joblib"
MANIFEST_FILE = "manifest.json"
REPORT_FILE = "report.html"
FORMAT = "joblib"
SCHEMA_VERSION = 1

REQUIRED_FIELDS = {
    "schema_version": int,
    "name": str,
    "version": str,
    "created_at": str,
    "artifact": dict,
    "runtime": dict,
    "git_commit": str,
    "data": dict,
    "params": dict,
    "metrics": dict,
    "classes": list,
    "input_schema": dict,
}
REQUIRED_NESTED = {
    "artifact": ("file", "sha256", "size", "format"),
    "runtime": ("python", "scikit_learn", "joblib", "numpy"),
    "data": ("source", "sha256", "rows"),
    "input_schema": ("type",),
}


@dataclass
class Candidate:
    """A described version: the pickle, its manifest and, when it compiled, model.onnx.

    It unpacks as `(artifact, manifest)`, as the pair did before compiled models.
    """

    artifact: bytes
    manifest: dict
    onnx: bytes | None = None

    def __iter__(self):
        yield self.artifact
        yield self.manifest


def compiled_file(manifest: dict) -> str | None:
    """The name of the version's ONNX file, or None if it has none (not compiled, or skipped)."""
    record = manifest.get("onnx") or {}
    return record.get("file")


def sha256_bytes(data: bytes) -> str:
    """Hex sha256 of bytes."""
    return hashlib.sha256(data).hexdigest()


def new_version(created: datetime, sha256: str) -> str:
    """A version id that is unique and sorts by time: UTC time plus the artifact hash's start."""
    return f"{created.strftime('%Y%m%dT%H%M%SZ')}-{sha256[:8]}"


def runtime_versions() -> dict:
    """Versions of the libraries that must match when the pickle is loaded."""
    import joblib
    import numpy
    import sklearn

    return {
        "python": platform.python_version(),
        "scikit_learn": sklearn.__version__,
        "joblib": joblib.__version__,
        "numpy": numpy.__version__,
    }


def dump_estimator(estimator) -> bytes:
    """Serialise an estimator with joblib into bytes."""
    import joblib

    buffer = io.BytesIO()
    joblib.dump(estimator, buffer, compress=3)
    return buffer.getvalue()


def validate_manifest(manifest: object) -> dict:
    """Raise IntegrityError naming the first missing or mistyped field."""
    if not isinstance(manifest, dict):
        raise IntegrityError("manifest is not a JSON object")
    for field, kind in REQUIRED_FIELDS.items():
        if field not in manifest:
            raise IntegrityError(f"manifest is missing the field {field!r}")
        if not isinstance(manifest[field], kind):
            raise IntegrityError(f"manifest field {field!r} should be a {kind.__name__}")
    for field, keys in REQUIRED_NESTED.items():
        for key in keys:
            if key not in manifest[field]:
                raise IntegrityError(f"manifest is missing the field '{field}.{key}'")
    if manifest["input_schema"]["type"] not in ("text", "tabular"):
        raise IntegrityError("manifest input_schema.type must be 'text' or 'tabular'")
    if manifest.get("task", "classification") not in ("classification", "regression"):
        raise IntegrityError("manifest task must be 'classification' or 'regression'")
    return manifest


def write_candidate(folder: Path, artifact: bytes, manifest: dict, onnx: bytes | None = None) -> Path:
    """Write a trained candidate (pickle, model.onnx if compiled, and manifest) to a local folder."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / ARTIFACT_FILE).write_bytes(artifact)
    if compiled_file(manifest):
        (folder / compiled_file(manifest)).write_bytes(onnx)
    (folder / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return folder


def read_candidate(folder: Path) -> Candidate:
    """Read a candidate folder back and check the pickle (and model.onnx) against its manifest."""
    folder = Path(folder)
    try:
        manifest = json.loads((folder / MANIFEST_FILE).read_text())
        artifact = (folder / ARTIFACT_FILE).read_bytes()
    except FileNotFoundError as exc:
        raise DataError(f"{folder} is not a candidate folder: {Path(exc.filename).name} missing") from None
    except ValueError:
        raise IntegrityError(f"{folder / MANIFEST_FILE} is not valid JSON") from None
    validate_manifest(manifest)
    verify_bytes(artifact, manifest)
    onnx = None
    if compiled_file(manifest):
        try:
            onnx = (folder / compiled_file(manifest)).read_bytes()
        except FileNotFoundError:
            raise DataError(f"{folder} is not a complete candidate: {compiled_file(manifest)} "
                            "missing") from None
        verify_compiled(onnx, manifest)
    return Candidate(artifact, manifest, onnx)


def verify_compiled(data: bytes, manifest: dict) -> None:
    """Raise IntegrityError unless the bytes are exactly the ONNX file the manifest describes."""
    expected = manifest["onnx"]
    label = f"{manifest.get('name')} {manifest.get('version')}"
    if len(data) != expected["size"] or sha256_bytes(data) != expected["sha256"]:
        raise IntegrityError(f"{expected['file']} of {label} fails its size or sha256 check: refusing to "
                             "load it")


def verify_bytes(artifact: bytes, manifest: dict) -> None:
    """Raise IntegrityError unless the bytes are exactly the artifact the manifest describes."""
    expected = manifest["artifact"]
    label = f"{manifest.get('name')} {manifest.get('version')}"
    if len(artifact) != expected["size"]:
        raise IntegrityError(
            f"artifact of {label} is {len(artifact)} bytes, manifest says {expected['size']} "
            "(truncated or replaced)"
        )
    actual = sha256_bytes(artifact)
    if actual != expected["sha256"]:
        raise IntegrityError(
            f"artifact of {label} fails its sha256 check (expected {expected['sha256'][:12]}..., "
            f"got {actual[:12]}...): refusing to load it"
        )
