"""`python -m model score`: score CSV / JSON-lines files with a verified model version, in chunks,
resumably, several files in parallel processes.

The run resolves the version once (an alias that moves mid-run does not mix versions), plans one
output per input, skips the outputs whose done marker matches this input and this version, and
scores the others: in this process for one file or one worker, else in up to min(--workers, files,
cores) processes, each building the model's Predictor once. Every file streams through in chunks of
`chunk_rows`, so memory is bounded by the chunk, not the file. Output lines, errors and markers:
model.scoring.files_output.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import UTC, datetime

import orjson

from model.errors import ModelError, UsageError
from model.exit_codes import ExitCode
from model.scoring.batch_fast import Chunk, scored_chunks
from model.scoring.batch_model import open_predictor
from model.scoring.batch_rows import Layout
from model.scoring.files import InputFile, TextSource, is_s3, list_inputs, output_for
from model.scoring.files_output import Staged, done_uri, errors_uri, read_done, remove, write_done

DEFAULT_CHUNK_ROWS = 1000


@dataclass(frozen=True)
class Settings:
    """What every file of a run is scored with."""

    name: str
    version: str
    chunk_rows: int = DEFAULT_CHUNK_ROWS
    id_column: str | None = None


@dataclass(frozen=True)
class Job:
    file: InputFile
    output: str


@dataclass
class Outcome:
    """What became of one input: "scored", "skipped" (complete already) or "failed"."""

    job: Job
    status: str
    rows: int = 0
    errors: int = 0
    seconds: float = 0.0
    reason: str = ""
    code: int = 0


@dataclass
class Summary:
    outcomes: list[Outcome] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(1 for o in self.outcomes if o.status == status)

    @property
    def rows(self) -> int:
        return sum(o.rows for o in self.outcomes if o.status == "scored")

    @property
    def errors(self) -> int:
        """Rows that failed, in the outputs scored now and in the complete ones skipped."""
        return sum(o.errors for o in self.outcomes if o.status != "failed")

    def exit_code(self) -> int:
        failed = [o for o in self.outcomes if o.status == "failed"]
        # A store or an input that cannot be reached says more than rows that failed.
        other = [o.code for o in failed if o.code != ExitCode.ROWS_FAILED]
        if other:
            return other[0]
        return ExitCode.ROWS_FAILED if failed or self.errors else ExitCode.OK


def plan(input_uri: str, output_uri: str) -> list[Job]:
    """One job per input file, each with its output; UsageError when outputs would collide or
    land among the inputs."""
    if not output_uri.strip():
        raise UsageError("OUTPUT is empty")
    files, single = list_inputs(input_uri)
    if not single and _inside(output_uri, input_uri):
        raise UsageError(f"the output {output_uri} is inside the input {input_uri}: a re-run would score the "
                         "outputs; choose an output outside it")
    jobs = [Job(f, output_for(f, output_uri, single)) for f in files]
    seen: dict[str, str] = {}
    for job in jobs:
        if job.output in seen:
            raise UsageError(f"{seen[job.output]} and {job.file.relative} would both be scored into "
                             f"{job.output}: rename one")
        seen[job.output] = job.file.relative
    if single and jobs[0].output == jobs[0].file.uri:
        raise UsageError(f"the output {output_uri} is the input itself")
    return jobs


def _inside(output: str, input_uri: str) -> bool:
    if is_s3(output) != is_s3(input_uri):
        return False
    if is_s3(output):
        return (output.rstrip("/") + "/").startswith(input_uri.rstrip("/") + "/")
    out, inp = os.path.realpath(output), os.path.realpath(input_uri)
    return out == inp or out.startswith(inp + os.sep)


def complete(job: Job, settings: Settings) -> dict | None:
    """The output's done marker when it says the output holds this input scored by this version."""
    done = read_done(job.output)
    source = done.get("input") if done else None
    if done and done.get("model") == settings.name and done.get("version") == settings.version \
            and isinstance(source, dict) and source.get("size") == job.file.size \
            and source.get("etag") == job.file.etag:
        return done
    return None


def _line(record: dict) -> bytes:
    try:
        return orjson.dumps(record)
    except TypeError:  # an id orjson cannot write (an integer beyond 64 bits)
        return json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode()


def _lines(chunk: Chunk, head: dict, with_id: bool) -> list[bytes]:
    """The output lines of a chunk whose rows were all predicted: the same bytes as `_line` of each
    row's record ({"row", "id"?, **head, **prediction}), put together from the prediction's own JSON
    instead of a merged dict per row."""
    dumps = orjson.dumps
    tail = b"," + dumps(head)[1:-1] + b","  # ',"model":"...","version":"...",'
    try:
        if with_id:
            lines = [b'{"row":%d,"id":%b%b%b' % (n, dumps(i), tail, dumps(p)[1:])
                     for n, i, p in zip(chunk.numbers, chunk.ids, chunk.predictions, strict=True)]
        else:
            lines = [b'{"row":%d%b%b' % (n, tail, dumps(p)[1:])
                     for n, p in zip(chunk.numbers, chunk.predictions, strict=True)]
        if all(chunk.predictions):  # a prediction always holds a label or a value
            return lines
    except TypeError:  # a value orjson cannot write
        pass
    ids = chunk.ids if with_id else [None] * len(chunk.predictions)
    return [_line({"row": n, "id": i, **head, **p} if with_id else {"row": n, **head, **p})
            for n, i, p in zip(chunk.numbers, ids, chunk.predictions, strict=True)]


def score_file(predictor, job: Job, settings: Settings,
               report: Callable[[int, int], None] = lambda rows, size: None) -> Outcome:
    """Score one input into its output (staged, then committed, then marked done); `report(rows,
    bytes)` is called after each chunk with what was added. FileFailed when the file cannot be read."""
    started = time.monotonic()
    remove(done_uri(job.output))  # from here on, the output is incomplete until the end
    layout = Layout(predictor.manifest["input_schema"], settings.id_column)
    head = {"model": settings.name, "version": settings.version}
    with_id = settings.id_column is not None
    out, errors = Staged(job.output), None
    rows = read = 0
    try:
        with TextSource(job.file) as source:
            for chunk in scored_chunks(predictor, source.lines, job.file.kind, layout, job.file.uri,
                                       settings.chunk_rows):
                if chunk.predictions is not None:  # every row predicted: its lines in one go
                    lines = _lines(chunk, head, with_id)
                    out.write(b"\n".join(lines))  # one write: the lines, each ended by a newline
                    out.lines += len(lines) - 1  # Staged counted the joined lines as one
                for row, prediction in chunk.scored or ():
                    record = {"row": row.number, "id": row.id} if with_id else {"row": row.number}
                    if prediction is not None:
                        out.write(_line({**record, **head, **prediction}))
                        continue
                    if errors is None:
                        errors = Staged(errors_uri(job.output))
                    errors.write(_line({**record, "error": row.error}))
                report(chunk.size, source.bytes_read - read)
                rows, read = rows + chunk.size, source.bytes_read
        out.commit()
        if errors is not None:
            errors.commit()
        else:
            remove(errors_uri(job.output))  # a stale one from an earlier run of another version
    except BaseException:
        out.discard()
        if errors is not None:
            errors.discard()
        raise
    failed = errors.lines if errors is not None else 0
    seconds = time.monotonic() - started
    write_done(job.output, {
        "rows": out.lines, "errors": failed, "model": settings.name, "version": settings.version,
        "seconds": round(seconds, 3),
        "input": {"uri": job.file.uri, "size": job.file.size, "etag": job.file.etag},
        "finished_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    })
    return Outcome(job, "scored", rows=out.lines, errors=failed, seconds=seconds)


def _guarded(predictor, job: Job, settings: Settings, report) -> Outcome:
    try:
        return score_file(predictor, job, settings, report)
    except ModelError as exc:
        return Outcome(job, "failed", reason=str(exc), code=int(exc.exit_code))


# -- worker processes -----------------------------------------------------------------------------
_WORKER: dict = {}


def _start_worker(loaded, settings: Settings, queue) -> None:
    """Each worker process builds the Predictor once, from the version the parent verified."""
    _WORKER.update(predictor=open_predictor(loaded, max_batch=settings.chunk_rows), settings=settings,
                   queue=queue)


def _work(job: Job) -> Outcome:
    queue = _WORKER["queue"]
    return _guarded(_WORKER["predictor"], job, _WORKER["settings"],
                    lambda rows, size: queue.put((rows, size)))


def run(loaded, jobs: list[Job], settings: Settings, *, workers: int, progress) -> Summary:
    """Score the jobs that are not complete; `progress` (model.scoring.batch_progress) hears of
    every chunk and every file."""
    summary = Summary()
    todo = []
    for job in jobs:
        done = complete(job, settings)
        if done:
            outcome = Outcome(job, "skipped", rows=int(done.get("rows") or 0),
                              errors=int(done.get("errors") or 0))
            summary.outcomes.append(outcome)
            progress.file_done(outcome)
        else:
            todo.append(job)
    progress.start(len(todo), sum(job.file.size for job in todo))
    processes = min(workers, len(todo), os.cpu_count() or 1)
    if processes <= 1:
        predictor = open_predictor(loaded, max_batch=settings.chunk_rows) if todo else None
        for job in todo:
            outcome = _guarded(predictor, job, settings, progress.advance)
            summary.outcomes.append(outcome)
            progress.file_done(outcome)
        return summary
    import multiprocessing
    import threading

    queue = multiprocessing.get_context().Queue()
    drain = threading.Thread(target=_drain, args=(queue, progress), daemon=True)
    start = {"initializer": _start_worker, "initargs": (loaded, settings, queue)}
    with ProcessPoolExecutor(processes, **start) as pool:
        try:
            futures = [pool.submit(_work, job) for job in todo]
            drain.start()  # after the workers are forked: none inherits a thread mid-call
            for future in as_completed(futures):
                outcome = future.result()
                summary.outcomes.append(outcome)
                progress.file_done(outcome)
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        finally:
            queue.put(None)
    drain.join(timeout=5)
    return summary


def _drain(queue, progress) -> None:
    while (item := queue.get()) is not None:
        progress.advance(*item)
