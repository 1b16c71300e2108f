"""Jenkins on a laptop: the Jenkinsfile's dry run (groovy) and running its stages' steps.

The stages are not listed anywhere in Python: they come from a dry run of the Jenkinsfile
(standin/dryrun.groovy evaluates it under a small stub of the Declarative DSL, `when` conditions
decided for a branch, the PIPELINE parameter and the changed paths), so a local run and Jenkins
cannot drift apart. Steps run as they would on an agent: `sh` under bash, `input` asked on the
terminal (or answered by --approve), `build` handed to the runner (which queues the build),
`post { always }` collecting reports and artifacts.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from model.exit_codes import ExitCode
from standin.errors import PipelineError

DRYRUN = Path(__file__).resolve().parent / "dryrun.groovy"


@dataclass
class StageResult:
    """How one stage went."""

    name: str
    status: str  # ok, FAILED, skipped
    seconds: float = 0.0
    detail: str = ""
    exit_code: int = 0
    build: int = 1  # which build of the local run (a `build` step queues more)



def java_home() -> str | None:
    """JAVA_HOME for groovy, from the `java` on PATH (Debian's groovy needs it set)."""
    java = shutil.which("java")
    if not java:
        return None
    return str(Path(os.path.realpath(java)).parent.parent)


def groovy_env() -> dict[str, str]:
    """The environment groovy runs in: JAVA_HOME set, and a JVM tuned for a short script."""
    home = java_home()
    if not home:
        raise PipelineError("java is needed to run groovy (apt-get install default-jre-headless)")
    # A dry run lasts a second or two: the JIT's top tier and a parallel GC only cost start-up time.
    return {**os.environ, "JAVA_HOME": home,
            "JAVA_OPTS": os.environ.get("JAVA_OPTS", "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC")}


def dry_run(jenkinsfile: Path, *, branch: str, params: dict[str, str], changed: list[str],
            env: dict[str, str] | None = None, workspace: Path | None = None,
            causes: tuple[str, ...] = ()) -> dict:
    """The Jenkinsfile's dry run (see standin/dryrun.groovy) as a dict; PipelineError if it fails.

    `workspace`: the folder `fileExists`/`readFile` read; without it the files earlier stages write do
    not exist yet, and stages whose `when` reads one are marked `deferred`.
    """
    groovy = shutil.which("groovy")
    if not groovy:
        raise PipelineError("groovy is needed to read the Jenkinsfile's stages (apt-get install groovy)")
    env_for_groovy = groovy_env()
    command = [groovy, str(DRYRUN), "--branch", branch]
    for key, value in params.items():
        command += ["--param", f"{key}={value}"]
    for path in changed:
        command += ["--changed", path]
    for key, value in (env or {}).items():
        command += ["--env", f"{key}={value}"]
    for cause in causes:
        command += ["--cause", cause]
    if workspace is not None:
        command += ["--workspace", str(workspace)]
    command.append(str(jenkinsfile))
    answer = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env_for_groovy)
    if answer.returncode != 0:
        # Groovy 2.4 on a recent Java prints reflective-access warnings; keep only our own message.
        lines = [line for line in answer.stderr.splitlines() if line.startswith("dryrun:")]
        message = lines[-1] if lines else f"the Jenkinsfile dry run failed: {answer.stderr.strip()}"
        raise PipelineError(message)
    return json.loads(answer.stdout)


def make_targets(step: dict) -> list[str]:
    """The make targets an `sh` step calls (`make a b VAR=x` -> [a, b]); [] for other commands."""
    words = step.get("sh", "").split()
    if not words or words[0] != "make":
        return []
    return [w for w in words[1:] if "=" not in w and not w.startswith("-")]


def ask(message: str, ok: str, approve: bool) -> bool:
    """The `input` step: --approve answers yes; otherwise ask on the terminal (no terminal: refused)."""
    if approve:
        print(f"    input: {message} -> {ok} (--approve)", flush=True)
        return True
    if not sys.stdin.isatty():
        print(f"    input: {message} -> no terminal to ask and no --approve: refused", flush=True)
        return False
    reply = input(f"    input: {message} [{ok}? y/N] ")
    return reply.strip().lower() in ("y", "yes")


def run_stage(stage: dict, env: dict[str, str], cwd: Path, approve: bool,
              on_build: Callable[[dict], str | None] | None = None, build: int = 1) -> StageResult:
    """Run one stage's steps in order; stop at the first failing one.

    A `build` step goes to `on_build`, which queues the build and returns None, or returns why it
    cannot (the stage then fails).
    """
    started = time.monotonic()
    for step in stage["steps"]:
        if "sh" in step:
            print(f"    + {step['sh']}", flush=True)
            code = subprocess.run(["bash", "-eo", "pipefail", "-c", step["sh"]], cwd=cwd, env=env).returncode
            if code != 0:
                return StageResult(stage["name"], "FAILED", time.monotonic() - started,
                                   f"`{step['sh']}` exited {code}", code, build)
        elif "input" in step:
            if not ask(step["input"], step.get("ok") or "Proceed", approve):
                return StageResult(stage["name"], "FAILED", time.monotonic() - started,
                                   "approval refused", ExitCode.GATE_REFUSED, build)
        elif "build" in step:
            refused = on_build(step) if on_build else "no runner to queue builds"
            if refused:
                print(f"    build: {refused}", flush=True)
                return StageResult(stage["name"], "FAILED", time.monotonic() - started,
                                   f"build {step['build']}: {refused}", ExitCode.INVALID_INPUT, build)
        else:
            # Reporting steps (commit status) have no local counterpart; say so rather than pretend.
            print(f"    ({step.get('step')}: Jenkins only)", flush=True)
    return StageResult(stage["name"], "ok", time.monotonic() - started, build=build)


def post_always(plan: dict, cwd: Path, artifacts: Path) -> list[str]:
    """The `post { always }` steps of the pipeline (or of one stage, given the stage): check the JUnit
    reports exist, archive the artifacts."""
    lines = []
    for step in plan.get("post", {}).get("always", []):
        args = step.get("args", [{}])[0] if step.get("args") else {}
        if step.get("step") == "junit":
            pattern = args.get("testResults", "") if isinstance(args, dict) else str(args)
            found = sorted(glob.glob(str(cwd / pattern)))
            lines.append(f"junit {pattern}: {len(found)} report(s)")
        elif step.get("step") == "archiveArtifacts":
            patterns = args.get("artifacts", "") if isinstance(args, dict) else str(args)
            copied = 0
            for pattern in (p.strip() for p in patterns.split(",") if p.strip()):
                # Jenkins' Ant patterns: `**` matches any depth, and only files are archived.
                for path in glob.glob(str(cwd / pattern), recursive=True):
                    if not os.path.isfile(path):
                        continue
                    relative = Path(path).relative_to(cwd)
                    (artifacts / relative).parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(path, artifacts / relative)
                    copied += 1
            lines.append(f"archiveArtifacts: {copied} file(s) to {artifacts}")
    return lines


def print_result(result: StageResult) -> None:
    detail = f"  ({result.detail})" if result.detail else ""
    print(f"==> {result.name:<20} {result.status:<8} {result.seconds:7.1f}s{detail}", flush=True)



def summary(results: list[StageResult]) -> None:
    print("\npipeline-local summary", flush=True)
    several = len({r.build for r in results}) > 1
    for number, result in enumerate(results):
        if several and (number == 0 or results[number - 1].build != result.build):
            print(f"build #{result.build}", flush=True)
        print_result(result)

