"""The scoring Lambda: score each file uploaded under SCORE_PREFIX and store its predictions in DynamoDB.

`handler(event, context)` takes an SQS batch whose bodies are EventBridge S3 "Object Created" events
(detail.bucket.name, detail.object.key, detail.object.version-id or etag) for keys
`SCORE_PREFIX/<anything>.csv|.jsonl`. For each record it:

1. loads the model (once per container, through the verified loader with MODEL_CACHE_DIR; an alias is
   re-resolved at most every RECHECK_SECONDS, and a moved alias loads the new version);
2. skips the record as a duplicate if the file's done marker for that model version exists;
3. reads the object version the event names (VersionId, else the etag as If-Match), parses the WHOLE
   file and predicts every row through the service's own code (service.predict.Predictor: the same
   validation and the same label/probabilities the service returns), before anything is written;
4. writes the predictions and counts the file exactly once (model.scoring.table.write_scored).

Outcomes, one JSON log line per record: {"action": scored | duplicate | dead-lettered | failed,
"object", "object_version", "rows", "model", "version", "seconds", "reason"}.

- failed: a transient error (AWS: S3, DynamoDB, the model store unreachable, throttling). The record is
  listed in batchItemFailures and SQS delivers it again; a retry cannot count twice (table.py).
- dead-lettered: a permanent error, which no retry can fix: the body is not an S3 Object Created event,
  the key is outside SCORE_PREFIX or not .csv/.jsonl, the object version is gone, the file is corrupt
  (not UTF-8, not CSV / JSON lines, no rows, columns the model does not take), a row the model refuses,
  or no such model / version / alias, or a version that fails verification. The original message body is
  sent to DEAD_LETTER_QUEUE_URL with a `reason` message attribute (and `object`), and the record is not a
  batch failure (it would only fail again). Nothing is written for it.

One bad row dead-letters the whole file, with the row and the reason: nothing partial is written. From
inside the function a row the model refuses cannot be told from a damaged upload (a truncated file ends
in one bad row), and counting part of a file would be final: its done marker closes it, so the rows
could never be added later without counting the others twice. The fix is a corrected upload, which is a
new object version and is scored in full. (`python -m model score` is the lenient mode: it writes bad
rows to an errors file and goes on.) The done marker's `errors` is therefore always 0 here.

Environment (read in `settings` only): MODEL_STORE, MODEL_NAME, MODEL_ALIAS (default production) or
MODEL_VERSION, MODEL_VERIFY_KEY (optional), MODEL_CACHE_DIR (default <temp dir>/model-cache, which is
/tmp/model-cache in Lambda), PREDICTIONS_TABLE, SCORE_PREFIX (default `score`), ID_COLUMN (optional:
a CSV must then have that column), DEAD_LETTER_QUEUE_URL.
"""

from __future__ import annotations

import io
import json
import os
import re
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import unquote_plus

from botocore.exceptions import BotoCoreError, ClientError

from model.scoring import table as predictions
from model.store import DEFAULT_ALIAS, DEFAULT_NAME

RECHECK_SECONDS = 60.0  # how often an alias is re-resolved, at most
CHUNK_ROWS = 1000  # rows per prediction call (the service's default MAX_BATCH)
_REASON_CHARS = 1000
_DAY = re.compile(r"^(\d{4}-\d{2}-\d{2})T")
_SUFFIXES = (".csv", ".jsonl")


@dataclass(frozen=True)
class Settings:
    """The function's configuration (see `settings`)."""

    store: str
    name: str
    alias: str
    version: str | None
    verify_key: str | None
    cache_dir: str
    table: str
    prefix: str
    id_column: str | None
    dead_letter_url: str


def settings(environ) -> Settings:
    """The configuration from the environment; RuntimeError naming what is missing, so a misconfigured
    function fails every invocation (its records are retried, then redriven) instead of scoring wrongly."""
    missing = [name for name in ("MODEL_STORE", "PREDICTIONS_TABLE", "DEAD_LETTER_QUEUE_URL")
               if not environ.get(name, "").strip()]
    if missing:
        raise RuntimeError(f"the function's environment lacks {', '.join(missing)}")
    return Settings(
        store=environ["MODEL_STORE"].strip(), name=environ.get("MODEL_NAME", "").strip() or DEFAULT_NAME,
        alias=environ.get("MODEL_ALIAS", "").strip() or DEFAULT_ALIAS,
        version=environ.get("MODEL_VERSION", "").strip() or None,
        verify_key=environ.get("MODEL_VERIFY_KEY", "").strip() or None,
        cache_dir=environ.get("MODEL_CACHE_DIR", "").strip()
        or os.path.join(tempfile.gettempdir(), "model-cache"),
        table=environ["PREDICTIONS_TABLE"].strip(),
        prefix=(environ.get("SCORE_PREFIX") or "score").strip("/"),
        id_column=environ.get("ID_COLUMN", "").strip() or None,
        dead_letter_url=environ["DEAD_LETTER_QUEUE_URL"].strip(),
    )


@dataclass
class Aws:
    """The boto3 clients the handler uses (the model store builds its own S3 client)."""

    s3: object
    dynamodb: object
    sqs: object


def clients() -> Aws:
    """Build the clients (region and credentials from the Lambda environment; boto3 honours
    AWS_ENDPOINT_URL, which is how the tests point them at moto)."""
    import boto3

    session = boto3.session.Session()  # its own session: clients of the default one are not thread-safe
    return Aws(s3=session.client("s3"), dynamodb=session.client("dynamodb"), sqs=session.client("sqs"))


class Permanent(Exception):
    """No retry can score this record: it goes to the dead-letter queue with this reason."""


class Transient(Exception):
    """A failure a later delivery may not meet (AWS, the store unreachable): a batch item failure."""


# -- the model, once per container ------------------------------------------------------------
@dataclass
class _Cached:
    selector: tuple
    predictor: object  # service.predict.Predictor
    checked: float  # time.monotonic() of the last resolve


_model_lock = threading.Lock()
_cached: _Cached | None = None


def _selector(config: Settings) -> tuple:
    return (config.store, config.name, config.version, config.alias, config.verify_key, config.cache_dir)


def current_model(config: Settings, clock=time.monotonic):
    """The Predictor of the version the settings select: loaded once per container and kept; a pinned
    MODEL_VERSION is never re-resolved, an alias at most every RECHECK_SECONDS. Permanent when the model,
    version or alias does not exist or fails verification; Transient when the store cannot be reached
    (a version already loaded keeps being used then)."""
    global _cached
    from model.errors import IncompatibleError, IntegrityError, NotFoundError, StoreError
    from model.store import ModelStore

    with _model_lock:
        selector, now = _selector(config), clock()
        cached = _cached if _cached is not None and _cached.selector == selector else None
        if cached is not None and (config.version or now - cached.checked < RECHECK_SECONDS):
            return cached.predictor
        try:
            store = ModelStore(config.store)
            if cached is not None:
                wanted = store.resolve(config.name, alias=config.alias)
                if wanted == cached.predictor.info["version"]:
                    cached.checked = now
                    return cached.predictor
            predictor = _load(store, config)
        except (NotFoundError, IntegrityError, IncompatibleError) as exc:
            raise Permanent(f"no usable model: {exc}") from None
        except (StoreError, ClientError, BotoCoreError) as exc:
            if cached is not None:
                return cached.predictor  # the store is down: keep scoring with the verified version
            raise Transient(f"the model store cannot be reached: {exc}") from None
        _cached = _Cached(selector, predictor, now)
        return predictor


def _load(store, config: Settings):
    """Load and verify a version and wrap it as the service does (model.scoring.batch_model.open_predictor,
    the batch CLI's too): through its model.onnx when it passes the parity re-check, else the pickle."""
    from model.loader import load_model
    from model.scoring.batch_model import open_predictor
    from model.signing import verifier

    loaded = load_model(store, config.name, alias=config.alias, version=config.version,
                        cache_dir=Path(config.cache_dir), verifier=verifier(config.verify_key))
    return open_predictor(loaded, max_batch=CHUNK_ROWS)


# -- the event --------------------------------------------------------------------------------
@dataclass
class Upload:
    """The object an event names."""

    bucket: str = ""
    key: str = ""
    object_version: str = ""  # the version id, else the etag
    version_id: str | None = None
    etag: str | None = None
    day: str = ""

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}" if self.bucket else ""


def _text(doc: dict, path: str) -> str:
    value = doc
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    if not isinstance(value, str) or not value:
        raise Permanent(f"the event has no {path}")
    return value


def parse(doc, config: Settings) -> Upload:
    """The Upload an EventBridge S3 event names, or Permanent with the reason."""
    if not isinstance(doc, dict):
        raise Permanent(f"not an event document but {type(doc).__name__}")
    if (doc.get("source"), doc.get("detail-type")) != ("aws.s3", "Object Created"):
        raise Permanent(f"not an S3 Object Created event (source {doc.get('source')!r}, detail-type "
                        f"{doc.get('detail-type')!r})")
    upload = Upload(bucket=_text(doc, "detail.bucket.name"), key=_text(doc, "detail.object.key"))
    obj = doc["detail"]["object"]
    version_id, etag = obj.get("version-id"), obj.get("etag")
    upload.version_id = version_id if isinstance(version_id, str) and version_id not in ("", "null") else None
    upload.etag = etag.strip('"') if isinstance(etag, str) and etag.strip('"') else None
    upload.object_version = upload.version_id or upload.etag or ""
    if not upload.object_version:
        raise Permanent("the event names neither detail.object.version-id nor detail.object.etag")
    if not upload.key.startswith(config.prefix + "/") or upload.key.endswith("/"):
        raise Permanent(f"key {upload.key!r} is not under {config.prefix}/")
    if not upload.key.lower().endswith(_SUFFIXES):
        raise Permanent(f"key {upload.key!r} is not a .csv or .jsonl file")
    # The upload's day, not the scoring's: a re-delivery after midnight counts on the same day.
    found = _DAY.match(doc.get("time") or "")
    upload.day = found.group(1) if found else datetime.now(UTC).strftime("%Y-%m-%d")
    return upload


def read_object(upload: Upload, aws: Aws) -> bytes:
    """The exact object version the event names. Permanent if it is gone or was replaced (its own event
    scores the replacement)."""
    params = {"VersionId": upload.version_id} if upload.version_id else {"IfMatch": f'"{upload.etag}"'}
    keys = [upload.key] + ([unquote_plus(upload.key)] if unquote_plus(upload.key) != upload.key else [])
    for key in keys:  # S3 notifications may URL-encode keys ("a b.csv" -> "a+b.csv")
        try:
            body = aws.s3.get_object(Bucket=upload.bucket, Key=key, **params)["Body"].read()
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            if code in ("NoSuchKey", "NoSuchVersion", "404") and key != keys[-1]:
                continue
            if code in ("NoSuchKey", "NoSuchVersion", "404", "PreconditionFailed", "412", "NoSuchBucket"):
                raise Permanent(f"{upload.uri} version {upload.object_version} is gone or was replaced "
                                f"({code})") from None
            raise
        upload.key = key
        return body
    raise AssertionError("unreachable")


# -- the file ---------------------------------------------------------------------------------
def score_file(data: bytes, key: str, predictor, id_column: str | None) -> list[dict]:
    """Every row's prediction, as the service returns it, with `row` (from 1, as `python -m model score`
    numbers them) and `id` added; the whole file is read and predicted before anything is written.

    The batch CLI's readers (model.scoring.batch_rows) and chunk scoring (model.scoring.batch_model) do
    the work, so a file gives the same rows, ids and predictions in both modes; only the policy differs:
    here the first bad row makes the whole file Permanent (see the module docstring)."""
    from model.scoring.batch_model import score_chunk
    from model.scoring.batch_rows import FileFailed, Layout, chunks, read_rows

    layout = Layout(predictor.manifest["input_schema"], id_column)
    lines = io.TextIOWrapper(io.BytesIO(data), encoding="utf-8", newline="")
    kind = "csv" if key.lower().endswith(".csv") else "jsonl"
    found = []
    try:
        for chunk in chunks(read_rows(lines, kind, layout, "the file"), CHUNK_ROWS):
            for row, prediction in score_chunk(predictor, chunk):
                if prediction is None:
                    raise Permanent(f"the model refuses row {row.number} of the file: {row.error}")
                found.append({**prediction, "row": row.number, "id": row.id})
    except FileFailed as exc:
        raise Permanent(str(exc)) from None
    if not found:
        raise Permanent("the file has no rows")
    return found


# -- the handler ------------------------------------------------------------------------------
def handler(event, context=None, aws: Aws | None = None) -> dict:
    """Lambda entry point: score each record of an SQS batch; {"batchItemFailures": [...]} lists those
    to deliver again (transient failures only)."""
    config = settings(os.environ)
    aws = aws or clients()
    if not (isinstance(event, dict) and "Records" in event):
        result = score_record(None, event, config, aws)  # a bare EventBridge event: Lambda retries
        if result["action"] == "failed":
            raise Transient(result["reason"])
        return {"results": [result]}
    failures, results = [], []
    for record in event["Records"] if isinstance(event["Records"], list) else []:
        body = record.get("body") if isinstance(record, dict) else None
        result = score_record(body, None, config, aws)
        results.append(result)
        if result["action"] == "failed" and isinstance(record, dict) and record.get("messageId"):
            failures.append({"itemIdentifier": record["messageId"]})
    return {"batchItemFailures": failures, "results": results}


def score_record(body, doc, config: Settings, aws: Aws) -> dict:
    """Score one record (an SQS body, or an event document); log and return its outcome. Never raises
    on AWS errors or on a bad file."""
    started = time.monotonic()
    upload, predictor, rows = Upload(), None, 0
    try:
        try:
            if doc is None:
                try:
                    doc = json.loads(body or "")
                except (TypeError, ValueError):
                    raise Permanent("the SQS message body is not JSON") from None
            upload = parse(doc, config)
            predictor = current_model(config)
            version = predictor.info["version"]
            if predictions.is_done(aws.dynamodb, config.table, upload.bucket, upload.key,
                                   upload.object_version, version):
                action, reason = "duplicate", "already scored and counted by this model version"
            else:
                found = score_file(read_object(upload, aws), upload.key, predictor, config.id_column)
                rows = len(found)
                scored = predictions.Scored(upload.bucket, upload.key, upload.object_version, config.name,
                                            version, upload.day, found)
                counted = predictions.write_scored(aws.dynamodb, config.table, scored)
                action = "scored" if counted else "duplicate"
                reason = "" if counted else "counted by a concurrent delivery; predictions rewritten"
        except Permanent as exc:
            reason = str(exc)[:_REASON_CHARS]
            dead_letter(body if body is not None else json.dumps(doc), reason, upload, config, aws)
            action = "dead-lettered"
    except Transient as exc:
        action, reason = "failed", str(exc)
    except (ClientError, BotoCoreError, predictions.Unprocessed) as exc:
        action, reason = "failed", f"{type(exc).__name__}: {exc}"
    line = {"action": action, "object": upload.uri, "object_version": upload.object_version, "rows": rows,
            "model": config.name, "version": predictor.info["version"] if predictor is not None else None,
            "seconds": round(time.monotonic() - started, 3), "reason": reason}
    print(json.dumps(line, sort_keys=True), flush=True)
    return line


def dead_letter(body: str, reason: str, upload: Upload, config: Settings, aws: Aws) -> None:
    """Send the original message body to the dead-letter queue with the reason. Failing to send is a
    transient failure (the record is delivered again), so a message is never dropped."""
    attributes = {"reason": {"DataType": "String", "StringValue": reason or "unknown"}}
    if upload.uri:
        attributes["object"] = {"DataType": "String", "StringValue": upload.uri}
    try:
        aws.sqs.send_message(QueueUrl=config.dead_letter_url, MessageBody=body or "(empty body)",
                             MessageAttributes=attributes)
    except (ClientError, BotoCoreError) as exc:
        raise Transient(f"cannot dead-letter ({reason}): {type(exc).__name__}: {exc}") from None
