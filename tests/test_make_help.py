"""`make help`: the targets grouped, in the order a newcomer needs them, in plain words."""

from __future__ import annotations

import re
import subprocess

from helpers import ROOT

GROUPS = [
    "Run",
    "Develop and test",
    "Train pipeline stages",
    "Monitoring",
    "Deploy pipeline stages",
    "Local runs of the whole pipelines",
    "Infrastructure",
]


def _help() -> str:
    result = subprocess.run(
        ["make", "--no-print-directory", "-C", str(ROOT), "help"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def _sections(text: str) -> dict[str, list[str]]:
    """Group heading -> the target names listed under it, in order."""
    sections: dict[str, list[str]] = {}
    current = None
    for line in text.splitlines():
        target = re.match(r"^  make (\S+)\s", line)
        if target:
            assert current is not None, f"a target before any group: {line!r}"
            sections[current].append(target.group(1))
        elif line.strip() and not line.startswith("usage:"):
            current = line.strip()
            sections[current] = []
    return sections


def test_make_help_lists_the_groups_in_a_newcomers_order():
    sections = _sections(_help())
    headings = list(sections)
    assert [next(g for g in GROUPS if h.startswith(g)) for h in headings] == GROUPS, headings
    run = sections[headings[0]]
    assert run[:2] == ["run", "test"], run
    # the pipeline's order, then its Train in ECS stage and the training image it runs
    assert sections[headings[2]] == ["train", "gate", "publish", "promote", "train-task", "image-train",
                                     "push-train"]


def test_make_help_lists_every_described_target_once():
    makefile = (ROOT / "Makefile").read_text()
    described = re.findall(r"^([a-zA-Z0-9_-]+):.*## ", makefile, flags=re.M)
    listed = [name for names in _sections(_help()).values() for name in names]
    assert sorted(listed) == sorted(described) and len(described) >= 25
    assert "test-e2e" in listed  # a digit in the name once hid it


def test_make_help_speaks_plainly():
    text = _help()
    assert "$(" not in text and "$" not in text, "expand the variable or say it in words"
    train = next(line for line in text.splitlines() if line.startswith("  make train "))
    assert "candidate" in train and "publishes nothing" in train
    assert "python -m model train" in text  # what trains and publishes by hand
