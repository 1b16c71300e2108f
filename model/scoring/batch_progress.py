"""What a batch run shows while it works: when stderr is a terminal, one progress line on it, redrawn in
place, with the rows scored, rows/s and an ETA (from the bytes read of the bytes to read); and on
stdout, terminal or not, one summary line per file skipped, scored or failed. stderr otherwise holds
only the run's `error:` line, as for every command.
"""

from __future__ import annotations

import sys
import threading
import time

_REDRAW_S = 0.2
_WIDTH = 24


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


class Progress:
    """Counts rows and bytes across every file of a run and reports them on `stream`."""

    def __init__(self, out=None, bar=None, tty: bool | None = None):
        self.out = out or sys.stdout
        self.stream = bar or sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self._lock = threading.Lock()
        self.files = self.total_bytes = self.rows = self.bytes = self.finished = 0
        self.started = time.monotonic()
        self._drawn = 0.0
        self._shown = False

    def start(self, files: int, total_bytes: int) -> None:
        with self._lock:
            self.files, self.total_bytes, self.started = files, total_bytes, time.monotonic()

    def advance(self, rows: int, size: int) -> None:
        """`rows` more rows scored, `size` more bytes read."""
        with self._lock:
            self.rows += rows
            self.bytes += size
            now = time.monotonic()
            if self.tty and now - self._drawn >= _REDRAW_S:
                self._drawn = now
                self._draw()

    def line(self) -> str:
        """The progress line: bar, percent, rows, rows/s, ETA, files."""
        elapsed = max(time.monotonic() - self.started, 1e-9)
        fraction = min(self.bytes / self.total_bytes, 1.0) if self.total_bytes else 0.0
        filled = int(fraction * _WIDTH)
        eta = _duration(elapsed * (1 - fraction) / fraction) if fraction > 0 else "?"
        return (f"[{'#' * filled}{'.' * (_WIDTH - filled)}] {fraction:4.0%} {self.rows:,} rows "
                f"{self.rows / elapsed:,.0f} rows/s ETA {eta} ({self.finished}/{self.files} files)")

    def _draw(self) -> None:
        self.stream.write("\r" + self.line() + "\x1b[K")
        self.stream.flush()
        self._shown = True

    def _print(self, text: str) -> None:
        if self._shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self._shown = False
        self.out.write(text + "\n")
        self.out.flush()
        if self.tty and self.files and self.finished < self.files:
            self._draw()

    def file_done(self, outcome) -> None:
        """One line for a file that was skipped, scored or failed."""
        job = outcome.job
        with self._lock:
            if outcome.status == "skipped":
                self._print(f"skipped {job.file.uri}: {job.output} is complete for this version")
                return
            self.finished += 1
            if outcome.status == "failed":
                self._print(f"failed {job.file.uri}: {outcome.reason}")
                return
            rate = outcome.rows / outcome.seconds if outcome.seconds else 0.0
            errors = f", {outcome.errors:,} rows failed (see {job.output}.errors.jsonl)" if outcome.errors \
                else ""
            self._print(f"scored {job.file.uri} -> {job.output}: {outcome.rows:,} rows{errors} in "
                        f"{outcome.seconds:.1f} s ({rate:,.0f} rows/s)")

    def close(self) -> None:
        with self._lock:
            if self._shown:
                self.stream.write("\r\x1b[K")
                self.stream.flush()
                self._shown = False
