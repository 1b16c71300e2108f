"""The scripts Jenkins and operators run: --help, the rollout dispatcher, one-line errors."""

from __future__ import annotations

import subprocess

import pytest
from helpers import ROOT

SCRIPTS = ["build-image", "push-image", "smoke-image", "register-task-def", "stack"]


def run(*args, env=None):
    return subprocess.run([str(ROOT / "scripts" / args[0]), *args[1:]], capture_output=True, text=True,
                          env=env, timeout=60)


@pytest.mark.parametrize("script", SCRIPTS)
def test_help(script):
    result = run(script, "--help")
    assert result.returncode == 0 and "usage:" in result.stdout, result.stderr


def test_rollout_dispatches_to_ecs_and_local():
    assert "ecs" in run("rollout", "--help").stdout
    ecs = run("rollout", "ecs", "--help")
    assert ecs.returncode == 0 and "--promote" in ecs.stdout and "--force" in ecs.stdout
    assert "exit codes" in ecs.stdout and " 13  the rollout failed and its rollback failed" in ecs.stdout
    local = run("rollout", "local", "--help")
    assert local.returncode == 0 and "usage: scripts/rollout local" in local.stdout


def test_rollout_refuses_an_unknown_target():
    result = run("rollout", "kubernetes")
    assert result.returncode == 2
    assert "invalid choice: 'kubernetes'" in result.stderr.strip().splitlines()[-1]


def test_rollout_ecs_without_a_service_is_a_one_line_error(monkeypatch):
    import os

    env = {k: v for k, v in os.environ.items() if k not in ("ECS_CLUSTER", "ECS_SERVICE")}
    result = run("rollout", "ecs", "--dry-run", env=env)
    assert result.returncode == 9
    assert result.stderr == "error: name the service: --cluster/--service or ECS_CLUSTER/ECS_SERVICE\n"


def test_smoke_with_a_missing_store_folder_is_exit_4(tmp_path):
    import shutil

    if not (shutil.which("podman") or shutil.which("docker")):
        pytest.skip("needs podman or docker on PATH (the store is checked before anything runs)")
    result = run("smoke-image", "--tag", "t", "--store", str(tmp_path / "nope"))
    assert result.returncode == 4 and result.stderr.startswith("error: store folder ")
