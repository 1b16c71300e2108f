"""The README's first commands work as written against a running service."""

import json
import re
import subprocess
from pathlib import Path

from helpers import ROOT, require_tool


def _quickstart_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Two commands", 1)[1].split("\n## ", 1)[0]
    # Join backslash-continued lines, keep the curl commands.
    joined = re.sub(r"\\\n\s*", "", section)
    return [line.strip() for line in joined.splitlines() if line.strip().startswith("curl ")]


def test_readme_curl_examples_answer(gunicorn_server):
    require_tool("curl", "the README's examples use it")
    commands = _quickstart_commands()
    assert len(commands) >= 2
    answers = []
    for command in commands:
        local = command.replace("localhost:8080", f"127.0.0.1:{gunicorn_server.port}")
        result = subprocess.run(["bash", "-c", local], capture_output=True, text=True, timeout=30)
        assert result.returncode == 0, result.stderr
        answers.append(json.loads(result.stdout))
    assert answers[0]["status"] == "ready"
    prediction = answers[1]["predictions"][0]
    assert prediction["label"] == 0  # the README's example row is a handwritten zero
    assert prediction["probabilities"]["0"] > 0.5


def _fenced(section: str, language: str) -> list[str]:
    """The fenced blocks of one language in a README section, backslash-continued lines joined."""
    text = (ROOT / "README.md").read_text()
    body = text.split(f"## {section}\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(rf"```{language}\n(.*?)```", body, flags=re.S)
    return [re.sub(r"\\\n\s*", "", block) for block in blocks]


def test_bring_your_own_model_section_runs_as_written(tmp_path):
    """From a CSV and a recipe to a served prediction, and from a notebook to an imported pickle."""
    import os

    from helpers import PYTHON, GunicornServer

    require_tool("curl", "the README's examples use it")
    work = tmp_path / "clone"
    work.mkdir()
    # The commands run from the repo root: give them its examples and venv, and a store of their own.
    (work / "examples").symlink_to(ROOT / "examples")
    (work / ".venv").symlink_to(Path(PYTHON).parent.parent)
    env = {**os.environ, "MODEL_STORE": str(work / "store")}
    bash, python = _fenced("Bring your own model", "bash"), _fenced("Bring your own model", "python")
    assert len(bash) == 2 and len(python) == 1
    server = None
    try:
        for line in bash[0].splitlines():
            if not line.strip():
                continue
            if line.strip() == "MODEL_NAME=churn make run":
                server = GunicornServer(tmp_path / "server", {"MODEL_STORE": env["MODEL_STORE"],
                                                              "MODEL_NAME": "churn"})
                continue
            if line.startswith("curl"):
                line = line.replace("localhost:8080", f"127.0.0.1:{server.port}")
            result = subprocess.run(["bash", "-c", line], cwd=work, env=env, capture_output=True, text=True,
                                    timeout=300)
            assert result.returncode == 0, f"{line}\n{result.stderr}"
        answer = json.loads(result.stdout)["predictions"][0]
        assert answer["label"] in (0, 1) and set(answer["probabilities"]) == {"0", "1"}
        assert "<html" in (work / "churn-report.html").read_text()
    finally:
        if server:
            server.stop()
    notebook = subprocess.run([PYTHON, "-c", python[0]], cwd=work, env=env, capture_output=True, text=True,
                              timeout=300)
    assert notebook.returncode == 0, notebook.stderr
    imported = subprocess.run(["bash", "-c", bash[1]], cwd=work, env=env, capture_output=True, text=True,
                              timeout=300)
    assert imported.returncode == 0, imported.stderr
    assert "published wine" in imported.stdout
