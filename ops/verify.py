"""Check through the service's own URL that it serves the model version a rollout deployed."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable

from ops.deploy_errors import DeployError


class VerifyFailed(DeployError):
    """The service did not answer the expected version often enough in time."""

    exit_code = 6


def fetch_version(service_url: str, timeout: float = 5.0) -> str:
    """The `version` that GET <service_url>/model answers (raises OSError/ValueError on failure)."""
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
    timeout: float = 60.0,
    interval: float = 1.0,
    log: Callable[[str], None] = print,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Wait until `consecutive` answers in a row name `expected`; VerifyFailed after `timeout` seconds.

    Several answers are needed because a load balancer spreads requests over old and new tasks
    while a deployment drains; one right answer proves little.
    """
    deadline = clock() + timeout
    streak, last = 0, "no answer yet"
    while True:
        try:
            version = fetch_version(service_url)
            last = f"version {version}"
            streak = streak + 1 if version == expected else 0
        except (OSError, ValueError) as exc:
            streak, last = 0, f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}"
        if streak >= consecutive:
            log(f"verify: {service_url} answered {expected} {consecutive} times in a row")
            return
        if clock() >= deadline:
            raise VerifyFailed(
                f"{service_url}/model did not answer version {expected} {consecutive} times in a row "
                f"within {timeout:g}s (last: {last})"
            )
        sleep(interval)
