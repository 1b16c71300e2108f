"""The rollout's one compensation path, under the faults that used to skip it.

Each reproducer drives the ECS target with scripted answers (tests/fakes.py) through the rollout core:
a verify answer with a garbage status line or a truncated body, a reset connection from
describe_services, SIGTERM in the middle of the wait, a promotion by somebody else meanwhile, a
quality gate that refuses. Each ends with the task definition and the alias as they must be and the
documented exit code (model/exit_codes.py).
"""

from __future__ import annotations

import os
import signal

import pytest
from fakes import FakeEcs, FakeStore, RawServer, deployment, run_scripted

from model.exit_codes import ExitCode

OLD, NEW = "arn:td/old:1", "arn:td/new:2"


def settles_old(fake) -> list[dict]:
    """The deployment list once the service is back on the old revision."""
    return [deployment(fake.td, "COMPLETED")]


def new_revision_then(action):
    """A script step: when the new revision is first live, run `action(fake)`; it then completes."""
    done = []

    def step(fake):
        if fake.td == NEW and not done:
            done.append(True)
            action(fake)
        if fake.td == NEW:
            return [deployment(fake.td, "COMPLETED")]
        return settles_old(fake)

    return step


def assert_restored(error, fake, store, code=ExitCode.ROLLED_BACK):
    assert error is not None and error.exit_code == code, error
    assert fake.updates == [NEW, OLD]  # the service went back to the previous revision
    assert fake.deregistered == [NEW]
    assert store.production.version == "v-old" and store.moves == ["v-new", "v-old"]


@pytest.mark.parametrize(
    ("answer", "name"),
    [
        (b"HTTP/1.1 GARBAGE\r\n\r\n", "BadStatusLine"),
        (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"version\":",
         "IncompleteRead"),
        (b"", "RemoteDisconnected"),
    ],
)
def test_a_broken_verify_answer_rolls_back(answer, name):
    server = RawServer(answer)
    try:
        fake = FakeEcs([lambda f: [deployment(f.td, "COMPLETED")]])
        store = FakeStore()
        error, lines = run_scripted(fake, store=store, url=server.url)
    finally:
        server.close()
    assert_restored(error, fake, store)
    assert name in str(error) and "did not answer version v-new" in str(error), lines


def test_a_reset_connection_from_describe_services_rolls_back():
    def reset(fake):
        raise ConnectionResetError(104, "Connection reset by peer")

    fake = FakeEcs([new_revision_then(reset)])
    store = FakeStore()
    error, lines = run_scripted(fake, store=store)
    assert_restored(error, fake, store)
    assert "ConnectionResetError" in str(error), lines


def test_sigterm_in_the_middle_of_the_wait_rolls_back():
    def terminate(fake):
        os.kill(os.getpid(), signal.SIGTERM)

    fake = FakeEcs([new_revision_then(terminate)])
    store = FakeStore()
    before = signal.getsignal(signal.SIGTERM)
    error, lines = run_scripted(fake, store=store)
    assert_restored(error, fake, store)
    assert "interrupted (SIGTERM)" in str(error) and "rollback: done" in lines
    assert signal.getsignal(signal.SIGTERM) is before  # the handler is put back


def test_a_failing_rollback_says_what_is_left_to_undo():
    fake = FakeEcs([lambda f: [deployment(f.td, "FAILED")]], fail_update_on=OLD)
    store = FakeStore()
    error, _ = run_scripted(fake, store=store)
    assert error.exit_code == ExitCode.ROLLBACK_FAILED
    assert f"undo by hand: service s not restored to {OLD}" in str(error)
    assert store.production.version == "v-old"  # what could be restored was


def test_a_promotion_by_somebody_else_meanwhile_is_kept():
    store = FakeStore()
    fake = FakeEcs([new_revision_then(lambda f: store.promote_by_someone_else("v-theirs"))])
    error, lines = run_scripted(fake, store=store, url="http://127.0.0.1:9")  # verify fails: rollback
    assert error.exit_code == ExitCode.ROLLED_BACK
    assert fake.updates == [NEW, OLD]  # the service, this run's change, is restored
    assert store.production.version == "v-theirs" and store.moves == ["v-new"]  # theirs is untouched
    assert any("moved by someone else since (now v-theirs); left as it is" in line for line in lines)


def test_a_promotion_the_gate_refuses_changes_nothing():
    fake = FakeEcs([lambda f: [deployment(f.td, "COMPLETED")]])
    store = FakeStore(metrics={"v-old": 0.95, "v-new": 0.80})
    error, _ = run_scripted(fake, store=store)
    assert error.exit_code == ExitCode.GATE_REFUSED and "FAILS" in str(error) and "--force" in str(error)
    assert fake.registered == [] and fake.updates == [] and store.moves == []


def test_force_promotes_past_the_gate(version_server):
    fake = FakeEcs([lambda f: [deployment(f.td, "COMPLETED")]])
    store = FakeStore(metrics={"v-old": 0.95, "v-new": 0.80})
    error, lines = run_scripted(fake, store=store, url=version_server.url, gate={"force": True})
    assert error is None, lines
    assert store.production.version == "v-new" and any("FAILS" in line for line in lines)
