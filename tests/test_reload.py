"""Zero-downtime reload: `scripts/rollout local` against real gunicorn while requests keep flowing."""

import threading
import time
from datetime import UTC, datetime

import pytest
import requests
from helpers import GunicornServer

from deploy.rollout.cli import main


def rollout(args: list[str]) -> int:
    """`scripts/rollout local ARGS` in this process (its exit code; argparse errors raise SystemExit)."""
    return main(["local", *args])


def another_version(manifest: dict, year: int) -> dict:
    """The same artifact published under a distinct (later) version id: a new immutable version."""
    from model.artifact import new_version

    created = datetime(year, 1, 1, tzinfo=UTC)
    return {
        **manifest,
        "version": new_version(created, manifest["artifact"]["sha256"]),
        "created_at": created.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


@pytest.fixture(scope="module")
def setup(tmp_path_factory, trained_digits):
    """A store with v1 (production) and v2 (published, not promoted), and a server following it."""
    from model.store import ModelStore

    folder = tmp_path_factory.mktemp("reload")
    uri = str(folder / "store")
    store = ModelStore(uri)
    artifact, v1 = trained_digits
    v2 = another_version(v1, 2030)
    store.publish(artifact, v1)
    store.publish(artifact, v2)
    store.move_alias("digits", "production", v1["version"])
    server = GunicornServer(folder / "g", {"MODEL_STORE": uri}, workers=2)
    yield {
        "store": store,
        "uri": uri,
        "server": server,
        "v1": v1["version"],
        "v2": v2["version"],
        "example": v1["example"],
        "artifact": artifact,
        "manifest": v1,
    }
    server.stop()


class Traffic:
    """A steady, bounded stream of /predict requests recording (start, end, outcome)."""

    def __init__(self, url: str, example):
        self.url, self.body = url + "/predict", {"instances": [example]}
        self.results: list[tuple[float, float, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        session = requests.Session()
        while not self._stop.is_set():
            start = time.monotonic()
            try:
                response = session.post(self.url, json=self.body, timeout=10)
                outcome = (
                    response.json()["model"]["version"] if response.ok else f"HTTP {response.status_code}"
                )
            except (requests.RequestException, ValueError) as exc:
                outcome = f"failed: {exc}"
            self.results.append((start, time.monotonic(), outcome))
            time.sleep(0.005)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(15)


def common(setup) -> list[str]:
    server = setup["server"]
    return [
        "--store",
        setup["uri"],
        "--name",
        "digits",
        "--pidfile",
        str(server.pidfile),
        "--url",
        server.url,
        "--timeout",
        "60",
        "--settle",
        "1",
    ]


def switch_under_load(setup, args, old, new, capsys):
    with Traffic(setup["server"].url, setup["example"]) as traffic:
        time.sleep(0.5)
        assert rollout([*common(setup), *args]) == 0
        done = time.monotonic()
        time.sleep(0.5)
    out = capsys.readouterr().out
    outcomes = [outcome for _, _, outcome in traffic.results]
    failures = [o for o in outcomes if o not in (old, new)]
    assert not failures, failures[:5]
    assert outcomes[0] == old and new in outcomes
    after = [outcome for start, _, outcome in traffic.results if start > done]
    assert after and set(after) == {new}
    # Once the rollout verified, no request may ever see the old version again.
    first_new = outcomes.index(new)
    stragglers = [o for o in outcomes[first_new:] if o == old]
    assert len(stragglers) <= 2, "old workers kept answering after the new ones started"
    return out, len(outcomes)


def test_rollout_and_rollback_with_zero_failed_requests(setup, capsys):
    v1, v2 = setup["v1"], setup["v2"]
    out, n = switch_under_load(setup, ["--version", v2], v1, v2, capsys)
    assert setup["store"].alias("digits", "production").version == v2
    assert f"production -> {v2} (was {v1})" in out and "sent SIGHUP" in out and "ok: " in out
    assert "signal: hup" in setup["server"].log().lower()  # gunicorn logged the reload
    assert n > 20

    out, _ = switch_under_load(setup, ["--rollback"], v2, v1, capsys)
    assert setup["store"].alias("digits", "production").version == v1
    assert f"production -> {v1} (was {v2})" in out


def test_tampered_version_is_refused_before_the_alias_moves(setup, capsys):
    from model.artifact import sha256_bytes

    store = setup["store"]
    bad = bytearray(setup["artifact"])
    bad[-20] ^= 0xFF
    v3 = another_version(setup["manifest"], 2031)
    store.publish(
        bytes(bad), {**v3, "artifact": {**v3["artifact"], "sha256": sha256_bytes(setup["artifact"])}}
    )
    before = store.alias("digits", "production").version
    assert rollout([*common(setup), "--version", v3["version"]]) == 6
    assert "sha256" in capsys.readouterr().err
    assert store.alias("digits", "production").version == before


def test_usage_and_missing_server(setup, tmp_path, capsys):
    for args in ([], ["--pidfile", str(tmp_path / "none.pid"), "--rollback", "--version", "x"]):
        with pytest.raises(SystemExit) as usage:  # --pidfile is required; two selectors
            rollout(args)
        assert usage.value.code == 2
    assert rollout(["--pidfile", str(tmp_path / "none.pid")]) == 11
    assert "cannot read pidfile" in capsys.readouterr().err
    assert rollout([*common(setup), "--version", "20300101T000000Z-deadbeef"]) == 4
    assert "not found" in capsys.readouterr().err


def test_unverified_rollout_moves_the_alias_back(tmp_path, trained_digits, capsys):
    """A server pinned to v1 (MODEL_VERSION) never serves v2: the rollout times out and restores v1."""
    from model.store import ModelStore

    uri = str(tmp_path / "store")
    store = ModelStore(uri)
    artifact, v1 = trained_digits
    v2 = another_version(v1, 2030)
    store.publish(artifact, v1)
    store.publish(artifact, v2)
    store.move_alias("digits", "production", v1["version"])
    server = GunicornServer(tmp_path / "g", {"MODEL_STORE": uri, "MODEL_VERSION": v1["version"]}, workers=1)
    try:
        code = rollout(
            [
                "--store",
                uri,
                "--pidfile",
                str(server.pidfile),
                "--url",
                server.url,
                "--version",
                v2["version"],
                "--timeout",
                "3",
                "--settle",
                "0.5",
            ]
        )
        assert code == 12
        captured = capsys.readouterr()
        assert f"rollback: alias production -> {v1['version']}" in captured.out
        assert captured.err.startswith("error: rolled back: ") and captured.err.count("\n") == 1
        assert store.alias("digits", "production").version == v1["version"]
        assert requests.get(server.url + "/model", timeout=5).json()["version"] == v1["version"]
    finally:
        server.stop()


def test_a_promotion_the_gate_refuses_moves_nothing_and_reloads_nothing(setup, capsys):
    store = setup["store"]
    worse = another_version(setup["manifest"], 2033)
    worse["metrics"] = {**worse["metrics"], "macro_f1": worse["metrics"]["macro_f1"] - 0.2}
    store.publish(setup["artifact"], worse)
    before = store.alias("digits", "production")
    hangups = setup["server"].log().lower().count("signal: hup")
    assert rollout([*common(setup), "--version", worse["version"]]) == 8
    err = capsys.readouterr().err
    assert err.startswith("error: gate: candidate macro_f1=") and "FAILS" in err and "--force" in err
    assert store.alias("digits", "production") == before
    assert requests.get(setup["server"].url + "/model", timeout=5).json()["version"] == before.version
    assert setup["server"].log().lower().count("signal: hup") == hangups  # no reload was sent
