"""The files a batch run scores: found under a local path or an s3:// prefix, and read as text streams.

An input is a `.csv` or `.jsonl` file, a local folder or an S3 prefix holding them (every such file
below it, at any depth). Each is read as a text stream: a local file as it is, an S3 object through
its streaming body, so no file is ever held whole in memory. The stream counts the bytes it has
read, which the progress line turns into an ETA.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path

from model.errors import NotFoundError, UsageError

SUFFIXES = (".csv", ".jsonl")


@dataclass(frozen=True)
class InputFile:
    """One file to score: where it is, its name relative to the input, its size and its identity
    (the S3 ETag, or a local file's modification time), which a done marker records."""

    uri: str
    relative: str
    size: int
    etag: str

    @property
    def kind(self) -> str:
        """"csv" or "jsonl"."""
        return "csv" if self.uri.endswith(".csv") else "jsonl"


def is_s3(uri: str) -> bool:
    return uri.startswith("s3://")


def split_s3(uri: str) -> tuple[str, str]:
    """(bucket, key) of an s3:// URI; UsageError if it names no bucket."""
    bucket, _, key = uri[len("s3://"):].partition("/")
    if not bucket:
        raise UsageError(f"{uri!r} names no bucket: use s3://bucket/prefix")
    return bucket, key


def s3_backend(bucket: str):
    """The store's S3 backend for a bucket: its one boto3 client and its mapping of S3 errors to exit
    codes (no such bucket or key: 4; no credentials, unreachable, denied: 3)."""
    from model.backends import S3Backend

    return S3Backend(bucket)


def s3_call(backend, what: str, method: str, **kwargs):
    """A call of the backend's S3 client, its errors mapped as the store maps them."""
    return backend._call(what, getattr(backend.client, method), **kwargs)  # the store's own mapping


def scorable(name: str) -> bool:
    base = name.rsplit("/", 1)[-1]
    return name.endswith(SUFFIXES) and not base.startswith(".") and not base.endswith(
        (".errors.jsonl", ".done"))


def list_inputs(uri: str) -> tuple[list[InputFile], bool]:
    """The files to score under `uri`, sorted by relative name, and whether `uri` names one file.

    NotFoundError when the path or key does not exist or holds no .csv/.jsonl file; UsageError for a
    file of another type."""
    if is_s3(uri):
        return _list_s3(uri)
    path = Path(uri)
    if path.is_file():
        if not path.name.endswith(SUFFIXES):
            raise UsageError(f"{uri} is not a .csv or .jsonl file")
        return [_local_file(path, path.name)], True
    if not path.is_dir():
        raise NotFoundError(f"input {uri} does not exist")
    found = [_local_file(p, p.relative_to(path).as_posix()) for p in sorted(path.rglob("*"))
             if p.is_file() and scorable(p.relative_to(path).as_posix())]
    if not found:
        raise NotFoundError(f"no .csv or .jsonl files under {uri}")
    return found, False


def _local_file(path: Path, relative: str) -> InputFile:
    stat = path.stat()
    return InputFile(str(path), relative, stat.st_size, f"mtime:{stat.st_mtime_ns}")


def _list_s3(uri: str) -> tuple[list[InputFile], bool]:
    bucket, key = split_s3(uri)
    backend = s3_backend(bucket)
    if key.endswith(SUFFIXES):
        head = s3_call(backend, uri, "head_object", Key=key)
        return [InputFile(uri, key.rsplit("/", 1)[-1], head["ContentLength"], head["ETag"])], True
    prefix = key.rstrip("/") + "/" if key.strip("/") else ""
    found, token = [], None
    while True:
        page = s3_call(backend, uri, "list_objects_v2", Prefix=prefix,
                       **({"ContinuationToken": token} if token else {}))
        for obj in page.get("Contents", []):
            relative = obj["Key"][len(prefix):]
            if scorable(relative):
                found.append(InputFile(f"s3://{bucket}/{obj['Key']}", relative, obj["Size"], obj["ETag"]))
        if not page.get("IsTruncated"):
            break
        token = page["NextContinuationToken"]
    if not found:
        raise NotFoundError(f"no .csv or .jsonl objects under {uri}")
    return sorted(found, key=lambda f: f.relative), False


class _Counting(io.RawIOBase):
    """A raw byte stream over a file or an S3 body that counts the bytes read through it."""

    def __init__(self, raw):
        self.raw = raw
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self.raw.read(len(buffer))
        n = len(data)
        buffer[:n] = data
        self.count += n
        return n

    def close(self) -> None:
        self.raw.close()
        super().close()


class TextSource:
    """An input file as a text stream (`lines`), with the bytes read so far (`bytes_read`)."""

    def __init__(self, file: InputFile):
        if is_s3(file.uri):
            bucket, key = split_s3(file.uri)
            raw = s3_call(s3_backend(bucket), file.uri, "get_object", Key=key)["Body"]
        else:
            try:
                raw = open(file.uri, "rb")  # noqa: SIM115 (closed in close)
            except FileNotFoundError:
                raise NotFoundError(f"input {file.uri} does not exist") from None
        self._counting = _Counting(raw)
        # newline="": the csv module handles line ends itself (quoted fields may hold newlines).
        self.lines = io.TextIOWrapper(io.BufferedReader(self._counting, 1 << 16), encoding="utf-8",
                                      newline="")

    @property
    def bytes_read(self) -> int:
        return self._counting.count

    def close(self) -> None:
        self.lines.close()

    def __enter__(self) -> TextSource:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def output_for(file: InputFile, output: str, single: bool) -> str:
    """The output of one input: OUTPUT itself for a single input file, else the input's relative name
    under OUTPUT with the .jsonl suffix."""
    stem = file.relative.rsplit(".", 1)[0]
    if single and not (output.endswith("/") or (not is_s3(output) and os.path.isdir(output))):
        return output
    if single:
        stem = stem.rsplit("/", 1)[-1]
    if is_s3(output):
        return f"{output.rstrip('/')}/{stem}.jsonl"
    return os.path.join(output, f"{stem}.jsonl")
