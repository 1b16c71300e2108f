"""Every fenced command in the README runs as written, or the README says why it cannot run here.

Each ```bash and ```python block sits right below an HTML comment: `<!-- run: SCENARIO -->` (a test
below runs every block of that scenario, in README order, as one terminal session would) or
`<!-- not run: REASON -->`. A new block without either fails `test_every_command_block_is_run_or_says_why`,
so no example can be added, or rot, without a decision.

The sessions run in a folder of their own with a store of their own (`MODEL_STORE`), the repository's
`.venv`, `scripts/` and `examples/` linked in. What they change, and nothing else:
- `make run` (which holds its terminal) becomes what it does: the Makefile's `train-default` commands,
  then a gunicorn on a free port (helpers.GunicornServer); `localhost:PORT`, `127.0.0.1:PORT` and
  `build/gunicorn-PORT.pid` in later commands name that server.
- `<version>` is the placeholder the README explains as "your version id from `model list`": the
  newest version of the model in the store.
- `http://127.0.0.1:9000` (the README's MinIO) is the session's moto server.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers import PYTHON, ROOT, GunicornServer, require_tool

README = ROOT / "README.md"
SCENARIOS = {"newcomer", "byom", "s3", "monitoring"}
COMMAND_LANGUAGES = {"bash", "python"}
OTHER_LANGUAGES = {"text"}
MARK = re.compile(r"^<!-- (run|not run): (.+) -->$")


@dataclass
class Block:
    line: int  # 1-based line of the opening fence
    language: str
    body: str
    mark: str | None  # "run", "not run" or None
    argument: str  # the scenario, or the reason


def readme_blocks(text: str | None = None) -> list[Block]:
    """The README's fenced blocks, in order, with the HTML comment right above each."""
    lines = (README.read_text() if text is None else text).splitlines()
    blocks, i = [], 0
    while i < len(lines):
        if lines[i].startswith("```"):
            language, start = lines[i][3:].strip(), i
            i += 1
            while i < len(lines) and lines[i] != "```":
                i += 1
            assert i < len(lines), f"README.md:{start + 1}: the fence is never closed"
            mark = MARK.match(lines[start - 1]) if start else None
            blocks.append(
                Block(
                    start + 1,
                    language,
                    "\n".join(lines[start + 1 : i]) + "\n",
                    mark.group(1) if mark else None,
                    mark.group(2).strip() if mark else "",
                )
            )
        i += 1
    return blocks


def indented_code(text: str) -> list[int]:
    """Lines that open a Markdown indented code block (4 spaces after a blank line, outside fences)."""
    found, fenced, previous = [], False, ""
    for number, line in enumerate(text.splitlines(), 1):
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and line.startswith(("    ", "\t")) and line.strip() and not previous.strip():
            found.append(number)
        previous = line
    return found


def scenario(name: str) -> list[Block]:
    return [block for block in readme_blocks() if block.mark == "run" and block.argument == name]


def commands(block: Block) -> list[str]:
    """A shell block's commands: backslash-continued lines joined, blank lines dropped."""
    joined = re.sub(r"\\\n\s*", "", block.body)
    return [line.strip() for line in joined.splitlines() if line.strip()]


# ---- the scheme itself ----------------------------------------------------------------------
def test_every_command_block_is_run_or_says_why():
    blocks = readme_blocks()
    assert len(blocks) >= 10
    for block in blocks:
        where = f"README.md:{block.line}"
        assert block.language in COMMAND_LANGUAGES | OTHER_LANGUAGES, (
            f"{where}: fence language {block.language!r}: use bash, python or text"
        )
        if block.language in OTHER_LANGUAGES:
            continue
        assert block.mark, (
            f"{where}: put `<!-- run: SCENARIO -->` (and run it in tests/test_readme.py) or "
            "`<!-- not run: why -->` on the line above the block"
        )
        if block.mark == "run":
            assert block.argument in SCENARIOS, f"{where}: no test runs scenario {block.argument!r}"
        else:
            assert len(block.argument.split()) >= 4, f"{where}: say why the block is not run"


def test_no_command_hides_in_an_indented_code_block():
    assert indented_code(README.read_text()) == [], "fence it: ```bash, ```python or ```text"


def test_the_scheme_catches_an_unmarked_block_and_indented_code():
    """The checks above fail on what they are there to catch."""
    text = "intro\n\n```bash\nmake run\n```\n\n<!-- not run: x -->\n```bash\nls\n```\n\n    curl x\n"
    first, second = readme_blocks(text)
    assert (first.mark, second.mark, second.argument) == (None, "not run", "x")
    assert indented_code(text) == [12]


def test_every_scenario_has_blocks():
    marked = {block.argument for block in readme_blocks() if block.mark == "run"}
    assert marked == SCENARIOS


# ---- running the blocks ---------------------------------------------------------------------
def _train_default_commands() -> list[str]:
    """What `make run` runs before it serves: the Makefile's train-default recipe."""
    recipe = (ROOT / "Makefile").read_text().split("\ntrain-default:", 1)[1].split("\n\n", 1)[0]
    steps = [
        line.strip().replace("$(PY)", ".venv/bin/python")
        for line in recipe.splitlines()[1:]
        if line.startswith("\t$(PY)")
    ]
    assert steps, "the Makefile's train-default target runs no `$(PY) -m model ...`"
    return steps


MAKE_RUN = re.compile(r"^(?P<env>(?:[A-Z_]+=\S+\s+)*)make run(?:\s+PORT=(?P<port>\d+))?\s*(?:#.*)?$")


class Terminal:
    """One shell session in `work`: commands run in order with bash, exported variables carry over."""

    def __init__(self, work: Path, env: dict, replace: dict[str, str] | None = None, model: str = "digits"):
        self.work, self.env, self.model = work, env, model
        self.replace = dict(replace or {})
        self.servers: list[GunicornServer] = []
        self.outputs: list[tuple[str, str]] = []  # (command as written, its stdout)

    def newest_version(self) -> str:
        from model.store import ModelStore

        versions = ModelStore(self.env["MODEL_STORE"]).versions(self.model)
        assert versions, f"no {self.model} version in the store for <version>"
        return versions[0]

    def run_shell(self, block: Block) -> None:
        for command in commands(block):
            started = MAKE_RUN.match(command)
            if started:
                self._make_run(started)
                continue
            self.run(command)

    def run(self, command: str) -> str:
        local = command.replace("<version>", self.newest_version()) if "<version>" in command else command
        for old, new in self.replace.items():
            local = local.replace(old, new)
        env_file = self.work / ".env-after"
        script = f"set -eo pipefail\n{local}\nenv -0 > {env_file}\n"
        result = subprocess.run(
            ["bash", "-c", script], cwd=self.work, env=self.env, capture_output=True, text=True, timeout=300
        )
        assert result.returncode == 0, (
            f"{command}\n(ran: {local})\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
        )
        self.env = dict(item.split("=", 1) for item in env_file.read_text().split("\0") if "=" in item)
        self.outputs.append((command, result.stdout))
        return result.stdout

    def run_python(self, block: Block) -> None:
        body = block.body
        for old, new in self.replace.items():
            body = body.replace(old, new)
        result = subprocess.run(
            [PYTHON, "-c", body],
            cwd=self.work,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode == 0, f"README.md:{block.line}\n{result.stderr[-3000:]}"
        self.outputs.append((block.body, result.stdout))

    def _make_run(self, match: re.Match) -> None:
        assignments = dict(item.split("=", 1) for item in match.group("env").split())
        port = match.group("port") or "8080"
        saved = self.env
        self.env = {**self.env, **assignments}
        for step in _train_default_commands():
            self.run(step)
        self.env = saved
        server = GunicornServer(
            self.work / f"server-{port}", {"MODEL_STORE": self.env["MODEL_STORE"], **assignments}
        )
        self.servers.append(server)
        self.replace[f"localhost:{port}"] = f"127.0.0.1:{server.port}"
        self.replace[f"127.0.0.1:{port}"] = f"127.0.0.1:{server.port}"
        self.replace[f"build/gunicorn-{port}.pid"] = str(server.pidfile)

    def output_of(self, prefix: str) -> list[str]:
        return [out for command, out in self.outputs if command.startswith(prefix)]

    def close(self) -> None:
        for server in self.servers:
            server.stop()


@pytest.fixture
def terminal(tmp_path):
    work = tmp_path / "clone"
    work.mkdir()
    # The commands run from the repo root: give them its venv, scripts and examples, and a store of their own.
    (work / ".venv").symlink_to(Path(PYTHON).parent.parent)
    for name in ("scripts", "examples"):
        (work / name).symlink_to(ROOT / name)
    env = {**os.environ, "MODEL_STORE": str(work / "store")}
    session = Terminal(work, env)
    yield session
    session.close()


def _alias(terminal: Terminal, name: str = "digits"):
    from model.store import ModelStore

    return ModelStore(terminal.env["MODEL_STORE"]).alias(name, "production")


def test_newcomer_path_runs_as_written(terminal):
    """The two commands' `make run`, then: a served prediction, a second version published, compared
    and promoted, rolled back; served through a local rollout and rolled back again."""
    require_tool("curl", "the README's examples use it")
    blocks = scenario("newcomer")
    assert [block.language for block in blocks] == ["bash"] * 4
    # `make run` is the first of the two commands; the next blocks run in another terminal.
    two_commands = readme_blocks()[0]
    assert commands(two_commands)[0].startswith("make run"), two_commands.body
    terminal.run_shell(Block(0, "bash", "make run\n", "run", "newcomer"))

    try_it, first_change, service_example, local_rollout = blocks
    terminal.run_shell(try_it)
    ready, predicted = (json.loads(out) for out in terminal.output_of("curl -s localhost:8080/")[:2])
    assert ready["status"] == "ready"
    prediction = predicted["predictions"][0]
    assert prediction["label"] == 0  # the README's example row is a handwritten zero
    assert prediction["probabilities"]["0"] > 0.5
    first = _alias(terminal).version

    terminal.run_shell(first_change)
    second = terminal.newest_version()
    assert second != first
    assert "<html" in (terminal.work / "compare.html").read_text()
    assert f"production -> {second}" in "".join(terminal.output_of(".venv/bin/python -m model promote"))
    alias = _alias(terminal)
    assert (alias.version, alias.previous) == (first, second)  # promoted, then rolled back

    terminal.run_shell(service_example)
    assert json.loads(terminal.outputs[-1][1])["model"]["version"] == first

    terminal.run_shell(local_rollout)
    served_after_rollout = terminal.output_of("curl -s localhost:8080/model")[-1].strip()
    assert served_after_rollout == second
    assert _alias(terminal).version == first  # and rolled back
    served = subprocess.run(
        ["curl", "-s", f"{terminal.servers[0].url}/model"], capture_output=True, text=True
    )
    assert json.loads(served.stdout)["version"] == first
    history = terminal.outputs[-1][1]
    moves = re.findall(r"^\S+\s+(\S+)\s+\(was (\S+)\)", history, flags=re.M)  # newest first
    expected = [(first, second), (second, first), (first, second), (second, first), (first, "unset")]
    assert moves == expected, history


def test_bring_your_own_model_section_runs_as_written(terminal):
    """From a CSV and a recipe to a served prediction, and from a notebook to an imported pickle."""
    require_tool("curl", "the README's examples use it")
    terminal.model = "churn"
    recipe, notebook, imported, scoring = scenario("byom")
    assert [b.language for b in (recipe, notebook, imported, scoring)] == ["bash", "python", "bash", "bash"]
    terminal.run_shell(recipe)
    answer = json.loads(terminal.outputs[-1][1])["predictions"][0]
    assert answer["label"] in (0, 1) and set(answer["probabilities"]) == {"0", "1"}
    assert "<html" in (terminal.work / "churn-report.html").read_text()
    terminal.run_python(notebook)
    terminal.run_shell(imported)
    assert "published wine" in terminal.outputs[-1][1]
    # Scoring files: every customer of the CSV scored by the served churn version, as /predict answers.
    terminal.run_shell(scoring)
    head = [json.loads(line) for line in terminal.outputs[-1][1].splitlines()]
    assert [line["row"] for line in head] == [1, 2] and {line["model"] for line in head} == {"churn"}
    assert head[0]["label"] in (0, 1) and set(head[0]["probabilities"]) == {"0", "1"}
    scored = (terminal.work / "scored.jsonl").read_text().splitlines()
    assert len(scored) == len((ROOT / "examples/churn.csv").read_text().splitlines()) - 1


def test_s3_store_section_runs_as_written(terminal, aws_env, moto_endpoint):
    """The S3 block against the session's moto server, standing in for the README's MinIO."""
    import boto3

    (block,) = scenario("s3")
    bucket = re.search(r"s3://([^/\s]+)", block.body).group(1)
    s3 = boto3.client("s3")
    if bucket not in {b["Name"] for b in s3.list_buckets()["Buckets"]}:
        s3.create_bucket(Bucket=bucket)
    # The block's own export points boto3 at the endpoint: nothing else does.
    terminal.env = {key: value for key, value in aws_env.items() if key != "AWS_ENDPOINT_URL"}
    terminal.replace["http://127.0.0.1:9000"] = moto_endpoint
    terminal.run_shell(block)
    listed = terminal.outputs[-1][1]
    assert re.search(r"\d{8}T\d{6}Z-[0-9a-f]{8}.*production", listed), listed
    prefix = block.body.split("s3://", 1)[1].split()[0].split("/", 1)[1]
    keys = [
        o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=f"{prefix}/digits/aliases/")["Contents"]
    ]
    assert keys == [f"{prefix}/digits/aliases/production.json"]


def test_monitoring_section_runs_as_written(terminal):
    """Capture on, held-out-like then brightened digits, the batch check finds drift (exit 20) and
    writes its report, the live gauges see the rows outside the training range, and the pipeline's
    check turns the drift into a retrain request."""
    require_tool("curl", "the README's examples use it")
    # `make monitor-check` runs here: the Makefile and what it reads at parse time.
    for name in ("Makefile", "pyproject.toml", "constraints.txt", "infra"):
        (terminal.work / name).symlink_to(ROOT / name)
    serve, traffic, check = scenario("monitoring")
    assert [b.language for b in (serve, traffic, check)] == ["bash", "python", "bash"]
    terminal.run_shell(serve)
    assert terminal.servers and terminal.servers[0].env.get("CAPTURE_RATE") == "1"
    terminal.run_python(traffic)
    terminal.run_shell(check)
    files = terminal.output_of("find store/digits/capture")[0].split()
    assert len(files) == 2 and all(re.search(
        r"store/digits/capture/version=\d{8}T\d{6}Z-[0-9a-f]{8}/date=\d{4}-\d{2}-\d{2}/hour=\d{2}/"
        r"\d{8}T\d{6}Z-.+-\d{6}\.jsonl$", f) for f in files), files
    monitored = terminal.output_of(".venv/bin/python -m model monitor")[0]
    assert "exit code 20" in monitored, monitored
    verdict = re.search(r"^drift: (\d+) crossed a threshold in (\d+) records: ", monitored, re.M)
    assert verdict and int(verdict.group(2)) == 600, monitored
    assert "outside the training range" in monitored
    report = (terminal.work / "drift.html").read_text()
    assert "<html" in report and report.count("<img") >= 2
    gauges = dict(re.findall(r"^(model_\w+)\{[^}]*\} (\S+)$", terminal.output_of("curl -s localhost")[0],
                             re.M))
    assert float(gauges["model_drift_window_records"]) == 600
    assert float(gauges["model_input_out_of_range_ratio"]) > 0.3  # the brightened half
    assert (terminal.work / "build/monitor/retrain").read_text() == "\n"  # a local store: the plan's data
