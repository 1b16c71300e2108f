"""Byte storage for the model store: a local folder or an S3 prefix, behind one small interface.

Both backends offer the same primitives, so `model.store` has a single code path. The only
write that must be safe against concurrent writers (an alias move) goes through
`write_if(key, data, expected_etag)`: a conditional PUT (If-Match / If-None-Match) on S3, and an
exclusive lock plus an atomic rename on disk.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import tempfile
from pathlib import Path
from urllib.parse import urlparse

from model.errors import ConflictError, NotFoundError, StoreError, StoreNotFoundError

# S3 bucket naming rules (the common subset; dotted names are allowed but not IP-like ones).
_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
# The pre-flight check (check_writable) writes its probe here, then deletes it. No command lists or
# reads it: a model's keys are <name>/versions/..., <name>/aliases/..., <name>/history/...
PREFLIGHT_PREFIX = ".preflight"


def _publish_mode(path: str) -> None:
    # mkstemp creates 0600; a store is read by other users too (a container's non-root user),
    # so give the file the mode a plain open() would have under the current umask.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)


class LocalBackend:
    """Keys are paths below a root folder."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.uri = f"file://{self.root.resolve()}"

    def _path(self, key: str) -> Path:
        return self.root / key

    def read(self, key: str) -> tuple[bytes, str]:
        """Return the object's bytes and an etag (its sha256)."""
        try:
            data = self._path(key).read_bytes()
        except FileNotFoundError:
            raise NotFoundError(f"{key} not found in {self.uri}") from None
        except OSError as exc:
            raise StoreError(f"cannot read {key} from {self.uri}: {exc.strerror}") from None
        return data, hashlib.sha256(data).hexdigest()

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def _staged(self, path: Path, data: bytes) -> str:
        """A complete, fsynced temp file beside `path`, with a normal file mode."""
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            _publish_mode(tmp)
        except BaseException:
            # A full disk (or an interrupt) must not leave a half-written temp file behind.
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        return tmp

    def write(self, key: str, data: bytes) -> None:
        """Write an object atomically (temp file, fsync, rename): readers never see half of it."""
        path = self._path(key)
        tmp = None
        try:
            tmp = self._staged(path, data)
            os.replace(tmp, path)
        except OSError as exc:
            if tmp:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
            raise StoreError(f"cannot write {key} to {self.uri}: {exc.strerror}") from None

    def create(self, key: str, data: bytes) -> None:
        """Write an object that must not exist yet (a version's manifest)."""
        path = self._path(key)
        try:
            tmp = self._staged(path, data)
        except OSError as exc:
            raise StoreError(f"cannot write {key} to {self.uri}: {exc.strerror}") from None
        try:
            # link() fails if the target exists, which makes create-if-absent atomic.
            os.link(tmp, path)
        except FileExistsError:
            raise ConflictError(f"{key} already exists in {self.uri}") from None
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)

    def write_if(self, key: str, data: bytes, expected_etag: str | None) -> None:
        """Replace an object only if it still has `expected_etag` (None: only if it is absent)."""
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        lock_path = path.parent / f".{path.name}.lock"
        with open(lock_path, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                current = hashlib.sha256(path.read_bytes()).hexdigest()
            except FileNotFoundError:
                current = None
            if current != expected_etag:
                raise ConflictError(f"{key} was changed by another writer; nothing was written")
            self.write(key, data)

    def delete(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._path(key).unlink()

    def list_folders(self, prefix: str) -> list[str]:
        """The names of the folders directly under a prefix (one level, not their contents)."""
        base = self._path(prefix)
        if not base.is_dir():
            return []
        return [path.name for path in base.iterdir() if path.is_dir() and not path.name.startswith(".")]

    def list_keys(self, prefix: str) -> list[str]:
        """All object keys under a prefix (a folder), in no particular order."""
        base = self._path(prefix)
        if not base.is_dir():
            return []
        keys = []
        for path in base.rglob("*"):
            if path.is_file() and not path.name.startswith("."):
                keys.append(path.relative_to(self.root).as_posix())
        return keys

    def prune(self, prefix: str) -> int:
        """Remove the empty folders under `prefix` (a crashed publish may leave them); how many."""
        base = self._path(prefix)
        if not base.is_dir():
            return 0
        removed = 0
        for folder in sorted((p for p in base.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
            with contextlib.suppress(OSError):  # not empty (or gone): keep it
                folder.rmdir()
                removed += 1
        return removed

    def check(self) -> None:
        """Raise StoreError unless the store can be used (for a local folder: it is a folder)."""
        if self.root.exists() and not self.root.is_dir():
            raise StoreError(f"store {self.uri} is not a folder")

    def check_writable(self) -> None:
        """Raise StoreError unless the folder can be created and a file written in it.

        Proven by doing it: folders this check had to create are removed again, so a command that
        fails later (bad data) leaves no empty store behind.
        """
        self.check()
        missing = [p for p in (self.root, *self.root.parents) if not p.exists()]
        try:
            try:
                self.root.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(f"cannot create the store folder {self.uri}: {exc.strerror}") from None
            try:
                fd, probe = tempfile.mkstemp(dir=self.root, prefix=f"{PREFLIGHT_PREFIX}-")
            except OSError as exc:
                raise StoreError(f"cannot write to the store {self.uri}: {exc.strerror}") from None
            os.close(fd)
            os.unlink(probe)
        finally:
            for folder in missing:  # deepest first
                with contextlib.suppress(OSError):
                    folder.rmdir()


class S3Backend:
    """Keys are object keys below `s3://bucket/prefix`. The client is passed in or built here."""

    def __init__(self, bucket: str, prefix: str = "", client=None):
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.uri = f"s3://{bucket}/{self.prefix}".rstrip("/")
        self._client = client

    @property
    def client(self):
        if self._client is None:
            import boto3

            # boto3 honours AWS_ENDPOINT_URL itself: the same code talks to AWS or a local S3.
            self._client = boto3.client("s3")
        return self._client

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def _call(self, what: str, fn, **kwargs):
        from botocore.exceptions import (
            BotoCoreError,
            ClientError,
            EndpointConnectionError,
            NoCredentialsError,
        )

        try:
            return fn(Bucket=self.bucket, **kwargs)
        except NoCredentialsError:
            raise StoreError(
                f"no AWS credentials found for {self.uri} (set AWS_PROFILE, AWS_ACCESS_KEY_ID/"
                "AWS_SECRET_ACCESS_KEY, or run with an IAM role)"
            ) from None
        except EndpointConnectionError as exc:
            raise StoreError(f"cannot reach the S3 endpoint for {self.uri}: {exc}") from None
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code == "NoSuchBucket":
                raise StoreNotFoundError(f"bucket {self.bucket!r} does not exist") from None
            if code in ("NoSuchKey", "404", "NotFound"):
                raise NotFoundError(f"{what} not found in {self.uri}") from None
            if code in ("PreconditionFailed", "412", "ConditionalRequestConflict", "409"):
                raise ConflictError(
                    f"{what} was changed by another writer; nothing was written"
                ) from None
            if code in ("AccessDenied", "403", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
                raise StoreError(f"access denied to {self.uri} ({code})") from None
            raise StoreError(f"S3 error on {what} in {self.uri}: {code or exc}") from None
        except BotoCoreError as exc:
            raise StoreError(f"S3 error on {what} in {self.uri}: {exc}") from None

    @staticmethod
    def _etag(response) -> str:
        return response["ETag"]

    def read(self, key: str) -> tuple[bytes, str]:
        response = self._call(key, self.client.get_object, Key=self._key(key))
        return response["Body"].read(), self._etag(response)

    def exists(self, key: str) -> bool:
        try:
            self._call(key, self.client.head_object, Key=self._key(key))
        except NotFoundError:
            return False
        return True

    def write(self, key: str, data: bytes) -> None:
        # A single PUT is atomic on S3: the object appears whole or not at all.
        self._call(key, self.client.put_object, Key=self._key(key), Body=data)

    def create(self, key: str, data: bytes) -> None:
        self._call(key, self.client.put_object, Key=self._key(key), Body=data, IfNoneMatch="*")

    def write_if(self, key: str, data: bytes, expected_etag: str | None) -> None:
        condition = {"IfMatch": expected_etag} if expected_etag else {"IfNoneMatch": "*"}
        self._call(key, self.client.put_object, Key=self._key(key), Body=data, **condition)

    def delete(self, key: str) -> None:
        self._call(key, self.client.delete_object, Key=self._key(key))

    def list_folders(self, prefix: str) -> list[str]:
        """The names of the "folders" directly under a prefix: S3's common prefixes with a "/"
        delimiter, so the objects below them are never listed."""
        base = self._key(prefix).rstrip("/")
        full = base + "/" if base else ""
        names, token = [], None
        while True:
            kwargs = {"Prefix": full, "Delimiter": "/"}
            if token:
                kwargs["ContinuationToken"] = token
            page = self._call(prefix or "the store", self.client.list_objects_v2, **kwargs)
            names.extend(p["Prefix"][len(full):].rstrip("/") for p in page.get("CommonPrefixes", []))
            if not page.get("IsTruncated"):
                return [name for name in names if name and not name.startswith(".")]
            token = page["NextContinuationToken"]

    def list_keys(self, prefix: str) -> list[str]:
        keys = []
        full = self._key(prefix).rstrip("/") + "/"
        token = None
        while True:
            kwargs = {"Prefix": full}
            if token:
                kwargs["ContinuationToken"] = token
            page = self._call(prefix, self.client.list_objects_v2, **kwargs)
            strip = len(self.prefix) + 1 if self.prefix else 0
            keys.extend(obj["Key"][strip:] for obj in page.get("Contents", []))
            if not page.get("IsTruncated"):
                return keys
            token = page["NextContinuationToken"]

    def prune(self, prefix: str) -> int:
        """S3 has no folders: nothing to prune."""
        return 0

    def check(self) -> None:
        """Raise unless the bucket answers: StoreNotFoundError if it does not exist, StoreError if the
        endpoint cannot be reached or the credentials are missing or refused."""
        # A one-key listing under the store's prefix, not HeadBucket: HeadBucket needs s3:ListBucket
        # without a prefix, which the stack's least-privilege roles do not have (their ListBucket is
        # conditioned on s3:prefix matching the store), so it would be refused on real AWS.
        prefix = f"{self.prefix}/" if self.prefix else ""
        try:
            self._call("bucket", self.client.list_objects_v2, Prefix=prefix, MaxKeys=1)
        except NotFoundError:
            raise StoreNotFoundError(f"bucket {self.bucket!r} does not exist") from None

    def check_writable(self) -> None:
        """Raise unless a version could be published here: the bucket exists (StoreNotFoundError),
        the credentials work and may put objects under the prefix (StoreError).

        Proven by putting a small probe object, `<prefix>/.preflight/probe`, and deleting it.
        """
        self.check()
        # One fixed key, not a random one: credentials that may put but not delete (publishing
        # never deletes, so a least-privilege publisher has no s3:DeleteObject) pass the check and
        # leave at most this one object, which no command reads, however often they run.
        probe = f"{PREFLIGHT_PREFIX}/probe"
        try:
            self.write(probe, b"pre-flight check of python -m model train/import/publish; safe to delete\n")
        except StoreError as exc:
            raise StoreError(f"cannot write to the store: {exc}") from None
        with contextlib.suppress(StoreError):
            self.delete(probe)


def open_backend(uri: str, *, s3_client=None) -> LocalBackend | S3Backend:
    """Build the backend for a store URI: `s3://bucket/prefix`, `file:///path` or a plain path."""
    if not uri or not uri.strip():
        raise StoreError("store URI is empty (set --store or MODEL_STORE)")
    parsed = urlparse(uri)
    if parsed.scheme == "s3":
        bucket = parsed.netloc
        if not bucket or not _BUCKET_RE.match(bucket):
            raise StoreError(
                f"malformed store URI {uri!r}: expected s3://bucket/prefix with a valid bucket name"
            )
        return S3Backend(bucket, parsed.path, client=s3_client)
    if parsed.scheme == "file":
        if parsed.netloc not in ("", "localhost"):
            raise StoreError(f"malformed store URI {uri!r}: file URIs take no host (file:///path)")
        return LocalBackend(Path(parsed.path))
    if parsed.scheme == "" or (len(parsed.scheme) == 1 and os.name == "nt"):
        return LocalBackend(Path(uri))
    raise StoreError(
        f"malformed store URI {uri!r}: use s3://bucket/prefix, file:///path or a folder path"
    )
