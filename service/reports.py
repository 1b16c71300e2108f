"""The served version's HTML report (model/report.py, stored beside its manifest), read once per worker.

Versions are immutable and a report rarely changes (it may be rewritten with a newer comparison),
so a worker keeps the HTML after the first successful read for its lifetime. That a version has no
report is remembered only briefly: one written later shows up within ABSENT_SECONDS, while a page
that links to it does not ask the store on every load. Nor does the page wait on a store that just
failed (a worker serving from its cache while the store is down): it leaves the link out.
"""

from __future__ import annotations

import threading
import time

from service.errors import ApiError, ReportNotFound, StoreUnreachable

ABSENT_SECONDS = 10.0
# The report is generated HTML with inline styles and data: images; nothing else may load or run.
HEADERS = {
    "Content-Security-Policy": "default-src 'none'; img-src data:; style-src 'unsafe-inline'",
    "X-Content-Type-Options": "nosniff",
}


class Reports:
    """Reports of the versions this worker serves, by (name, version)."""

    def __init__(self, store_uri: str):
        self._uri = store_uri
        self._store = None
        self._lock = threading.Lock()
        self._html: dict[tuple[str, str], str] = {}
        self._absent: dict[tuple[str, str], tuple[float, str]] = {}  # when, and the store's message
        self._failed_at = -ABSENT_SECONDS  # when the store last failed to answer

    def _open(self):
        from model.store import ModelStore

        with self._lock:
            if self._store is None:
                self._store = ModelStore(self._uri)  # one client per worker, not one per request
            return self._store

    def html(self, name: str, version: str) -> str:
        """The report's HTML; ReportNotFound if the version has none, StoreUnreachable if the store
        cannot be read."""
        from model.errors import ModelError, NotFoundError

        key = (name, version)
        cached = self._html.get(key)
        if cached is not None:
            return cached
        absent = self._absent.get(key)
        if absent is not None and time.monotonic() - absent[0] < ABSENT_SECONDS:
            raise ReportNotFound(absent[1])
        try:
            html = self._open().read_report(name, version)
        except NotFoundError as exc:
            self._absent[key] = (time.monotonic(), str(exc))
            raise ReportNotFound(str(exc)) from None
        except (ModelError, OSError) as exc:
            self._failed_at = time.monotonic()
            raise StoreUnreachable(f"the model store cannot be reached ({exc}); retry shortly") from None
        self._html[key] = html
        self._absent.pop(key, None)
        return html

    def exists(self, name: str, version: str) -> bool:
        """Whether the version has a report (False too when the store cannot say): for a link."""
        if (name, version) not in self._html and time.monotonic() - self._failed_at < ABSENT_SECONDS:
            return False
        try:
            self.html(name, version)
        except ApiError:
            return False
        return True
