"""The GitHub Actions workflows read as YAML: every expression names a step, job, output or
input that exists where it is used, and every mlcycle command in a script is a real one."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import click
import pytest
import yaml

from mlcycle.cli import cli

WORKFLOWS = Path(__file__).resolve().parents[2] / ".github" / "workflows"
EXPR = re.compile(r"\$\{\{(.*?)\}\}", re.S)
STEP_REF = re.compile(r"\bsteps\.([A-Za-z_][\w-]*)\.(outputs\.([\w-]+)|outcome|conclusion)")
NEEDS_REF = re.compile(r"\bneeds\.([A-Za-z_][\w-]*)\.(outputs\.([\w-]+)|result)")
INPUT_REF = re.compile(r"\b(?:github\.event\.)?inputs\.([\w-]+)")
EVENT_CMP = re.compile(r"github\.event_name\s*[!=]=\s*'([\w-]+)'")
# Contexts a job-level `if`/`env` may use (GitHub's context availability table).
JOB_LEVEL_CONTEXTS = {"github", "needs", "strategy", "matrix", "vars", "secrets", "inputs"}


def _load(name: str) -> dict[str, Any]:
    doc = yaml.safe_load((WORKFLOWS / name).read_text())
    doc["on"] = doc.pop(True, doc.get("on"))  # YAML 1.1 reads the key `on` as True
    return doc


def _exprs(value: Any) -> list[str]:
    """Every expression in a value: ``${{ … }}`` parts of strings, or a bare ``if``."""
    if isinstance(value, dict):
        return [e for v in value.values() for e in _exprs(v)]
    if isinstance(value, list):
        return [e for v in value for e in _exprs(v)]
    if isinstance(value, str):
        return EXPR.findall(value)
    return []


def _if(value: Any) -> str:
    text = str(value)
    found = EXPR.findall(text)
    return found[0] if found else text  # `if:` may omit ${{ }}


def _outputs_written(run: str) -> set[str]:
    """Names a script writes to $GITHUB_OUTPUT (echo "x=…" or print("x=…"))."""
    return set(re.findall(r"""["'(]([\w-]+)=""", run)) if "GITHUB_OUTPUT" in run else set()


def _check_workflow(doc: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    on = doc["on"]
    triggers = set(on) if isinstance(on, dict | list) else {on}
    dispatch = on.get("workflow_dispatch") if isinstance(on, dict) else None
    inputs = set((dispatch or {}).get("inputs") or {})
    jobs = doc["jobs"]
    job_outputs: dict[str, set[str]] = {}

    for job_id, job in jobs.items():
        needs = job.get("needs") or []
        needs = [needs] if isinstance(needs, str) else list(needs)
        for n in needs:
            if n not in jobs:
                problems.append(f"{job_id}: needs unknown job {n}")
        seen: dict[str, set[str]] = {}

        def check(
            expr: str, where: str, steps_so_far: dict[str, set[str]], needs: list[str] = needs
        ) -> None:
            for sid, _, out in STEP_REF.findall(expr):
                if sid not in steps_so_far:
                    problems.append(f"{where}: steps.{sid} is not an earlier step id")
                elif out and out not in steps_so_far[sid]:
                    problems.append(f"{where}: step {sid} never writes output {out}")
            for jid, _, out in NEEDS_REF.findall(expr):
                if jid not in needs:
                    problems.append(f"{where}: needs.{jid} but the job does not need it")
                elif out and out not in job_outputs.get(jid, set()):
                    problems.append(f"{where}: job {jid} declares no output {out}")
            for name in INPUT_REF.findall(expr):
                if name not in inputs:
                    problems.append(f"{where}: inputs.{name} is not a workflow_dispatch input")
            for event in EVENT_CMP.findall(expr):
                if event not in triggers:
                    problems.append(f"{where}: compares with '{event}', not a trigger")

        for expr in [*([_if(job["if"])] if "if" in job else []), *_exprs(job.get("env", {}))]:
            check(expr, f"{job_id}.if/env", {})
            used = set(re.findall(r"\b([a-z_]+)\.", expr)) & {
                "github", "needs", "strategy", "matrix", "vars", "secrets", "inputs",
                "job", "runner", "steps", "env",
            }  # fmt: skip
            if used - JOB_LEVEL_CONTEXTS:
                problems.append(f"{job_id}: job-level context {used - JOB_LEVEL_CONTEXTS}")
        for i, step in enumerate(job.get("steps", [])):
            where = f"{job_id}.steps[{i}]({step.get('id') or step.get('name', '')})"
            exprs = _exprs({k: v for k, v in step.items() if k != "if"})
            if "if" in step:
                exprs.append(_if(step["if"]))
            for expr in exprs:
                check(expr, where, seen)
            if "id" in step:
                seen[step["id"]] = _outputs_written(step.get("run", ""))
        for name, value in (job.get("outputs") or {}).items():
            for expr in _exprs(value):
                check(expr, f"{job_id}.outputs.{name}", seen)
        job_outputs[job_id] = set(job.get("outputs") or {})
    return problems


def _mlcycle_lines(doc: dict[str, Any]) -> list[list[str]]:
    out = []
    for job in doc["jobs"].values():
        for step in job.get("steps", []):
            script = step.get("run", "").replace("\\\n", " ")
            for line in script.splitlines():
                line = line.strip()
                if line.startswith("if "):
                    line = line[3:].split(";")[0].strip()
                if line.startswith("mlcycle "):
                    line = re.sub(r"\$\{(\w+):\+[^}]*\}", "", line)  # ${VAR:+--flag "$VAR"}
                    out.append(shlex.split(line.split(">")[0]))
    return out


@pytest.mark.parametrize("name", ["ci.yml", "lifecycle.yml"])
def test_every_expression_names_steps_jobs_outputs_and_inputs_that_exist(name: str) -> None:
    assert _check_workflow(_load(name)) == []


def test_the_checker_catches_a_misspelt_step_output_and_an_unknown_step() -> None:
    doc = _load("lifecycle.yml")
    steps = doc["jobs"]["train"]["steps"]
    promote = next(s for s in steps if s.get("id") == "promote")
    promote["if"] = "${{ steps.gate.outputs.pass == 'true' && steps.nope.outcome == 'success' }}"
    problems = _check_workflow(doc)
    assert any("never writes output pass" in p for p in problems)
    assert any("steps.nope" in p for p in problems)


def test_lifecycle_runs_by_hand_and_on_a_schedule_with_secrets_from_the_repository() -> None:
    doc = _load("lifecycle.yml")
    assert set(doc["on"]) == {"workflow_dispatch", "schedule"}
    assert doc["on"]["schedule"][0]["cron"]
    for key in ("MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        assert doc["env"][key] == f"${{{{ secrets.{key} }}}}"
    assert doc["permissions"] == {"contents": "read"}
    train_ids = [s.get("id") for s in doc["jobs"]["train"]["steps"]]
    assert train_ids.index("train") < train_ids.index("gate") < train_ids.index("promote")
    assert doc["jobs"]["monitor"]["needs"] == "train"


def test_every_mlcycle_command_in_the_workflows_is_a_real_invocation() -> None:
    lines = _mlcycle_lines(_load("lifecycle.yml"))
    assert {argv[1] for argv in lines} == {"train", "gate", "promote", "monitor"}
    for argv in lines:
        sub = cli.get_command(click.Context(cli), argv[1])
        assert sub is not None, argv
        with sub.make_context(argv[1], argv[2:]) as ctx:  # raises on an unknown option
            assert ctx.params


def test_ci_runs_the_readme_test_command_with_postgres_and_can_stop_it_for_fault_tests() -> None:
    doc = _load("ci.yml")
    test = doc["jobs"]["test"]
    assert "postgres" in test["services"]
    runs = [s for s in test["steps"] if s.get("run") == "bash .ci/run"]
    assert runs and "job.services.postgres.id" in runs[0]["env"]["MLCYCLE_TEST_PG_CONTROL"]


@pytest.mark.parametrize("name", ["ci.yml", "lifecycle.yml"])
def test_every_job_has_a_timeout(name: str) -> None:
    jobs = _load(name)["jobs"]
    assert [j for j, job in jobs.items() if "timeout-minutes" not in job] == []
    assert all(0 < int(job["timeout-minutes"]) <= 120 for job in jobs.values())


@pytest.mark.parametrize("name", ["ci.yml", "lifecycle.yml"])
def test_no_script_uses_and_or_as_if_then_else(name: str) -> None:
    # shellcheck SC2015: in `A && B || C`, C also runs when B fails.
    runs = [s.get("run", "") for job in _load(name)["jobs"].values() for s in job["steps"]]
    assert [r for r in runs if re.search(r"&&[^\n|]*\|\|", r)] == []


def test_ci_runs_the_suite_on_three_pythons_and_the_core_suite_on_macos_and_windows() -> None:
    jobs = _load("ci.yml")["jobs"]
    assert jobs["test"]["strategy"]["matrix"]["python"] == ["3.11", "3.12", "3.13"]
    core = jobs["core"]
    assert set(core["strategy"]["matrix"]["os"]) == {"macos-latest", "windows-latest"}
    assert core["env"]["CI"] == "true"
    pytest_run = next(s["run"] for s in core["steps"] if "pytest" in s.get("run", ""))
    for marker in ("postgres", "s3", "browser", "pg_outage"):
        assert f"not {marker}" in pytest_run
