"""The layering rule: product code never imports the stand-in (pyproject.toml [tool.importlinter])."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from helpers import ROOT

LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
PACKAGES = ("model", "service", "deploy", "standin")


def lint_imports(cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(cwd)}
    return subprocess.run([str(LINT_IMPORTS), "--config", "pyproject.toml", "--no-cache"], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def copy_of_the_tree(target: Path) -> Path:
    for package in PACKAGES:
        shutil.copytree(ROOT / package, target / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", target / "pyproject.toml")
    return target


def test_the_tree_keeps_its_contracts():
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "product never imports the stand-in KEPT" in result.stdout


def test_a_product_import_of_the_stand_in_is_caught(tmp_path):
    tree = copy_of_the_tree(tmp_path)
    (tree / "deploy" / "shortcut.py").write_text('"""A deliberate violation."""\n\nimport standin.ports\n')
    result = lint_imports(tree)
    assert result.returncode != 0
    assert "product never imports the stand-in BROKEN" in result.stdout
    assert "deploy.shortcut -> standin.ports" in result.stdout, result.stdout


def test_a_service_import_of_the_deploy_tooling_is_caught(tmp_path):
    tree = copy_of_the_tree(tmp_path)
    violation = '"""A deliberate violation."""\n\nfrom deploy import image\n'
    (tree / "service" / "shortcut.py").write_text(violation)
    result = lint_imports(tree)
    assert result.returncode != 0
    assert "the model package and the service import no deploy tooling BROKEN" in result.stdout
