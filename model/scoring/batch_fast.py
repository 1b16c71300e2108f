"""Chunks of a file scored, the common case fast: a CSV whose model columns are all numbers.

Such a chunk is read as lines, parsed in one call (pandas' C parser when its cells hold only digits,
signs, points and exponents, else np.loadtxt: either gives Python's float() of each cell, or refuses
it), checked as a whole (every row as wide as the header, every value finite) and predicted as one
matrix by the service's Predictor: the same matrix the per-row path builds, so the same predictions.
Only a chunk with any bad cell (a value that is not a number,
NaN, an infinity, a row of the wrong width) or that the model refuses (arithmetic that overflows)
goes through the per-row path (model.scoring.batch_rows, model.scoring.batch_model), so its bad rows
get their own messages and numbers. Chunks hold `size` rows (blank lines skipped but counted), as the
per-row path's do; a file holding a quote or a NUL is read by the csv module from there on (a quoted
field may hold a comma or a line end). Other files (JSON lines, text, mixed columns): the per-row path.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import chain, islice

import numpy as np
import pandas as pd

from model.scoring.batch_model import score_chunk
from model.scoring.batch_rows import (
    CsvPlan,
    FileFailed,
    Layout,
    Row,
    chunks,
    csv_plan,
    csv_records,
    read_rows,
)

_NUMERIC = b"0123456789.eE+-,\r\n"  # what pandas reads as float() does
_BLANK = frozenset(("\n", "\r\n", "\r"))  # lines the csv module reads as an empty record


@dataclass
class Chunk:
    """One chunk scored: `size` rows, either all predicted (`numbers`, `ids` (None without an id
    column) and `predictions`, in file order) or row by row (`scored`: each Row with its prediction,
    or with None and its error)."""

    size: int
    numbers: range | list[int] | None = None
    ids: list[str] | None = None
    predictions: list[dict] | None = None
    scored: list[tuple[Row, dict | None]] | None = None


def scored_chunks(predictor, lines, kind: str, layout: Layout, source: str, size: int) -> Iterator[Chunk]:
    """The chunks of a text stream of `kind` ("csv" or "jsonl"), each scored; FileFailed as
    model.scoring.batch_rows.read_rows raises it."""
    if kind != "csv" or layout.text or not all(k == "number" for k in layout.kinds):
        for rows in chunks(read_rows(lines, kind, layout, source), size):
            yield Chunk(len(rows), scored=score_chunk(predictor, rows))
        return
    try:
        yield from _numbers(predictor, lines, layout, source, size)
    except UnicodeDecodeError as exc:
        raise FileFailed(f"{source} is not UTF-8 text ({exc.reason})") from None
    except csv.Error as exc:
        raise FileFailed(f"{source} is not a readable CSV file: {exc}") from None


def _per_row(predictor, good: list[str], numbers, plan: CsvPlan) -> Chunk:
    """A chunk through the per-row path: its (quote-free) lines read by the csv module."""
    rows = list(csv_records(zip(numbers, csv.reader(good), strict=True), plan))
    return Chunk(len(rows), scored=score_chunk(predictor, rows))


def _ids(good: list[str], at: int, width: int) -> list[str]:
    if at == 0:
        return [line.partition(",")[0] for line in good]
    if at == width - 1:
        return [line.rpartition(",")[2].rstrip("\r\n") for line in good]
    return [line.rstrip("\r\n").split(",")[at] for line in good]


def _parsed(good: list[str], plan: CsvPlan):
    """The features of quote-free lines of `plan.width` cells, as the float64 matrix the per-row path
    builds from them (Python's float() of each cell), or None when a cell is not a number.

    pandas' C parser when the cells hold nothing but digits, signs, points and exponents (its numbers
    are float()'s then; other text, like "NA", "True" or " 1", it reads in its own way), else
    np.loadtxt, which parses each cell as float() does (or refuses it: "1_0")."""
    order, at, width = plan.order, plan.id_at, plan.width
    text, columns = None, order
    if at is None or at in order:
        text = "".join(good)
    elif at == 0:
        text, columns = "".join([line.partition(",")[2] for line in good]), [j - 1 for j in order]
    elif at == width - 1:
        text = "".join([line.rpartition(",")[0] + "\n" for line in good])
    if text is not None:
        body = text.encode()
        cells, wanted = width if columns is order else width - 1, sorted(columns)
        if not body.translate(None, _NUMERIC):
            try:
                frame = pd.read_csv(io.BytesIO(body), header=None, dtype=np.float64, na_filter=False,
                                    engine="c", usecols=None if wanted == list(range(cells)) else wanted)
            except (ValueError, OverflowError):
                frame = None
            if frame is not None and frame.shape == (len(good), len(columns)):
                matrix = frame.to_numpy(dtype=np.float64)
                if columns != wanted:  # the model's order
                    matrix = matrix[:, [wanted.index(j) for j in columns]]
                return np.ascontiguousarray(matrix)
    try:
        matrix = np.loadtxt(good, dtype=np.float64, delimiter=",", comments=None, usecols=order, ndmin=2)
    except ValueError:
        return None
    # loadtxt skips a line of whitespace alone, which the per-row path reads as a cell
    return np.ascontiguousarray(matrix) if matrix.shape == (len(good), len(order)) else None


def _numbers(predictor, lines, layout: Layout, source: str, size: int) -> Iterator[Chunk]:
    from service.errors import ApiError

    reader = csv.reader(lines)
    plan = csv_plan(reader, layout, source)
    if plan is None:
        return
    limit, commas = csv.field_size_limit(), plan.width - 1
    number = 0  # the records read so far (every line is one: no line holds a quote)
    while True:
        good, numbers = [], []  # this chunk's lines and their numbers, blank lines left out
        while len(good) < size:
            more = list(islice(lines, size - len(good)))
            if not more:
                break
            joined = "".join(more)
            if '"' in joined or "\x00" in joined or (len(joined) > limit and max(map(len, more)) > limit):
                # Quoting (a record may span lines), NUL or an over-long field: from here the csv module
                # reads the file (this chunk's lines so far, then the rest), in chunks of `size` rows.
                rest = chain(zip(numbers, csv.reader(good), strict=True),
                             enumerate(csv.reader(chain(more, lines)), start=number + 1))
                for part in chunks(csv_records(rest, plan), size):
                    yield Chunk(len(part), scored=score_chunk(predictor, part))
                return
            first, number = number + 1, number + len(more)
            if _BLANK.isdisjoint(more):
                good += more
                numbers += range(first, number + 1)
            else:
                kept = [(n, line) for n, line in enumerate(more, start=first) if line not in _BLANK]
                good += [line for _, line in kept]
                numbers += [n for n, _ in kept]
        if not good:
            return
        if any(line.count(",") != commas for line in good):
            yield _per_row(predictor, good, numbers, plan)
            continue
        matrix = _parsed(good, plan)
        if matrix is None or not np.isfinite(matrix).all():
            yield _per_row(predictor, good, numbers, plan)
            continue
        try:
            predictions, _ = predictor.predict(matrix)
        except ApiError:
            yield _per_row(predictor, good, numbers, plan)
            continue
        ids = _ids(good, plan.id_at, plan.width) if plan.id_at is not None else None
        yield Chunk(len(good), numbers=numbers, ids=ids, predictions=predictions)
