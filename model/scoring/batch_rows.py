"""Rows of a CSV or JSON-lines file as the service's instances, read in chunks.

Each record becomes what a client would send in `instances`: for a tabular model a list in feature
order (CSV: each cell typed by its column's kind, so the service's checks see numbers, booleans and
strings as a JSON body has them) or the JSON line's own object or list; for a text model a string.
The id column (`--id-column`) is taken out of the record unless it is a feature. A record that cannot
even become an instance (a CSV row with too many or too few cells, a line that is not JSON) carries
its error instead; everything else is checked by the service's own validation when it is scored.

`row` is the record's number in its file, from 1: the data row of a CSV (the header excluded), the
line of a JSON-lines file (blank lines are skipped but counted).
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import islice

from model.errors import ModelError
from model.exit_codes import ExitCode

_TRUE, _FALSE = frozenset(("true", "yes")), frozenset(("false", "no"))


class FileFailed(ModelError):
    """A whole input file cannot be scored (its header does not fit the model, it is not UTF-8):
    nothing is written for it and a re-run tries it again."""

    exit_code = ExitCode.ROWS_FAILED


@dataclass
class Row:
    """One record: its number, its id (None when no id column is named), and either the instance
    to score or why it cannot be scored."""

    number: int
    id: object
    instance: object = None
    error: str | None = None


class Layout:
    """What a model takes, for reading records: its features and their kinds (tabular) or text."""

    def __init__(self, schema: dict, id_column: str | None):
        self.text = schema["type"] == "text"
        columns = schema.get("columns") or [{"name": n, "kind": "number"}
                                            for n in schema.get("features") or []]
        self.features = [str(spec["name"]) for spec in columns]
        self.kinds = [spec["kind"] for spec in columns]
        self.id_column = id_column
        self.id_is_feature = id_column is not None and id_column in self.features


def _cell(kind: str, value: str):
    """A CSV cell as the JSON value a client would send for its column's kind; a cell that does not
    parse stays a string, which the service's checks then refuse with their own message."""
    if kind == "number":
        try:
            return float(value)
        except ValueError:
            return value
    if kind == "boolean":
        lowered = value.strip().lower()
        return True if lowered in _TRUE else False if lowered in _FALSE else value
    return value


@dataclass(frozen=True)
class CsvPlan:
    """Where a CSV file's cells go, from its header: the id's position, the features' positions (in
    the model's order) and kinds, and the header's width."""

    width: int
    id_at: int | None
    order: list[int]
    kinds: list[str]
    text: bool

    @property
    def numbers(self) -> bool:
        return not self.text and all(kind == "number" for kind in self.kinds)


def csv_plan(reader, layout: Layout, source: str) -> CsvPlan | None:
    """The plan of a CSV file from its header (read from `reader`), None for an empty file;
    FileFailed when the header does not fit the model."""
    header = next(reader, None)
    if header is None:
        return None
    header = [name.strip() for name in header]
    positions = {name: j for j, name in enumerate(header)}
    if len(positions) != len(header):
        raise FileFailed(f"{source}: the header names a column twice")
    id_at = positions.get(layout.id_column) if layout.id_column else None
    if layout.id_column and id_at is None:
        raise FileFailed(f"{source} has no id column {layout.id_column!r} (columns: {', '.join(header)})")
    if layout.text:
        others = [j for j, name in enumerate(header) if j != id_at]
        if len(others) != 1:
            raise FileFailed(f"{source}: a text model takes one text column (besides the id column); the "
                             f"header has {len(others)}")
        return CsvPlan(len(header), id_at, others, ["text"], True)
    missing = [name for name in layout.features if name not in positions]
    extra = [name for name in header if name not in layout.features and name != layout.id_column]
    if missing or extra:
        parts = ([f"lacks {', '.join(missing[:5])}"] if missing else []) + \
                ([f"has columns the model does not take: {', '.join(extra[:5])}"] if extra else [])
        hint = " (name the id column with --id-column)" if extra else ""
        raise FileFailed(f"{source}: the header does not fit the model: it {' and '.join(parts)}{hint}")
    return CsvPlan(len(header), id_at, [positions[name] for name in layout.features], layout.kinds, False)


def csv_records(numbered, plan: CsvPlan) -> Iterator[Row]:
    """The Rows of a CSV file's records: (number, cells) pairs, the cells as csv.reader gives them;
    an empty record (a blank line) is not yielded (its number is still taken)."""
    width, id_at, order, kinds = plan.width, plan.id_at, plan.order, plan.kinds
    numbers = plan.numbers
    # The usual export: the features in order, side by side (the id before or after them).
    span = slice(order[0], order[-1] + 1) if order == list(range(order[0], order[0] + len(order))) else None
    for number, cells in numbered:
        if not cells:
            continue  # a blank line
        row_id = cells[id_at] if id_at is not None and id_at < len(cells) else None
        if len(cells) != width:
            yield Row(number, row_id,
                      error=f"the row has {len(cells)} values, the header has {width} columns")
            continue
        if plan.text:
            yield Row(number, row_id, cells[order[0]])
        elif numbers:
            try:
                values = list(map(float, cells[span])) if span else [float(cells[j]) for j in order]
            except ValueError:
                values = [_cell("number", cells[j]) for j in order]
            yield Row(number, row_id, values)
        else:
            yield Row(number, row_id, [_cell(kind, cells[j]) for kind, j in zip(kinds, order, strict=True)])


def _csv_rows(lines, layout: Layout, source: str) -> Iterator[Row]:
    reader = csv.reader(lines)
    plan = csv_plan(reader, layout, source)
    if plan is not None:
        yield from csv_records(enumerate(reader, start=1), plan)


def _jsonl_rows(lines, layout: Layout) -> Iterator[Row]:
    from service.bodies import decode_json
    from service.errors import ApiError

    id_column, pop = layout.id_column, layout.id_column is not None and not layout.id_is_feature
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = decode_json(line)
        except ApiError as exc:
            yield Row(number, None, error=exc.message.replace("the body is", "the line is", 1))
            continue
        row_id = None
        if id_column is not None and isinstance(record, dict):
            row_id = record.pop(id_column, None) if pop else record.get(id_column)
        if layout.text and isinstance(record, dict):
            if len(record) != 1:
                yield Row(number, row_id, error=f"a text model takes a string, or an object with one key "
                                                f"(besides the id column); the line has {len(record)} keys")
                continue
            record = next(iter(record.values()))
        yield Row(number, row_id, record)


def read_rows(lines, kind: str, layout: Layout, source: str) -> Iterator[Row]:
    """The records of a text stream of `kind` ("csv" or "jsonl"); FileFailed when the file as a whole
    cannot be read (a CSV header that does not fit the model, text that is not UTF-8)."""
    rows = _csv_rows(lines, layout, source) if kind == "csv" else _jsonl_rows(lines, layout)
    try:
        yield from rows
    except UnicodeDecodeError as exc:
        raise FileFailed(f"{source} is not UTF-8 text ({exc.reason})") from None
    except csv.Error as exc:
        raise FileFailed(f"{source} is not a readable CSV file: {exc}") from None


def chunks(rows: Iterator[Row], size: int) -> Iterator[list[Row]]:
    """`rows` in lists of at most `size`: the most a run holds in memory at once."""
    while True:
        chunk = list(islice(rows, size))
        if not chunk:
            return
        yield chunk
