"""The whole lifecycle on the team stack: ``mlcycle server`` (basic auth) on PostgreSQL with
artifacts in S3, every stage a client of it with credentials from the environment — the
compose services' commands, run natively."""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from stack_support import compose_argv, running_tracking, s3_keys

from mlcycle.cli import cli
from mlcycle.data import SCENARIO_TARGET, SCENARIO_TIME, make_scenario
from testkit import free_port, stop_group

pytestmark = [
    pytest.mark.slow,
    pytest.mark.postgres,
    pytest.mark.s3,
    pytest.mark.xdist_group("stack"),
]


def _ok(args: list[str]) -> str:
    res = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return res.stdout


def _wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 150) -> None:
    import time

    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if proc.poll() is not None:
            pytest.fail(f"mlcycle serve exited {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(url + "/ready", timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    pytest.fail(f"/ready not 200 after {timeout}s:\n{log.read_text()[-3000:]}")


def test_train_register_promote_serve_monitor_and_retrain_all_go_through_the_auth_server(
    pg_url: str, s3_endpoint: str, s3_bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with running_tracking(pg_url, s3_endpoint, s3_bucket, tmp_path / "server") as t:
        t.use(monkeypatch)
        data = tmp_path / "reference.csv"
        make_scenario(2500, period="reference", seed=3).to_csv(data, index=False)

        # train → register (@challenger) → gate → promote (@champion), as the CLI does.
        out = json.loads(
            _ok(["train", "--data", str(data), "--target", SCENARIO_TARGET, "--time-column",
                 SCENARIO_TIME, "--model", "linear", "--register-as", "churn", "--json"])
        )  # fmt: skip
        assert out["registered_version"] == "1"
        promoted = _ok(["promote", "churn"])
        assert "version 1 → Production (@champion)" in promoted

        from mlflow import MlflowClient

        client = MlflowClient()
        assert client.get_model_version_by_alias("churn", "champion").version == "1"
        # Artifacts went through the server's proxy into the bucket, not to a local directory.
        keys = s3_keys(s3_endpoint, s3_bucket, "artifacts/")
        assert any(k.endswith("/MLmodel") for k in keys), keys[:20]
        assert not (tmp_path / "mlartifacts").exists()

        # serve @champion from the registry, inference log in the same bucket.
        port = free_port()
        log_root = f"s3://{s3_bucket}/inference-log"
        serve_log = tmp_path / "serve.log"
        with serve_log.open("wb") as fh:
            # The compose model-server's command (models:/churn@champion), here on loopback.
            cmd = compose_argv(
                "model-server",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--inference-log",
                log_root,
                "--reload-interval",
                "0",
            )
            assert cmd[cmd.index("--model") + 1] == "models:/churn@champion"
            proc = subprocess.Popen(
                cmd,
                env=t.client_env(), cwd=tmp_path, stdout=fh, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        try:
            _wait_ready(url, proc, serve_log)
            traffic = make_scenario(600, period="both", seed=11, start="2026-02-01", days=1)
            features = traffic.drop(columns=[SCENARIO_TARGET, SCENARIO_TIME])
            labels = []
            with httpx.Client(timeout=30) as http:
                for start in range(0, len(traffic), 50):
                    part = features.iloc[start : start + 50]
                    rid = uuid.uuid4().hex
                    # to_json writes missing values as null (the scenario has some).
                    body = '{"dataframe_split": ' + part.to_json(orient="split", index=False) + "}"
                    r = http.post(
                        url + "/invocations",
                        content=body,
                        headers={"x-request-id": rid, "content-type": "application/json"},
                    )
                    assert r.status_code == 200, r.text
                    assert r.headers["x-model-version"] == "1"
                    labels.append(
                        pd.DataFrame(
                            {
                                "request_id": rid,
                                "record_index": np.arange(len(part)),
                                SCENARIO_TARGET: traffic[SCENARIO_TARGET]
                                .iloc[start : start + 50]
                                .to_numpy(),
                            }
                        )
                    )
        finally:
            stop_group(proc, grace=30)  # SIGTERM: the log writes what it holds, then exits
        assert proc.returncode == 0, serve_log.read_text()[-3000:]
        logged = [k for k in s3_keys(s3_endpoint, s3_bucket, "inference-log/") if ".parquet" in k]
        assert logged, "the model server wrote no inference log to S3"

        # monitor the logged window against the training reference; the policy retrains.
        monkeypatch.setenv("MLCYCLE_INFERENCE_LOG", log_root)
        labels_path = tmp_path / "labels.csv"
        pd.concat(labels).to_csv(labels_path, index=False)
        res = json.loads(
            _ok(["monitor", "--model", "churn", "--labels", str(labels_path), "--retrain",
                 "--bad-windows", "1", "--of-last", "1", "--output", str(tmp_path / "reports"),
                 "--json"])
        )  # fmt: skip
        assert res["result"]["rows"] == 600
        assert res["decision"]["retrain"] is True, res["decision"]
        retrained = res["retrain"]
        assert retrained is not None and retrained["version"] == "2"

        # Everything is in the shared registry, visible to any client of the server.
        monitoring = client.get_run(res["run_id"])
        assert monitoring.info.status == "FINISHED"
        assert monitoring.data.tags["mlcycle.retrain.version"] == "2"
        train_run = client.get_run(retrained["run_id"])
        assert train_run.info.status == "FINISHED"
        v2 = client.get_model_version("churn", "2")
        assert v2.run_id == retrained["run_id"]
        champion = client.get_model_version_by_alias("churn", "champion").version
        assert champion == ("2" if retrained["promoted"] else "1")
        # The monitoring report reached the bucket too.
        keys = s3_keys(s3_endpoint, s3_bucket, "artifacts/")
        assert any(res["run_id"] in k for k in keys)

        # The compose monitor's command runs against the same stack (one window, then exits).
        loop = subprocess.run(
            compose_argv("monitor", "--output", str(tmp_path / "loop-reports"), "--once"),
            env={**t.client_env(), "MLCYCLE_INFERENCE_LOG": log_root},
            cwd=tmp_path, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert loop.returncode == 0, loop.stderr[-3000:]
        assert "[window " in loop.stdout, loop.stdout
