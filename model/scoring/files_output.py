"""Where a batch run writes: an output and its errors staged under a temporary name, then committed,
and the done marker that says the output is complete.

An output (`<output>`) and its errors (`<output>.errors.jsonl`) are written to temporary files and
only moved into place when every row has been scored: renamed beside the target on disk, uploaded
at the end to S3. The done marker (`<output>.done`, JSON) is written last. A run that is killed
leaves at most a temporary file or an output without its marker, which a re-run scores again; it
never leaves an output that looks complete.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile

from model.errors import NotFoundError
from model.scoring.files import is_s3, s3_backend, s3_call, split_s3

ERRORS_SUFFIX = ".errors.jsonl"
DONE_SUFFIX = ".done"


def errors_uri(output: str) -> str:
    return output + ERRORS_SUFFIX


def done_uri(output: str) -> str:
    return output + DONE_SUFFIX


class Staged:
    """Lines for one target, written to a temporary file; `commit` puts the file at the target."""

    def __init__(self, target: str):
        self.target = target
        self.lines = 0
        if is_s3(target):
            fd, self._tmp = tempfile.mkstemp(prefix="score-", suffix=".jsonl.partial")
        else:
            folder, name = os.path.split(os.path.abspath(target))
            os.makedirs(folder, exist_ok=True)
            # One fixed name per target: the leftover of a killed run is overwritten by the next.
            self._tmp = os.path.join(folder, f".{name}.partial")
            fd = os.open(self._tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
        self._file = os.fdopen(fd, "wb", buffering=1 << 16)

    def write(self, line: bytes) -> None:
        """One line (JSON, UTF-8, without its newline)."""
        self._file.write(line)
        self._file.write(b"\n")
        self.lines += 1

    def commit(self) -> None:
        """Move the finished file to its target (rename on disk, upload to S3)."""
        self._file.close()
        if is_s3(self.target):
            bucket, key = split_s3(self.target)
            backend = s3_backend(bucket)
            try:
                with open(self._tmp, "rb") as fh:
                    s3_call(backend, self.target, "upload_fileobj", Fileobj=fh, Key=key)
            finally:
                os.unlink(self._tmp)
        else:
            os.replace(self._tmp, self.target)

    def discard(self) -> None:
        """Remove the temporary file (an interrupted or failed file)."""
        self._file.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._tmp)


def remove(target: str) -> None:
    """Delete a target if it exists (a stale errors file or marker)."""
    if is_s3(target):
        bucket, key = split_s3(target)
        s3_call(s3_backend(bucket), target, "delete_object", Key=key)
    else:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(target)


def read_done(output: str) -> dict | None:
    """The output's done marker, or None if it has none (or an unreadable one)."""
    target = done_uri(output)
    try:
        if is_s3(target):
            bucket, key = split_s3(target)
            data = s3_call(s3_backend(bucket), target, "get_object", Key=key)["Body"].read()
        else:
            with open(target, "rb") as fh:
                data = fh.read()
    except (NotFoundError, FileNotFoundError):
        return None
    try:
        record = json.loads(data)
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


def write_done(output: str, record: dict) -> None:
    """Write the output's done marker (the last thing written for an output)."""
    target = done_uri(output)
    body = (json.dumps(record, sort_keys=True) + "\n").encode()
    if is_s3(target):
        bucket, key = split_s3(target)
        s3_call(s3_backend(bucket), target, "put_object", Key=key, Body=body)
        return
    tmp = f"{target}.partial"
    with open(tmp, "wb") as fh:
        fh.write(body)
    os.replace(tmp, target)
