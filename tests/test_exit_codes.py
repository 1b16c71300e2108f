"""One exit-code table for every command: defined in model/exit_codes.py, quoted in the README."""

from __future__ import annotations

import subprocess

import pytest
from helpers import PYTHON, ROOT

from model.exit_codes import TABLE, ExitCode, markdown_table


def test_the_readme_quotes_the_table_exactly():
    text = (ROOT / "README.md").read_text()
    start = text.index("<!-- exit-codes:")
    quoted = text[text.index("\n", start) + 1:text.index("<!-- /exit-codes -->")]
    assert quoted == markdown_table(), "README is stale: paste the output of `make exit-codes`"


def test_make_exit_codes_prints_the_table():
    result = subprocess.run(["make", "--no-print-directory", "-C", str(ROOT), "exit-codes"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout == markdown_table()


def test_every_code_is_documented_once():
    assert set(TABLE) == set(ExitCode)
    assert len({int(code) for code in ExitCode}) == len(ExitCode)


@pytest.mark.parametrize("command", [
    [PYTHON, "-m", "model", "--help"],
    [str(ROOT / "scripts/rollout"), "ecs", "--help"],
    [str(ROOT / "scripts/rollout"), "local", "--help"],
    [str(ROOT / "scripts/build-image"), "--help"],
    [str(ROOT / "scripts/register-task-def"), "--help"],
    [str(ROOT / "scripts/pipeline-local"), "--help"],
    [str(ROOT / "scripts/stack"), "deploy", "--help"],
])
def test_every_command_prints_the_table_in_its_help(command):
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    text = " ".join(result.stdout.split())
    for code, (meaning, _) in TABLE.items():
        assert f"{int(code)} {' '.join(meaning.replace('**', '').split())}" in text, (command, code)


def test_the_errors_carry_codes_from_the_table():
    from deploy import errors as deploy_errors
    from model import errors as model_errors

    for module in (deploy_errors, model_errors):
        for value in vars(module).values():
            if isinstance(value, type) and issubclass(value, Exception) and hasattr(value, "exit_code"):
                assert isinstance(value.exit_code, ExitCode), value
