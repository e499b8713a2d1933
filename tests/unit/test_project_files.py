"""The project files users run (MLproject, env files, README, CLI docs) stay true to the CLI."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
import pytest
import yaml

from mlcycle.cli import cli

ROOT = Path(__file__).resolve().parents[2]


def _project() -> dict:
    return yaml.safe_load((ROOT / "MLproject").read_text())


def _parse(args: list[str]) -> click.Context:
    """Resolve a command line with the real CLI's parser (raises on unknown options)."""
    assert args[0] == "mlcycle"
    name, rest = args[1], args[2:]
    command = cli.commands[name]
    return command.make_context(name, rest, resilient_parsing=False)


@pytest.mark.parametrize(
    "entry", sorted(yaml.safe_load((ROOT / "MLproject").read_text())["entry_points"])
)
def test_every_mlproject_entry_point_is_a_valid_mlcycle_command_line(entry: str) -> None:
    spec = _project()["entry_points"][entry]
    values = {}
    for key, param in spec.get("parameters", {}).items():
        default = param.get("default")
        values[key] = "x.csv" if default is None else str(default)
    command = spec["command"].format(**values)
    ctx = _parse(shlex.split(command))
    assert ctx.command.name == shlex.split(command)[1]


def test_the_train_entry_point_exposes_the_typed_parameters_of_the_issue() -> None:
    params = _project()["entry_points"]["train"]["parameters"]
    assert {"data", "target", "model", "trials", "seed", "register_as"} <= set(params)
    assert params["trials"]["type"] == "float" and params["data"]["type"] == "string"


def test_conda_and_python_env_describe_the_same_environment() -> None:
    py_env = yaml.safe_load((ROOT / "python_env.yaml").read_text())
    conda = yaml.safe_load((ROOT / "conda.yaml").read_text())
    pip_deps = next(d["pip"] for d in conda["dependencies"] if isinstance(d, dict))
    assert pip_deps == py_env["dependencies"]
    assert f"python={py_env['python']}" in conda["dependencies"]


def test_the_readme_shows_exactly_two_set_up_commands() -> None:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Set up", 1)[1].split("##", 1)[0]
    block = re.search(r"```bash\n(.*?)```", section, re.S)
    assert block is not None
    commands = [
        line.split("#")[0].strip()
        for line in block.group(1).splitlines()
        if line.split("#")[0].strip()
    ]
    assert commands == ["make demo", "make test"]


def test_ci_calls_the_readme_test_command() -> None:
    assert "make test" in (ROOT / ".ci" / "run").read_text()
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^test:", makefile, re.M) and re.search(r"^demo:", makefile, re.M)


def test_every_command_has_help_and_is_documented() -> None:
    docs = (ROOT / "docs" / "cli.md").read_text()
    for name, command in cli.commands.items():
        assert command.help, f"mlcycle {name} has no help text"
        assert f"mlcycle {name}" in docs, f"mlcycle {name} is missing from docs/cli.md"
        for param in command.params:
            if isinstance(param, click.Option) and not param.hidden:
                assert param.opts[-1] in docs or param.opts[0] in docs, (
                    f"{name} {param.opts} undocumented"
                )


def test_the_cli_reference_is_generated_from_the_current_cli() -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "cli_reference", ROOT / "scripts" / "cli_reference.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert (ROOT / "docs" / "cli.md").read_text() == module.render(), (
        "run python scripts/cli_reference.py"
    )


# What the embedded store and a stray `mlflow` call leave in the working directory.
CLUTTER = ("mlflow.db", "mlflow.db.mlcycle-3f2a.lock", "mlruns/0/meta.yaml", "demo-output/x.csv")


def test_make_clean_removes_the_stores_lock_files_and_mlruns(tmp_path: Path) -> None:
    import shutil
    import subprocess

    shutil.copy(ROOT / "Makefile", tmp_path / "Makefile")
    for rel in CLUTTER:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("x")
    keep = tmp_path / "data.csv"
    keep.write_text("x")
    subprocess.run(["make", "-s", "clean"], cwd=tmp_path, check=True, capture_output=True)
    left = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*"))
    assert left == ["Makefile", "data.csv"]


def test_git_ignores_the_stores_lock_files_and_mlruns(tmp_path: Path) -> None:
    import shutil
    import subprocess

    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    shutil.copy(ROOT / ".gitignore", tmp_path / ".gitignore")
    for rel in CLUTTER:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("x")
    (tmp_path / "data.csv").write_text("x")
    status = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=all"],
        cwd=tmp_path,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split("\n")
    assert sorted(line[3:] for line in status if line) == [".gitignore", "data.csv"]


def _tour_commands() -> list[str]:
    """The README's quick tour, one command per entry (continuations joined, comments cut)."""
    text = (ROOT / "README.md").read_text()
    block = text.split("## Quick tour", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    joined = re.sub(r"\\\n\s*", " ", block)
    out = []
    for line in joined.splitlines():
        cmd = line.split("  #", 1)[0].strip()
        if cmd:
            out.append(cmd)
    return out


def test_the_tour_waits_for_ready_sends_a_drifted_month_and_parses() -> None:
    from mlcycle.monitoring.drift import DriftConfig

    cmds = _tour_commands()
    first_call = next(i for i, c in enumerate(cmds) if "/invocations" in c)
    serve = next(i for i, c in enumerate(cmds) if c.startswith("mlcycle serve"))
    assert cmds[serve].endswith("&"), "the server blocks: the tour must not stop at it"
    wait = [i for i, c in enumerate(cmds) if "/ready" in c and "--retry" in c]
    assert wait and serve < wait[0] < first_call, cmds  # 503 while the model loads
    # The drifted month: enough rows for a verdict, posted as CSV, flushed before monitor.
    drift = next(c for c in cmds if c.startswith("mlcycle scenario") and "--period" in c)
    ctx = _parse(shlex.split(drift))
    assert ctx.params["period"] != "reference"
    assert ctx.params["rows"] >= DriftConfig().min_rows
    out = ctx.params["output"]
    post = next(c for c in cmds if f"@{out}" in c)
    assert "Content-Type: text/csv" in post and "/invocations" in post
    stop = next(i for i, c in enumerate(cmds) if c.startswith("kill"))
    monitor = next(i for i, c in enumerate(cmds) if c.startswith("mlcycle monitor"))
    assert cmds.index(post) < stop < monitor and "wait" in cmds[stop]
    for c in cmds:
        if c.startswith("mlcycle "):
            _parse(shlex.split(c.rstrip("&").strip()))  # raises on an unknown option


def test_the_readme_screenshots_exist_and_are_small() -> None:
    text = (ROOT / "README.md").read_text()
    images = re.findall(r"!\[[^\]]*\]\(([^)]+\.png)\)", text)
    assert {"docs/img/ui-runs.png", "docs/img/ui-registered-model.png"} <= set(images)
    for rel in images:
        path = ROOT / rel
        assert path.is_file(), rel
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", rel
        assert path.stat().st_size < 400_000, rel


def test_the_tour_activates_the_checkouts_venv_not_one_in_the_empty_directory() -> None:
    # The tour runs "in an empty directory": a relative `.venv` there does not exist.
    activate = next(c for c in _tour_commands() if c.endswith("/bin/activate"))
    path = activate.split()[-1]
    assert not path.startswith(".venv"), activate
