"""The README's first commands work as written against a running service."""

import json
import re
import subprocess

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
