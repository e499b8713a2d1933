"""The tracking server's command, environment and auth config, as pure values."""

from __future__ import annotations

import stat

import pytest
from click.testing import CliRunner

from mlcycle.cli import cli
from mlcycle.config import load_settings
from mlcycle.errors import ConfigError
from mlcycle.stack import (
    ServerOptions,
    auth_config,
    check_admin_password,
    check_relative_path,
    check_store_uri,
    expand_hosts,
    redact_uri,
    server_command,
    server_env,
    server_options,
    upgrade_command,
    write_private,
)
from mlcycle.uris import check_model_uri, model_uri

GOOD = "Tr0ub4dor-horse-staple"
PG = "postgresql+psycopg2://mlflow:db-s3cret-pw@postgres:5432/mlflow"


def _opts(**kw: object) -> ServerOptions:
    base: dict[str, object] = {
        "backend_store_uri": "postgresql+psycopg2://postgres@127.0.0.1/x",
        "artifacts_destination": "s3://bucket/artifacts",
        "admin_password": GOOD,
    }
    base.update(kw)
    return ServerOptions(**base)  # type: ignore[arg-type]


def _flag(cmd: list[str], name: str) -> str:
    return cmd[cmd.index(name) + 1]


def test_server_command_turns_on_auth_proxied_artifacts_and_host_checks() -> None:
    cmd = server_command(_opts(port=5001, allowed_hosts=("mlflow",)))
    assert cmd[:2] == ["mlflow", "server"]
    assert _flag(cmd, "--app-name") == "basic-auth"
    assert "--serve-artifacts" in cmd
    assert _flag(cmd, "--artifacts-destination") == "s3://bucket/artifacts"
    assert _flag(cmd, "--allowed-hosts") == "mlflow,mlflow:*"
    assert "*" not in _flag(cmd, "--cors-allowed-origins").split(",")
    assert _flag(cmd, "--port") == "5001"
    assert _flag(cmd, "--backend-store-uri") == "postgresql+psycopg2://postgres@127.0.0.1/x"


def test_a_store_password_travels_in_the_environment_never_in_argv() -> None:
    opts = _opts(backend_store_uri=PG)
    cmd = server_command(opts, python="/usr/bin/python3")
    assert cmd[:3] == ["/usr/bin/python3", "-m", "mlflow"]
    assert not any("db-s3cret-pw" in part or GOOD in part for part in cmd)
    env = server_env(opts, "/tmp/x.ini")
    assert env["MLFLOW_BACKEND_STORE_URI"] == PG
    assert env["MLFLOW_AUTH_ADMIN_PASSWORD"] == GOOD
    assert env["MLFLOW_AUTH_CONFIG_PATH"] == "/tmp/x.ini"
    assert len(env["MLFLOW_FLASK_SERVER_SECRET_KEY"]) >= 32
    assert env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "false"


def test_options_repr_hides_the_admin_password() -> None:
    assert GOOD not in repr(_opts())


def test_auth_config_is_what_mlflow_reads_with_no_permissions_and_no_password(
    tmp_path, monkeypatch
) -> None:
    from mlflow.server.auth.config import read_auth_config

    uri = "postgresql+psycopg2://u:p%40ss@db/auth"
    text = auth_config(uri, "root", auth_cache_ttl=30)
    path = tmp_path / "auth.ini"
    path.write_text(text)
    monkeypatch.setenv("MLFLOW_AUTH_CONFIG_PATH", str(path))
    monkeypatch.delenv("MLFLOW_AUTH_ADMIN_PASSWORD", raising=False)
    cfg = read_auth_config()
    assert cfg.default_permission == "NO_PERMISSIONS"
    assert cfg.database_uri == uri
    assert cfg.admin_username == "root"
    assert cfg.admin_password is None
    assert cfg.auth_cache_ttl_seconds == 30
    assert "admin_password" not in text


def test_private_files_are_readable_by_their_owner_only() -> None:
    path = write_private("secret")
    try:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    finally:
        path.unlink()
        path.parent.rmdir()


def test_upgrade_command_is_mlflow_db_upgrade() -> None:
    assert upgrade_command("sqlite:///x.db") == ["mlflow", "db", "upgrade", "sqlite:///x.db"]


@pytest.mark.parametrize(
    ("password", "why"),
    [
        (None, "not set"),
        ("", "not set"),
        ("short-1A", "shorter than 12"),
        ("password1234", "known default"),
        ("please-change-me-now", "placeholder"),
        ("admin-is-the-boss-42", "username"),
        ("abababababababab", "distinct"),
    ],
)
def test_weak_or_missing_admin_passwords_are_refused_without_echoing_them(
    password: str | None, why: str
) -> None:
    with pytest.raises(ConfigError, match=why) as info:
        check_admin_password(password, "admin")
    if password:
        assert password not in str(info.value)


def test_a_bare_postgresql_scheme_is_refused_with_the_psycopg2_hint() -> None:
    with pytest.raises(ConfigError, match=r"postgresql\+psycopg2://"):
        check_store_uri("postgresql://u@h/db")
    with pytest.raises(ConfigError):
        check_store_uri("http://example.com")
    assert check_store_uri(PG) == PG


def test_redacted_uris_keep_everything_but_the_password() -> None:
    assert redact_uri(PG) == "postgresql+psycopg2://mlflow:***@postgres:5432/mlflow"
    assert redact_uri("sqlite:///x.db") == "sqlite:///x.db"


def test_a_bare_allowed_host_admits_the_service_name_with_a_port_and_nothing_else() -> None:
    from mlflow.server.security_utils import is_allowed_host_header

    allowed = list(expand_hosts(("mlflow", "10.0.0.5:5000"), 5000))
    assert is_allowed_host_header(allowed, "mlflow:5000")
    assert is_allowed_host_header(allowed, "mlflow")
    assert is_allowed_host_header(allowed, "10.0.0.5:5000")
    assert not is_allowed_host_header(allowed, "10.0.0.5:6000")
    assert not is_allowed_host_header(allowed, "evil.example.com")
    assert not is_allowed_host_header(allowed, "mlflow.evil.example.com:5000")


def test_server_options_come_from_the_environment_and_refuse_wildcard_hosts(
    monkeypatch,
) -> None:
    monkeypatch.setenv("MLCYCLE_ADMIN_PASSWORD", GOOD)
    monkeypatch.setenv("MLCYCLE_BACKEND_STORE_URI", PG)
    monkeypatch.setenv("MLCYCLE_ARTIFACTS_DESTINATION", "s3://team/artifacts")
    monkeypatch.setenv("MLCYCLE_ALLOWED_HOSTS", "mlflow, localhost")
    opts = server_options(load_settings(), port=5005)
    assert opts.backend_store_uri == PG
    assert opts.allowed_hosts == ("mlflow", "localhost")
    assert opts.auth_uri == PG
    assert GOOD not in repr(load_settings())
    with pytest.raises(ConfigError, match="rebinding"):
        server_options(load_settings(), allowed_hosts="*")
    with pytest.raises(ConfigError, match=r"\.\."):
        server_options(load_settings(), artifacts_destination="s3://team/../other")


def test_relative_artifact_paths_may_not_climb_out_of_their_root() -> None:
    assert check_relative_path("model/MLmodel") == "model/MLmodel"
    for bad in ("../x", "model/../../etc/passwd", "/etc/passwd", "a\\..\\b", "a\x00b"):
        with pytest.raises(ConfigError):
            check_relative_path(bad)


def test_model_uris_with_dot_dot_segments_are_refused() -> None:
    assert check_model_uri("models:/churn@champion") == "models:/churn@champion"
    assert check_model_uri("runs:/abc/model") == "runs:/abc/model"
    for bad in ("runs:/abc/../../etc", "models:/churn/../x", "runs:/abc/%2E%2E/x"):
        with pytest.raises(ConfigError, match=r"\.\."):
            check_model_uri(bad)
    with pytest.raises(ConfigError):
        model_uri("../churn")


def test_server_help_lists_its_options_and_offers_no_password_flag() -> None:
    res = CliRunner().invoke(cli, ["server", "--help"], catch_exceptions=False)
    assert res.exit_code == 0
    for flag in ("--backend-store-uri", "--artifacts-destination", "--allowed-hosts", "--port"):
        assert flag in res.output
    assert "--password" not in res.output and "--admin-password" not in res.output


def test_server_without_an_admin_password_exits_1_and_says_which_variable(monkeypatch) -> None:
    monkeypatch.delenv("MLCYCLE_ADMIN_PASSWORD", raising=False)
    res = CliRunner().invoke(cli, ["server"])
    assert res.exit_code == 1
    assert "MLCYCLE_ADMIN_PASSWORD is not set" in res.output


def test_server_with_a_weak_password_exits_1_without_printing_it(monkeypatch) -> None:
    monkeypatch.setenv("MLCYCLE_ADMIN_PASSWORD", "aaaabbbbcccc1")
    res = CliRunner().invoke(cli, ["server", "--backend-store-uri", "sqlite:///x.db"])
    assert res.exit_code == 1
    assert "too weak" in res.output and "aaaabbbbcccc1" not in res.output


def test_server_refuses_a_bare_postgresql_uri_before_starting_anything(monkeypatch) -> None:
    monkeypatch.setenv("MLCYCLE_ADMIN_PASSWORD", GOOD)
    res = CliRunner().invoke(cli, ["server", "--backend-store-uri", "postgresql://u@h/db"])
    assert res.exit_code == 1
    assert "postgresql+psycopg2://" in res.output
