"""The Jenkinsfile: it parses, and its dry run picks the right pipeline and calls real make targets.

The dry run (standin/dryrun.groovy) evaluates the Jenkinsfile under a stub of the Declarative DSL for
a given branch, PIPELINE parameter and changeset; these tests read its JSON.
"""

from __future__ import annotations

import json
import re
import subprocess
from concurrent.futures import ThreadPoolExecutor

import pytest
from helpers import ROOT, require_tool

from standin.jenkins import DRYRUN, groovy_env, make_targets

MONITOR = ["Monitor", "Retrain on drift"]
# Promote and roll out are one stage (`make rollout-model` moves the alias and undoes it on failure).
TRAIN = ["test-fast", "train", "gate", "publish", "rollout-model"]
DEPLOY = ["test-fast", "image", "smoke", "push", "deploy"]
INFRA = ["test-fast", "stack-lint", "stack-plan", "stack-deploy", "stack-smoke"]


def dry_run_raw(*args: str, jenkinsfile=None) -> subprocess.CompletedProcess:
    groovy = require_tool("groovy", "parses the Jenkinsfile")
    require_tool("java", "groovy runs on it")
    return subprocess.run(
        [groovy, str(DRYRUN), *args, str(jenkinsfile or ROOT / "Jenkinsfile")],
        capture_output=True, text=True, timeout=300, env=groovy_env(),
    )


def dry_run(*, branch="main", pipeline=None, changed=(), approval=None, env=None, causes=(),
            params=None, workspace=None) -> dict:
    args = ["--branch", branch]
    if workspace is not None:
        args += ["--workspace", str(workspace)]
    for key, value in (params or {}).items():
        args += ["--param", f"{key}={value}"]
    for cause in causes:
        args += ["--cause", cause]
    if pipeline:
        args += ["--param", f"PIPELINE={pipeline}"]
    if approval is not None:
        args += ["--param", f"REQUIRE_APPROVAL={str(approval).lower()}"]
    for path in changed:
        args += ["--changed", path]
    for key, value in (env or {}).items():
        args += ["--env", f"{key}={value}"]
    answer = dry_run_raw(*args)
    assert answer.returncode == 0, answer.stderr
    return json.loads(answer.stdout)


def targets_run(plan: dict) -> list[str]:
    """The make targets of the stages that run, in order."""
    running = [stage for stage in plan["stages"] if stage["runs"]]
    return [target for stage in running for step in stage["steps"] for target in make_targets(step)]


def makefile_targets() -> set[str]:
    """Every target make knows (its database, `make -pn`), minus the 'Not a target' entries."""
    answer = subprocess.run(["make", "-pn", "-C", str(ROOT), "help"], capture_output=True, text=True,
                            timeout=60)
    lines = answer.stdout.splitlines()
    targets = set()
    for previous, line in zip(["", *lines], lines, strict=False):
        match = re.match(r"^([A-Za-z0-9][\w.-]*):(?!=)", line)
        if match and previous != "# Not a target:":
            targets.add(match.group(1))
    return targets


@pytest.fixture(scope="module")
def plans():
    """Dry runs for the cases the tests compare (groovy starts slowly: run each once)."""
    cases = {
        "model": {"changed": ["model/train.py"]},
        "service": {"changed": ["service/app.py"]},
        "docs": {"changed": ["README.md"]},
        "first": {},
        "feature": {"branch": "feature/x", "changed": ["model/train.py", "docker/Dockerfile"]},
        "manual": {"pipeline": "deploy", "changed": ["model/train.py"], "approval": True},
        "approval": {"pipeline": "train", "approval": True},
        "nightly": {"causes": ["TimerTrigger"]},
        "infra": {"changed": ["infra/stack.yaml"]},
        "infra-branch": {"branch": "feature/vpc", "changed": ["infra/stack.yaml"]},
        "e2e": {"pipeline": "e2e", "changed": ["model/train.py"]},
        "ecs": {"changed": ["model/train.py"], "params": {"TRAIN_ON": "ecs"}},
        "ecs-branch": {"branch": "feature/x", "changed": ["model/train.py"], "params": {"TRAIN_ON": "ecs"}},
        "weekly": {"pipeline": "train", "causes": ["ParameterizedTimerTriggerCause", "TimerTrigger"]},
        "monitor": {"pipeline": "monitor", "causes": ["ParameterizedTimerTriggerCause", "TimerTrigger"],
                    "params": {"TRAIN_ON": "ecs", "REQUIRE_APPROVAL": "true"},
                    "env": {"JOB_NAME": "ml/models"}},
        "monitor-branch": {"branch": "feature/x", "pipeline": "monitor"},
    }
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {name: pool.submit(dry_run, **kwargs) for name, kwargs in cases.items()}
        return {name: future.result() for name, future in futures.items()}


def test_a_broken_jenkinsfile_is_reported_as_invalid_groovy(tmp_path):
    broken = tmp_path / "Jenkinsfile"
    broken.write_text((ROOT / "Jenkinsfile").read_text().replace("stages {", "stages {{", 1))
    answer = dry_run_raw(jenkinsfile=broken)
    assert answer.returncode == 2
    assert "not valid Groovy" in answer.stderr
    assert "Exception" not in answer.stderr.replace("CompilationFailedException", "")


def test_unknown_parameter_values_are_refused():
    answer = dry_run_raw("--param", "PIPELINE=everything")
    assert answer.returncode == 2
    assert "PIPELINE must be one of auto, train, deploy" in answer.stderr


def test_a_model_change_runs_the_train_pipeline_in_order(plans):
    assert targets_run(plans["model"]) == TRAIN


def test_a_service_change_runs_the_deploy_pipeline_in_order(plans):
    assert targets_run(plans["service"]) == DEPLOY


def test_train_on_ecs_trains_gates_and_publishes_in_a_task_then_promotes_as_before(plans):
    # The task trains, gates and publishes; its version file feeds the same Promote and roll out.
    assert targets_run(plans["ecs"]) == ["test-fast", "train-task", "rollout-model"]
    # A branch publishes nothing, so it trains on the agent whatever TRAIN_ON says.
    assert targets_run(plans["ecs-branch"]) == ["test-fast", "train", "gate"]
    stage = next(s for s in plans["ecs"]["stages"] if s["name"] == "Train in ECS")
    assert "withCredentials([aws(credentialsId: aws-mlops)])" in stage["steps"][0]["within"]
    choices = {p["name"]: p.get("choices") for p in plans["ecs"]["parameters"]}
    assert choices["TRAIN_ON"] == ["agent", "ecs"]


def test_a_weekly_parameterized_timer_build_runs_the_train_pipeline(plans):
    # The Parameterized Scheduler takes all its schedules in one string, one `cron %NAME=value` a line.
    cron = next(t for t in plans["first"]["triggers"] if t["name"] == "parameterizedCron")
    assert cron["args"][0].splitlines() == ["H 4 * * 1 %PIPELINE=train", "H 5 * * * %PIPELINE=monitor"]
    # A timer build with PIPELINE=train trains (and runs no emulation), whether or not `triggeredBy
    # 'TimerTrigger'` also matches the Parameterized Scheduler's cause.
    assert targets_run(plans["weekly"]) == TRAIN


def test_other_changes_run_only_the_tests(plans):
    assert targets_run(plans["docs"]) == ["test-fast"]


def test_an_infra_change_plans_everywhere_and_executes_only_on_main_after_approval(plans):
    assert targets_run(plans["infra"]) == INFRA
    running = [stage["name"] for stage in plans["infra"]["stages"] if stage["runs"]]
    assert running.index("Approve change set") == running.index("Change set") + 1
    assert running.index("Execute change set") == running.index("Approve change set") + 1
    assert targets_run(plans["infra-branch"]) == ["test-fast", "stack-lint", "stack-plan"]
    for case in ("model", "service", "first", "nightly"):  # the stack changes only when infra/ does
        assert not {"stack-plan", "stack-deploy"} & set(targets_run(plans[case])), case


def test_the_end_to_end_emulation_runs_nightly_or_by_hand_and_never_with_a_release(plans):
    # A timer build knows no changes either, but it only runs the emulation: nothing is released.
    assert targets_run(plans["nightly"]) == ["test-fast", "test-e2e"]
    assert targets_run(plans["e2e"]) == ["test-fast", "test-e2e"]
    for case in ("model", "service", "first", "manual"):
        assert "test-e2e" not in targets_run(plans[case])


def test_an_empty_changeset_runs_both_pipelines(plans):
    # A branch's first build (or a plain "Build now") knows no changes: nothing can be skipped safely.
    assert targets_run(plans["first"]) == TRAIN + DEPLOY[1:]


def test_only_main_publishes_promotes_pushes_or_deploys(plans):
    assert targets_run(plans["feature"]) == ["test-fast", "train", "gate", "image", "smoke"]
    for stage in plans["first"]["stages"]:
        if any(t in ("publish", "promote", "rollout-model", "push", "deploy", "stack-deploy", "stack-smoke",
                     "train-task") for step in stage["steps"] for t in make_targets(step)):
            assert any(w == "branch 'main'" or w.startswith("allOf { branch 'main';")
                       for w in stage["when"]), stage["name"]


def test_the_parameter_overrides_the_changeset_and_approval_is_asked(plans):
    assert targets_run(plans["manual"]) == DEPLOY
    with_approval = plans["approval"]
    names = [s["name"] for s in with_approval["stages"] if s["runs"]]
    assert names.index("Publish") < names.index("Approve") < names.index("Promote and roll out")
    approve = next(s for s in with_approval["stages"] if s["name"] == "Approve")
    assert approve["steps"] == [{"input": approve["steps"][0]["input"], "ok": "Promote",
                                 "within": ["timeout(time: 24, unit: HOURS)"]}]
    assert not next(s for s in plans["model"]["stages"] if s["name"] == "Approve")["runs"]


def test_the_branch_comes_from_the_gitlab_trigger_in_a_pipeline_job():
    plan = dry_run(branch="", pipeline="train", env={"gitlabSourceBranch": "main", "GIT_COMMIT": "abc123"})
    assert "publish" in targets_run(plan)
    assert plan["environment"]["IMAGE_TAG"] == "abc123"
    merge_request = dry_run(branch="", pipeline="train", env={"gitlabSourceBranch": "fix/x"})
    assert "publish" not in targets_run(merge_request)


def test_the_alias_only_moves_together_with_the_rollout(plans):
    # A separate Promote stage before the rollout would leave the alias moved when the rollout fails.
    stages = [s for s in plans["first"]["stages"] if s["runs"]]
    calls = {s["name"]: [t for step in s["steps"] for t in make_targets(step)] for s in stages}
    assert "promote" not in [t for targets in calls.values() for t in targets]
    assert calls["Promote and roll out"] == ["rollout-model"]
    recipe = subprocess.run(["make", "-n", "-C", str(ROOT), "rollout-model", "MODEL_STORE=s3://b/p",
                             "CANDIDATE=build/nowhere"], capture_output=True, text=True, timeout=60).stdout
    assert 'scripts/rollout ecs --promote "$version"' in recipe


def test_every_stage_is_one_make_target_that_exists(plans):
    known = makefile_targets()
    assert {"test", "train", "gate", "publish", "promote"} <= known  # the parser reads the Makefile
    for stage in plans["first"]["stages"]:
        commands = [step for step in stage["steps"] if "sh" in step]
        if stage["name"].startswith("Approve") or stage["name"] == "Retrain on drift":
            assert commands == []  # an input step; Jenkins' build step
            continue
        assert len(commands) == 1, stage["name"]
        targets = make_targets(commands[0])
        assert len(targets) == 1, commands[0]
        assert targets[0] in known, f"stage {stage['name']!r} calls a missing target: make {targets[0]}"


def test_no_secret_can_be_interpolated_into_a_shell_command(plans):
    steps = [step for stage in plans["first"]["stages"] for step in stage["steps"] if "sh" in step]
    assert steps and not any(step["interpolated"] for step in steps)
    aws_stages = [s for s in plans["first"]["stages"]
                  if any(t in ("gate", "publish", "promote", "rollout-model", "push", "deploy")
                         for step in s["steps"] for t in make_targets(step))]
    infra_stages = [s for s in plans["infra"]["stages"]
                    if {"stack-plan", "stack-deploy", "stack-smoke"} & {t for step in s["steps"]
                                                                        for t in make_targets(step)}]
    assert len(infra_stages) == 3
    for stage in infra_stages:  # CloudFormation needs more than the deployer policy: its own credentials
        assert any(w.startswith("withCredentials([aws(credentialsId: aws-mlops-infra)])")
                   for step in stage["steps"] for w in step.get("within", [])), stage["name"]
    for stage in aws_stages:
        assert any(w.startswith("withCredentials([aws(credentialsId: aws-mlops)])")
                   for w in stage["steps"][0]["within"]), stage["name"]


def test_gitlab_trigger_status_options_and_reports(plans):
    plan = plans["first"]
    trigger = plan["triggers"][0]
    assert trigger["name"] == "gitlab"
    assert {"triggerOnPush": True, "triggerOnMergeRequest": True, "branchFilterType": "All"}.items() \
        <= trigger["args"][0].items()
    # The webhook token comes from a Jenkins credential, never from a plain environment variable.
    assert trigger["args"][0]["secretToken"] == "<credentials gitlab-webhook-secret>"
    options = {o["name"]: o["args"] for o in plan["options"]}
    assert options["gitLabConnection"] == ["gitlab"]
    assert {"timestamps", "disableConcurrentBuilds", "timeout", "buildDiscarder"} <= options.keys()
    choices = {p["name"]: p.get("choices") for p in plan["parameters"]}
    assert choices["PIPELINE"] == ["auto", "train", "deploy", "infra", "e2e", "monitor"]
    assert {"name": "cron", "args": ["H 3 * * *"]} in plan["triggers"]
    for stage in plan["stages"]:
        # A monitor build checks the production model, not the commit it happens to check out.
        if not stage["name"].startswith("Approve") and stage["name"] not in MONITOR:
            assert f"gitlabCommitStatus(name: {stage['name']})" in stage["steps"][0]["within"]
    always = {step["step"]: step["args"][0] for step in plan["post"]["always"]}
    assert always["junit"]["testResults"] == "reports/*.xml"
    assert "build/candidate/manifest.json" in always["archiveArtifacts"]["artifacts"]
    assert plan["post"]["failure"][0]["args"][0] == {"name": "build", "state": "failed"}


def stage(plan: dict, name: str) -> dict:
    return next(s for s in plan["stages"] if s["name"] == name)


def test_a_monitor_build_runs_the_monitor_and_decides_the_retrain_from_its_output(plans):
    plan = plans["monitor"]
    # No Test (nothing of the checkout ships), no train/deploy/infra stages, no emulation although
    # the daily build is a timer build: only Monitor, and Retrain on drift decided when it starts.
    assert [s["name"] for s in plan["stages"] if s["runs"] or s.get("deferred")] == MONITOR
    assert targets_run(plan) == ["monitor-check"]
    monitor = stage(plan, "Monitor")
    assert monitor["steps"] == [{"sh": "make monitor-check", "interpolated": False,
                                 "within": ["withCredentials([aws(credentialsId: aws-mlops)])"]}]
    assert monitor["post"]["always"] == [{"step": "archiveArtifacts", "args": [
        {"artifacts": "build/monitor/**", "allowEmptyArchive": True}]}]
    retrain = stage(plan, "Retrain on drift")
    # fileExists reads what Monitor writes: unknown before the build, so no dry run may decide it.
    assert retrain["deferred"] is True and retrain["runs"] is False
    assert "expression { fileExists('build/monitor/retrain') }" in retrain["when"][0]
    (build,) = retrain["steps"]
    assert build["build"] == "ml/models" and build["wait"] is False
    assert {p["name"]: p["value"] for p in build["parameters"]} == {
        "PIPELINE": "train", "TRAIN_DATASET": "<readFile build/monitor/retrain>", "TRAIN_MODEL": "",
        "TRAIN_ON": "ecs", "REQUIRE_APPROVAL": True}
    # Other builds never run the monitor stages, and monitor is not a pipeline `auto` picks.
    for case in ("model", "service", "first", "nightly", "weekly", "e2e", "infra"):
        assert not [s["name"] for s in plans[case]["stages"]
                    if s["name"] in MONITOR and (s["runs"] or s.get("deferred"))], case


def test_retrain_on_drift_runs_with_the_dataset_the_monitor_wrote(tmp_path, plans):
    (tmp_path / "build" / "monitor").mkdir(parents=True)
    no_drift = dry_run(pipeline="monitor", workspace=tmp_path)
    retrain = stage(no_drift, "Retrain on drift")
    assert retrain["runs"] is False and "deferred" not in retrain  # decided: no request, no retrain

    (tmp_path / "build" / "monitor" / "retrain").write_text("s3://models/data/digits/2026-12-01.csv\n")
    drift = dry_run(pipeline="monitor", workspace=tmp_path, env={"JOB_NAME": "ml/models"})
    retrain = stage(drift, "Retrain on drift")
    assert retrain["runs"] is True
    values = {p["name"]: p["value"] for p in retrain["steps"][0]["parameters"]}
    assert values["TRAIN_DATASET"] == "s3://models/data/digits/2026-12-01.csv"  # trimmed
    assert values["PIPELINE"] == "train" and values["REQUIRE_APPROVAL"] is False

    # The queued build: a plain train build with that dataset, through Test, the gate and the rollout.
    train = dry_run(params={"PIPELINE": "train", "TRAIN_DATASET": values["TRAIN_DATASET"]})
    assert targets_run(train) == TRAIN
    assert train["params"]["TRAIN_DATASET"] == values["TRAIN_DATASET"]
    # A branch retrains nothing: only main publishes, so only main closes the loop.
    branch = dry_run(branch="feature/x", pipeline="monitor", workspace=tmp_path)
    assert [s["name"] for s in branch["stages"] if s["runs"]] == ["Monitor"]
    assert not stage(plans["monitor-branch"], "Retrain on drift").get("deferred")


def test_train_reads_its_data_with_the_aws_credentials(plans):
    # TRAIN_DATASET (or the plan) may name an s3:// CSV: Train binds the same credentials as the gate.
    train = stage(plans["model"], "Train")
    assert "withCredentials([aws(credentialsId: aws-mlops)])" in train["steps"][0]["within"]
    declared = {p["name"]: p for p in plans["first"]["parameters"]}
    assert declared["TRAIN_DATASET"] == {"name": "TRAIN_DATASET", "type": "string", "default": ""}


def test_the_dry_run_checks_what_a_build_step_passes_to_this_job(tmp_path):
    text = (ROOT / "Jenkinsfile").read_text()
    typo = tmp_path / "Jenkinsfile"
    typo.write_text(text.replace("string(name: 'TRAIN_DATASET', value:",
                                 "string(name: 'TRAIN_DATA', value:", 1))
    answer = dry_run_raw("--env", "JOB_NAME=ml", jenkinsfile=typo)
    assert answer.returncode == 2
    assert "dryrun: build: this job has no parameter TRAIN_DATA" in answer.stderr
    bad_choice = tmp_path / "Jenkinsfile"
    bad_choice.write_text(text.replace("string(name: 'PIPELINE', value: 'train')",
                                       "string(name: 'PIPELINE', value: 'retrain')", 1))
    answer = dry_run_raw("--env", "JOB_NAME=ml", jenkinsfile=bad_choice)
    assert "dryrun: build: PIPELINE must be one of auto, train" in answer.stderr
    answer = dry_run_raw("--workspace", str(tmp_path / "missing"))
    assert answer.returncode == 2 and "--workspace: no such folder" in answer.stderr


def test_the_train_targets_pass_the_dataset_through_the_environment():
    def recipe(target: str, *variables: str) -> str:
        answer = subprocess.run(["make", "-n", "-C", str(ROOT), target, *variables], capture_output=True,
                                text=True, timeout=60)
        assert answer.returncode == 0, answer.stderr
        return answer.stdout

    assert "--dataset" not in recipe("train")
    # The shell reads the parameter's value: a dataset name is never pasted into the command line.
    assert '--dataset "$TRAIN_DATASET"' in recipe("train", "TRAIN_DATASET=s3://b/data/digits/a b.csv")
    assert '--dataset "$TRAIN_DATASET"' in recipe("train-task", "TRAIN_DATASET=s3://b/k.csv")
    check = recipe("monitor-check", "MONITOR_ARGS=--name churn")
    assert "-m deploy.drift_check -- --since 24h --report build/monitor/report.html " \
           "--json build/monitor/drift.json --name churn" in check
    assert "-m model monitor --since 2h --report build/monitor/report.html --json build/monitor/drift.json" \
        in recipe("monitor", "MONITOR_SINCE=2h")
