"""Reading the store: `list` (every model's versions by default, one model's with --name or
$MODEL_NAME) and `show` (the newest version when the alias is unset)."""

from __future__ import annotations

import json
import os

from helpers import cli_fails, cli_ok, run_cli


def _env(**extra: str) -> dict:
    # conftest removed MODEL_NAME and MODEL_STORE from the environment; a test sets what it means.
    return {**os.environ, **extra}


def test_without_a_name_every_models_versions_are_listed_grouped_by_model(two_models):
    out = cli_ok(run_cli("list", "--store", two_models["uri"], env=_env()))
    title, header, *rows = out.splitlines()
    assert title.startswith("every model in ")
    assert header.split() == ["MODEL", "VERSION", "CREATED", "METRICS", "ALIASES"]
    # Grouped by model (names in order), each model's versions newest first.
    assert [row.split()[:2] for row in rows] == [
        ["digits", two_models["digits"][0]],
        ["digits", two_models["digits"][1]],
        ["iris", two_models["iris"][0]],
    ]
    assert rows[1].endswith("production") and not rows[0].endswith("production")
    assert "accuracy=" in rows[2]


def test_json_names_the_model_of_every_version(two_models):
    listed = json.loads(cli_ok(run_cli("list", "--json", "--store", two_models["uri"], env=_env())))
    assert listed["name"] is None
    assert [(row["model"], row["version"]) for row in listed["versions"]] == [
        ("digits", two_models["digits"][0]),
        ("digits", two_models["digits"][1]),
        ("iris", two_models["iris"][0]),
    ]
    assert listed["versions"][1]["aliases"] == ["production"]
    assert listed["versions"][2]["metrics"]["accuracy"] > 0.5


def test_a_name_narrows_the_list_to_one_model(two_models):
    by_flag = cli_ok(run_cli("list", "--store", two_models["uri"], "--name", "iris", env=_env()))
    by_env = cli_ok(run_cli("list", "--store", two_models["uri"], env=_env(MODEL_NAME="iris")))
    assert by_flag == by_env
    title, _header, *rows = by_flag.splitlines()
    assert title.startswith("iris in ")
    assert [row.split()[:2] for row in rows] == [["iris", two_models["iris"][0]]]
    # The flag wins over the variable.
    listed = json.loads(
        cli_ok(
            run_cli(
                "list",
                "--json",
                "--store",
                two_models["uri"],
                "--name",
                "digits",
                env=_env(MODEL_NAME="iris"),
            )
        )
    )
    assert listed["name"] == "digits"
    assert [row["version"] for row in listed["versions"]] == two_models["digits"]


def test_an_unknown_name_is_not_found_with_the_closest_name(two_models):
    cli_fails(
        run_cli("list", "--store", two_models["uri"], "--name", "digit", env=_env()),
        4,
        "model 'digit' has no versions in",
    )
    line = cli_fails(
        run_cli("list", "--store", two_models["uri"], env=_env(MODEL_NAME="iriss")), 4, "did you mean 'iris'?"
    )
    assert "iriss" in line
    cli_fails(
        run_cli("list", "--store", two_models["uri"], "--name", "zzz", env=_env()),
        4,
        "(models there: digits, iris)",
    )


def test_an_empty_store_lists_no_models(store_uri):
    assert cli_ok(run_cli("list", "--store", store_uri, env=_env())).startswith("no models in ")
    assert json.loads(cli_ok(run_cli("list", "--json", "--store", store_uri, env=_env())))["versions"] == []


def test_show_falls_back_to_the_newest_version_when_the_alias_is_unset(two_models):
    # digits has two versions; `staging` was never set, and `production` names the older one.
    newest, older = two_models["digits"]
    shown = run_cli(
        "show", "--store", two_models["uri"], "--name", "digits", "--alias", "staging", env=_env()
    )
    assert json.loads(cli_ok(shown))["version"] == newest
    assert shown.stderr.strip() == (
        f"note: alias 'staging' of digits is not set; showing the newest version, {newest}"
    )
    # A set alias is shown as it is, without a note.
    production = run_cli("show", "--store", two_models["uri"], "--name", "digits", env=_env())
    assert json.loads(cli_ok(production))["version"] == older and production.stderr == ""
    # A pinned version has no fallback: a missing one is not found.
    cli_fails(
        run_cli(
            "show",
            "--store",
            two_models["uri"],
            "--name",
            "digits",
            "--version",
            "20000101T000000Z-00000000",
            env=_env(),
        ),
        4,
        "version '20000101T000000Z-00000000' of model 'digits' not found",
    )
