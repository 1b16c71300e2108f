"""Check through the service's own URL that it serves the model version a rollout deployed."""

from __future__ import annotations

import http.client
import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable

from deploy.errors import DeployError

# Everything a broken, restarting or half-drained server can answer with: refused or reset
# connections and timeouts (OSError, HTTPError), garbage status lines and truncated bodies
# (HTTPException), and bodies that are not a manifest (ValueError).
_NO_ANSWER = (OSError, ValueError, http.client.HTTPException)


class VerifyFailed(DeployError):
    """The service did not answer the expected version often enough in time."""


def fetch_version(service_url: str, timeout: float = 5.0) -> str:
    """The `version` that GET <service_url>/model answers (raises one of _NO_ANSWER on failure)."""
    url = service_url.rstrip("/") + "/model"
    with urllib.request.urlopen(url, timeout=timeout) as response:
        body = json.loads(response.read())
    if not isinstance(body, dict) or "version" not in body:
        raise ValueError(f"{url} answered without a version")
    return str(body["version"])


def verify_version(
    service_url: str,
    expected: str,
    *,
    consecutive: int = 3,
    settle: float = 0.0,
    timeout: float = 60.0,
    interval: float = 1.0,
    log: Callable[[str], None] = print,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Wait until `consecutive` answers in a row, spanning at least `settle` seconds, name `expected`.

    Several answers are needed because a load balancer (or gunicorn's old workers) still answers
    from the old version while a deployment drains; one right answer proves little. VerifyFailed
    after `timeout` seconds, with the answers seen.
    """
    deadline = clock() + timeout
    streak, streak_start, last = 0, 0.0, "no answer yet"
    seen: dict[str, int] = {}
    next_report = clock() + 2.0
    while True:
        try:
            version = fetch_version(service_url)
            last = f"version {version}"
        except _NO_ANSWER as exc:
            version, last = None, f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}"
        seen[version or "no answer"] = seen.get(version or "no answer", 0) + 1
        now = clock()
        if version == expected:
            if streak == 0:
                streak_start = now
            streak += 1
            if streak >= consecutive and now - streak_start >= settle:
                log(f"verify: {service_url} answered {expected} {streak} times in a row "
                    f"over {now - streak_start:.1f}s")
                return
        else:
            streak = 0
        if now >= deadline:
            summary = ", ".join(f"{v}: {n}" for v, n in seen.items())
            raise VerifyFailed(
                f"{service_url}/model did not answer version {expected} {consecutive} times in a row "
                f"within {timeout:g}s (last: {last}; answers: {summary})"
            )
        if now >= next_report:
            log(f"verify: waiting for {expected} ({', '.join(f'{v}: {n}' for v, n in seen.items())})")
            next_report = now + 2.0
        sleep(interval)
