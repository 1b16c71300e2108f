"""The git commit of a checkout: recorded in manifests, used as the image tag and a pipeline's GIT_COMMIT."""

from __future__ import annotations

import subprocess
from pathlib import Path


def head_commit(cwd: Path | str | None = None, *, short: int = 0) -> str | None:
    """HEAD's commit id (`short` hex digits, 0 for all), or None outside a git checkout."""
    command = ["git", "rev-parse", f"--short={short}" if short else "--verify", "HEAD"]
    try:
        answer = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return answer.stdout.strip() if answer.returncode == 0 and answer.stdout.strip() else None


def is_dirty(cwd: Path | str | None = None) -> bool:
    """True if tracked files differ from HEAD (an image built from them is not the commit)."""
    try:
        return subprocess.run(["git", "diff", "--quiet", "HEAD", "--"], cwd=cwd,
                              capture_output=True, timeout=30).returncode != 0
    except (OSError, subprocess.SubprocessError):
        return False
