"""The exit codes of every command the project ships, defined once.

`python -m model`, `scripts/rollout`, `scripts/stack`, `scripts/build-image`, `scripts/push-image`,
`scripts/smoke-image`, `scripts/register-task-def`, `scripts/train-task` and `scripts/pipeline-local`
all exit with these codes, and each prints one line `error: ...` on stderr when the code is not 0.
The errors of the model and deploy packages carry their code (`exit_code`); the README's table is
generated from `TABLE` (`make exit-codes`) and a test keeps the two equal.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """What a non-zero exit means; the numbers are a contract with Jenkins stages and scripts."""

    OK = 0
    UNEXPECTED = 1
    USAGE = 2
    UNREACHABLE = 3
    NOT_FOUND = 4
    CONFLICT = 5
    INTEGRITY = 6
    BAD_DATA = 7
    GATE_REFUSED = 8
    INVALID_INPUT = 9
    TOOL_FAILED = 10
    NO_SERVER = 11
    ROLLED_BACK = 12
    ROLLBACK_FAILED = 13
    STACK_BUSY = 14
    STACK_FAILED = 15
    NO_CHANGES = 16
    RECIPE_FAILED = 17
    TASK_FAILED = 18
    ROWS_FAILED = 19
    DRIFT = 20
    INTERRUPTED = 130


# code -> (meaning, what was changed). The second column is the promise an operator relies on.
TABLE: dict[ExitCode, tuple[str, str]] = {
    ExitCode.OK: ("done (or a dry run printed its plan)", ""),
    ExitCode.UNEXPECTED: ("unexpected error (a bug: please report it)",
                          "see the message (a rollout that had started exits 12 or 13 instead)"),
    ExitCode.USAGE: ("usage: unknown option, missing argument, bad option value", "nothing"),
    ExitCode.UNREACHABLE: ("the store or AWS cannot be reached or used: bad URI, no credentials, "
                           "access denied", "nothing"),
    ExitCode.NOT_FOUND: ("not found: model, version, alias, store folder, cluster, service, "
                         "repository, image tag, local image", "nothing"),
    ExitCode.CONFLICT: ("conflict: someone else moved the alias meanwhile, or the version exists",
                        "nothing"),
    ExitCode.INTEGRITY: ("integrity: hash mismatch, truncated or corrupt pickle, bad manifest, "
                         "incompatible scikit-learn", "nothing"),
    ExitCode.BAD_DATA: ("bad training data", "nothing"),
    ExitCode.GATE_REFUSED: ("refused: by the quality gate, or `stack destroy` of a store that holds model "
                            "versions (`--force` overrides both), or at a local pipeline run's approval step",
                            "nothing"),
    ExitCode.INVALID_INPUT: ("invalid input: unfilled placeholder, invalid task definition, "
                             "malformed image reference, conflicting options", "nothing"),
    ExitCode.TOOL_FAILED: ("a system tool is missing or failed: podman/docker (build, push, smoke), "
                           "groovy, the local registry", "nothing in AWS or the store"),
    ExitCode.NO_SERVER: ("no server: the pidfile is missing or names no running process", "nothing"),
    ExitCode.ROLLED_BACK: ("the rollout (or stack deploy) failed, timed out, was interrupted or served the "
                           "wrong version", "rolled back: what this run changed (task definition, alias; "
                           "the stack, by CloudFormation) is restored"),
    ExitCode.ROLLBACK_FAILED: ("the rollout failed **and its rollback failed**",
                               "the message lists what is not restored: a person must act"),
    ExitCode.STACK_BUSY: ("the stack is busy: another create, update or delete is in progress",
                          "nothing (wait for it, then run again)"),
    ExitCode.STACK_FAILED: ("the stack is in a state it cannot be updated from (e.g. ROLLBACK_COMPLETE: "
                            "delete it first) or its change set failed",
                            "nothing; the message says what to do"),
    ExitCode.NO_CHANGES: ("the stack already matches: the change set has no changes "
                          "(`--no-fail-on-empty-changeset` makes this 0)", "nothing"),
    ExitCode.RECIPE_FAILED: ("the recipe failed: cannot be imported, raised while building or fitting, "
                             "returned no estimator, or a classifier on a continuous target", "nothing"),
    ExitCode.TASK_FAILED: ("a training task (`scripts/train-task`) stopped before its command finished: "
                           "the image could not be pulled, it ran out of memory, it was stopped, or the wait "
                           "timed out (the task is then stopped)", "nothing in the store"),
    ExitCode.ROWS_FAILED: ("`model score` finished, but some rows (or whole input files) could not be "
                           "scored: each row's reason is in `<output>.errors.jsonl`, a failed file's on "
                           "stderr",
                           "the rows that scored are written; a re-run skips the complete outputs and "
                           "retries the failed files"),
    ExitCode.DRIFT: ("`model monitor`: a drift threshold was crossed",
                     "nothing (the report names the features)"),
    ExitCode.INTERRUPTED: ("interrupted (Ctrl-C, SIGTERM) before anything changed", "nothing"),
}


def markdown_table() -> str:
    """The table as Markdown, as the README quotes it."""
    lines = ["| code | meaning | what changed |", "| --- | --- | --- |"]
    lines += [f"| {int(code)} | {meaning} | {changed} |" for code, (meaning, changed) in TABLE.items()]
    return "\n".join(lines) + "\n"


def text_table() -> str:
    """The table as plain text, for `--help` epilogues."""
    rows = [f"  {int(code):>3}  {meaning.replace('**', '')}" for code, (meaning, _) in TABLE.items()]
    return "exit codes (one line `error: ...` on stderr when not 0):\n" + "\n".join(rows) + "\n"


if __name__ == "__main__":  # `make exit-codes`
    print(markdown_table(), end="")
