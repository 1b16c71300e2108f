"""The predictions table: every prediction of a scored file, a done marker per (file, model version), and
per-day per-class counters, in one DynamoDB table (env PREDICTIONS_TABLE).

Schema (what `create_table` makes and the stack's resource must match)::

    BillingMode PAY_PER_REQUEST
    KeySchema   PK (S, HASH), SK (S, RANGE)
    GSI by-day  GSI1PK (S, HASH), GSI1SK (S, RANGE), Projection ALL

Items (one table, three kinds):

- prediction: PK `object#<bucket>/<key>#<object version or etag>`, SK `row#<row:09d>#<model version>`;
  attributes model, version, row, label (typed: S, N or BOOL), probabilities / scores (JSON strings,
  when the model gives them), value (N, regressors), id (the row's id column, when named), day
  (YYYY-MM-DD), object (`<bucket>/<key>`), object_version, and GSI1PK `day#<model>#<day>`,
  GSI1SK `<bucket>/<key>#<row:09d>` (so the by-day index lists a model's predictions of one day).
- done marker: the object's PK, SK `done#<model version>`; attributes rows, errors, scored_at, model,
  version, day. Its existence means the file's counts were added.
- counter: PK `counts#<model>#<day>`, SK `class#<label>`, attribute `count` (N), changed only by
  `ADD count :n` (never read-modify-write).

Exactly once. `write_scored` first puts every prediction by key (BatchWriteItem, unprocessed items
retried): a re-delivered event or a retry rewrites the same items, never adds one. Then ONE
TransactWriteItems puts the done marker with `attribute_not_exists(PK)` and ADDs every class's count:
either all of it happens or none, and only once per (object version, model version); a transaction
cancelled because the marker exists means "already counted" and is not an error. A transaction holds at
most 100 items, so one holds the marker and at most 99 counters. A file that predicts more distinct labels
is counted in parts: part i of n is its own transaction with its own marker `done#<model version>#part-i/n`,
so each part is still added exactly once, and a retry after a partial failure adds only the parts that
are missing; the marker `done#<model version>` is put (create-only) once every part is in.

Day: the day of the upload event (UTC), not of the scoring, so a re-delivery after midnight lands on the
same day's counters and by-day index.
"""

from __future__ import annotations

import json
import math
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime

from botocore.exceptions import ClientError

BY_DAY = "by-day"
TRANSACTION_ITEMS = 100  # DynamoDB's limit on the items of one TransactWriteItems
BATCH_ITEMS = 25  # and of one BatchWriteItem
COUNTERS_PER_TRANSACTION = TRANSACTION_ITEMS - 1  # one item is the done marker
_BATCH_ATTEMPTS = 8


class Unprocessed(Exception):
    """DynamoDB kept returning UnprocessedItems (throttling): a transient failure, retry later."""


# -- keys -------------------------------------------------------------------------------------
def object_pk(bucket: str, key: str, object_version: str) -> str:
    """The partition of one object version's predictions and done markers."""
    return f"object#{bucket}/{key}#{object_version}"


def row_sk(row: int, model_version: str) -> str:
    return f"row#{row:09d}#{model_version}"


def done_sk(model_version: str, part: int | None = None, parts: int = 1) -> str:
    """The done marker's sort key; a part's marker when the counters need several transactions."""
    return f"done#{model_version}" if part is None else f"done#{model_version}#part-{part:03d}/{parts:03d}"


def counts_pk(model: str, day: str) -> str:
    return f"counts#{model}#{day}"


def day_pk(model: str, day: str) -> str:
    return f"day#{model}#{day}"


# -- the table --------------------------------------------------------------------------------
def create_table(dynamodb, name: str) -> None:
    """Create the table with the schema in the module docstring (tests, local use) and wait for it."""
    strings = ("PK", "SK", "GSI1PK", "GSI1SK")
    dynamodb.create_table(
        TableName=name,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": a, "AttributeType": "S"} for a in strings],
        KeySchema=[{"AttributeName": "PK", "KeyType": "HASH"}, {"AttributeName": "SK", "KeyType": "RANGE"}],
        GlobalSecondaryIndexes=[{
            "IndexName": BY_DAY,
            "KeySchema": [{"AttributeName": "GSI1PK", "KeyType": "HASH"},
                          {"AttributeName": "GSI1SK", "KeyType": "RANGE"}],
            "Projection": {"ProjectionType": "ALL"},
        }],
    )
    dynamodb.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 60})


@dataclass(frozen=True)
class Scored:
    """One scored file, ready to be written: where it came from, which model, its predictions.

    `predictions` are the service's outputs (service.outputs), one per row in file order, each with
    the row's number `row` (from 1, as the batch CLI numbers rows; else its position from 1) and its
    `id` (None when the file has no id column) added; `errors` counts rows not predicted.
    """

    bucket: str
    key: str
    object_version: str
    model: str
    version: str
    day: str
    predictions: list[dict]
    errors: int = 0

    @property
    def pk(self) -> str:
        return object_pk(self.bucket, self.key, self.object_version)


def _typed(value) -> dict:
    """A prediction's label (or value) as a DynamoDB attribute of its own type."""
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, int | float):
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"{value!r} cannot be stored")
        return {"N": repr(value) if isinstance(value, float) else str(value)}
    return {"S": str(value)}


def _plain(attribute: dict):
    """A DynamoDB attribute as the Python value it was stored from (the inverse of `_typed`)."""
    (kind, value), = attribute.items()
    if kind == "N":
        number = float(value)
        return int(number) if number.is_integer() and "." not in value and "e" not in value.lower() \
            else number
    if kind == "BOOL":
        return bool(value)
    return value


def counted_label(prediction: dict) -> str:
    """What a prediction is counted under: its label, or the value label for a regressor."""
    from service.outputs import VALUE_LABEL

    return str(prediction["label"]) if "label" in prediction else VALUE_LABEL


def prediction_item(scored: Scored, row: int, prediction: dict) -> dict:
    """The DynamoDB item of one prediction (see the module docstring)."""
    where = f"{scored.bucket}/{scored.key}"
    item = {
        "PK": {"S": scored.pk}, "SK": {"S": row_sk(row, scored.version)},
        "GSI1PK": {"S": day_pk(scored.model, scored.day)}, "GSI1SK": {"S": f"{where}#{row:09d}"},
        "model": {"S": scored.model}, "version": {"S": scored.version}, "row": {"N": str(row)},
        "day": {"S": scored.day}, "object": {"S": where}, "object_version": {"S": scored.object_version},
    }
    if "label" in prediction:
        item["label"] = _typed(prediction["label"])
    if "value" in prediction:
        item["value"] = _typed(prediction["value"])
    for name in ("probabilities", "scores"):
        if name in prediction:
            item[name] = {"S": json.dumps(prediction[name], sort_keys=False)}
    if prediction.get("id") is not None:
        item["id"] = {"S": str(prediction["id"])}
    return item


def batch_put(dynamodb, table: str, items: list[dict], *, sleep=time.sleep, workers: int = 4) -> None:
    """Put items 25 at a time (`workers` calls at once), retrying UnprocessedItems with backoff;
    Unprocessed once _BATCH_ATTEMPTS calls in a row made no progress (throttling that does not ease:
    a transient failure)."""
    groups = [items[i:i + BATCH_ITEMS] for i in range(0, len(items), BATCH_ITEMS)]
    if workers <= 1 or len(groups) <= 1:
        for group in groups:
            _put_group(dynamodb, table, group, sleep)
        return
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=workers) as pool:  # boto3 clients are thread-safe
        for done in [pool.submit(_put_group, dynamodb, table, group, sleep) for group in groups]:
            done.result()


def _put_group(dynamodb, table: str, group: list[dict], sleep) -> None:
    pending = {table: [{"PutRequest": {"Item": item}} for item in group]}
    left, stalled = len(group), 0
    while pending:
        answer = dynamodb.batch_write_item(RequestItems=pending)
        pending = answer.get("UnprocessedItems") or {}
        now_left = sum(len(v) for v in pending.values())
        stalled = stalled + 1 if now_left >= left else 0
        left = now_left
        if pending and stalled >= _BATCH_ATTEMPTS:
            raise Unprocessed(f"DynamoDB left {left} item(s) of {table} unprocessed after "
                              f"{_BATCH_ATTEMPTS} attempts without progress")
        if pending:
            sleep(min(0.05 * 2 ** stalled, 2.0))


def _already_counted(exc: ClientError) -> bool:
    """Whether a cancelled transaction failed only because a done marker exists (already counted)."""
    error = exc.response.get("Error", {})
    if error.get("Code") == "ConditionalCheckFailedException":
        return True
    if error.get("Code") != "TransactionCanceledException":
        return False
    reasons = exc.response.get("CancellationReasons")
    if reasons:
        codes = {r.get("Code") for r in reasons if r.get("Code") not in (None, "None")}
        return codes == {"ConditionalCheckFailed"}
    return "ConditionalCheckFailed" in error.get("Message", "")  # clients that drop the reasons


def _count_transaction(dynamodb, table: str, marker: dict, counts: list[tuple[str, int]],
                       scored: Scored) -> bool:
    """Put `marker` (create-only) and ADD `counts` in one transaction; False if the marker existed."""
    items = [{"Put": {"TableName": table, "Item": marker, "ConditionExpression": "attribute_not_exists(PK)"}}]
    for label, n in counts:
        items.append({"Update": {
            "TableName": table,
            "Key": {"PK": {"S": counts_pk(scored.model, scored.day)}, "SK": {"S": f"class#{label}"}},
            "UpdateExpression": "ADD #count :n",
            "ExpressionAttributeNames": {"#count": "count"},
            "ExpressionAttributeValues": {":n": {"N": str(n)}},
        }})
    assert len(items) <= TRANSACTION_ITEMS
    try:
        dynamodb.transact_write_items(TransactItems=items)
    except ClientError as exc:
        if _already_counted(exc):
            return False
        raise
    return True


def _marker(scored: Scored, sk: str, scored_at: str) -> dict:
    return {"PK": {"S": scored.pk}, "SK": {"S": sk}, "rows": {"N": str(len(scored.predictions))},
            "errors": {"N": str(scored.errors)}, "scored_at": {"S": scored_at},
            "model": {"S": scored.model}, "version": {"S": scored.version}, "day": {"S": scored.day}}


def is_done(dynamodb, table: str, bucket: str, key: str, object_version: str, model_version: str) -> bool:
    """Whether this object version was already counted for this model version (consistent read)."""
    answer = dynamodb.get_item(TableName=table, ConsistentRead=True, ProjectionExpression="PK",
                               Key={"PK": {"S": object_pk(bucket, key, object_version)},
                                    "SK": {"S": done_sk(model_version)}})
    return "Item" in answer


def write_scored(dynamodb, table: str, scored: Scored, *, sleep=time.sleep) -> bool:
    """Write a scored file's predictions, then count it exactly once. True if this call counted it,
    False if it was already counted (the predictions are rewritten either way: same keys, same items).

    Raises ClientError / Unprocessed on AWS failures: nothing is counted twice when it is retried.
    """
    batch_put(dynamodb, table, [prediction_item(scored, p.get("row", i), p)
                                for i, p in enumerate(scored.predictions, start=1)], sleep=sleep)
    counts = sorted(Counter(counted_label(p) for p in scored.predictions).items())
    scored_at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if len(counts) <= COUNTERS_PER_TRANSACTION:
        return _count_transaction(dynamodb, table, _marker(scored, done_sk(scored.version), scored_at),
                                  counts, scored)
    parts = [counts[i:i + COUNTERS_PER_TRANSACTION] for i in range(0, len(counts), COUNTERS_PER_TRANSACTION)]
    added = False
    for i, part in enumerate(parts, start=1):
        marker = _marker(scored, done_sk(scored.version, i, len(parts)), scored_at)
        added = _count_transaction(dynamodb, table, marker, part, scored) or added
    # Every part is in: the file's own marker says so (create-only; a retry that finds it is fine).
    try:
        dynamodb.put_item(TableName=table, Item=_marker(scored, done_sk(scored.version), scored_at),
                          ConditionExpression="attribute_not_exists(PK)")
    except ClientError as exc:
        if not _already_counted(exc):
            raise
    return added


# -- reading ----------------------------------------------------------------------------------
def _query(dynamodb, **params) -> list[dict]:
    items, pages = [], dynamodb.get_paginator("query")
    for page in pages.paginate(**params):
        items += page.get("Items", [])
    return items


def as_prediction(item: dict) -> dict:
    """A stored prediction as JSON-ready fields."""
    out = {"object": item["object"]["S"], "object_version": item["object_version"]["S"],
           "row": int(item["row"]["N"]), "model": item["model"]["S"], "version": item["version"]["S"],
           "day": item["day"]["S"]}
    if "id" in item:
        out["id"] = item["id"]["S"]
    for name in ("label", "value"):
        if name in item:
            out[name] = _plain(item[name])
    for name in ("probabilities", "scores"):
        if name in item:
            out[name] = json.loads(item[name]["S"])
    return out


def as_marker(item: dict) -> dict:
    return {"done": item["SK"]["S"].removeprefix("done#"), "rows": int(item["rows"]["N"]),
            "errors": int(item["errors"]["N"]), "scored_at": item["scored_at"]["S"],
            "model": item.get("model", {}).get("S"), "version": item.get("version", {}).get("S")}


def by_object(dynamodb, table: str, bucket: str, key: str, object_version: str) -> dict:
    """An object version's predictions (row order, every model version) and its done markers."""
    items = _query(dynamodb, TableName=table, ConsistentRead=True, KeyConditionExpression="PK = :pk",
                   ExpressionAttributeValues={":pk": {"S": object_pk(bucket, key, object_version)}})
    rows = [as_prediction(i) for i in items if i["SK"]["S"].startswith("row#")]
    done = [as_marker(i) for i in items if i["SK"]["S"].startswith("done#") and "#part-" not in i["SK"]["S"]]
    return {"predictions": rows, "done": done}


def by_day(dynamodb, table: str, model: str, day: str) -> list[dict]:
    """A model's predictions of one day (by object, then row), from the by-day index."""
    items = _query(dynamodb, TableName=table, IndexName=BY_DAY, KeyConditionExpression="GSI1PK = :d",
                   ExpressionAttributeValues={":d": {"S": day_pk(model, day)}})
    return [as_prediction(i) for i in items]


def counts(dynamodb, table: str, model: str, day: str) -> dict[str, int]:
    """A model's per-class counts of one day (strongly consistent)."""
    items = _query(dynamodb, TableName=table, ConsistentRead=True, KeyConditionExpression="PK = :pk",
                   ExpressionAttributeValues={":pk": {"S": counts_pk(model, day)}})
    return {i["SK"]["S"].removeprefix("class#"): int(i["count"]["N"]) for i in items}
