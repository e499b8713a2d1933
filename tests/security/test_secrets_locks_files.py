"""Passwords never shown, lock files nobody else can plant, files nobody else can read
(issue 10, item 8)."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner

from mlcycle.cli import cli
from mlcycle.errors import ConfigError
from mlcycle.redact import RedactingFilter, redact_text, redact_uri
from mlcycle.register import lock
from mlcycle.storage import lock_dir, private_dir

PW = "Sup3r-secret"


@pytest.mark.parametrize(
    ("uri", "shown"),
    [
        (f"postgresql+psycopg2://postgres:{PW}@127.0.0.1:5432/test", "postgres:***@127.0.0.1"),
        (f"postgresql://u:{PW}%40x@h/db?sslmode=require", "u:***@h/db?sslmode=require"),
        (f"postgresql+psycopg2://u:{PW}@with-at@h:5432/db", "u:***@h:5432/db"),
        (f"http://admin:{PW}@127.0.0.1:5000", "http://admin:***@127.0.0.1:5000"),
        (f"https://admin:{PW}@mlflow.example/path?q=1", "admin:***@mlflow.example/path?q=1"),
    ],
)
def test_one_masker_hides_every_password(uri: str, shown: str) -> None:
    out = redact_uri(uri)
    assert PW not in out
    assert "with-at" not in out
    assert shown in out
    assert PW not in redact_text(f"MLFLOW_TRACKING_URI={uri} failed.")


def test_uris_without_password_are_unchanged() -> None:
    for uri in ("sqlite:///mlflow.db", "http://127.0.0.1:5000", "s3://bucket/key", "./x"):
        assert redact_uri(uri) == uri


def test_the_old_maskers_are_the_one_masker() -> None:
    from mlcycle.stack import redact_uri as stack_redact
    from mlcycle.train.search import masked

    uri = f"postgresql+psycopg2://u:{PW}@h/db"
    assert stack_redact(uri) == masked(uri) == redact_uri(uri)


def test_log_records_are_masked_by_the_cli_filter() -> None:
    record = logging.LogRecord(
        "mlflow", logging.WARNING, __file__, 1, "store %s down", (f"http://a:{PW}@h",), None
    )
    assert RedactingFilter().filter(record)
    assert PW not in record.getMessage()
    assert "http://a:***@h" in record.getMessage()


@pytest.mark.postgres
def test_train_on_a_postgres_uri_prints_no_password(
    pg_url: str, scenario_csv: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import sqlalchemy as sa

    from testkit import PG_ADMIN_URL

    role = f"mlc_mask_{os.getpid()}"
    dbname = pg_url.rsplit("/", 1)[1]
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f"DROP ROLE IF EXISTS {role}"))
        conn.execute(sa.text(f"CREATE ROLE {role} LOGIN PASSWORD '{PW}'"))
        conn.execute(sa.text(f'ALTER DATABASE "{dbname}" OWNER TO {role}'))
    try:
        uri = f"postgresql+psycopg2://{role}:{PW}@127.0.0.1:5432/{dbname}"
        monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
        monkeypatch.setenv("MLCYCLE_ARTIFACT_ROOT", str(tmp_path / "art"))
        res = CliRunner().invoke(
            cli,
            ["train", "--data", str(scenario_csv), "--target", "churned", "--model", "linear"],
        )
        assert res.exit_code == 0, res.output
        assert "ui " in res.output
        assert f"{role}:***@127.0.0.1" in res.output
        assert PW not in res.output
    finally:
        owned = sa.create_engine(pg_url, isolation_level="AUTOCOMMIT")
        with owned.connect() as conn:
            conn.execute(sa.text(f"REASSIGN OWNED BY {role} TO postgres"))
        owned.dispose()
        with admin.connect() as conn:
            conn.execute(sa.text(f"DROP ROLE {role}"))
        admin.dispose()


def test_the_lock_warning_masks_the_tracking_password(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="mlcycle.register.lock"):
        path = lock._lock_path(f"http://admin:{PW}@127.0.0.1:5000", "churn")
    assert "cannot be locked across machines" in caplog.text
    assert PW not in caplog.text
    assert "admin:***@127.0.0.1:5000" in caplog.text
    assert not str(path).startswith("/tmp/mlcycle-registry")


def test_lock_files_live_in_a_private_per_user_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    path = lock._lock_path("http://127.0.0.1:5000", "churn")
    assert path.parent == tmp_path / "mlcycle"
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    with lock._file_lock(path):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    monkeypatch.delenv("XDG_RUNTIME_DIR")
    fallback = lock_dir()
    assert fallback.name == f"mlcycle-{os.getuid()}"
    assert stat.S_IMODE(fallback.stat().st_mode) == 0o700


def test_a_sqlite_lock_sits_beside_the_store(tmp_path: Path) -> None:
    path = lock._lock_path(f"sqlite:///{tmp_path}/mlflow.db", "churn")
    assert path.parent == tmp_path


def test_a_pre_created_shared_lock_dir_is_made_private_or_refused(tmp_path: Path) -> None:
    shared = tmp_path / "planted"
    shared.mkdir(mode=0o777)
    shared.chmod(0o777)
    assert stat.S_IMODE(private_dir(shared).stat().st_mode) == 0o700
    link = tmp_path / "link"
    link.symlink_to(shared)
    with pytest.raises(ConfigError, match="not a directory owned by this user"):
        private_dir(link)


def test_files_the_cli_creates_are_owner_only(scenario_csv: Path, tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        res = CliRunner().invoke(
            cli,
            ["train", "--data", str(scenario_csv), "--target", "churned", "--model", "linear"],
        )
        assert res.exit_code == 0, res.output
        db = tmp_path / "mlflow.db"
        assert stat.S_IMODE(db.stat().st_mode) & 0o077 == 0
        artifacts = [p for p in (tmp_path / "mlartifacts").rglob("*")]
        assert artifacts
        assert all(stat.S_IMODE(p.stat().st_mode) & 0o077 == 0 for p in artifacts)
    finally:
        os.umask(old)


def test_the_umask_is_configurable(
    scenario_csv: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = os.umask(0o077)
    monkeypatch.setenv("MLCYCLE_UMASK", "022")
    try:
        res = CliRunner().invoke(
            cli,
            ["train", "--data", str(scenario_csv), "--target", "churned", "--model", "linear"],
        )
        assert res.exit_code == 0, res.output
        assert stat.S_IMODE((tmp_path / "mlflow.db").stat().st_mode) & 0o044 == 0o044
        monkeypatch.setenv("MLCYCLE_UMASK", "999")
        bad = CliRunner().invoke(cli, ["history", "churn"])
        assert bad.exit_code == 1
        assert "umask" in bad.output.lower()
    finally:
        os.umask(old)
