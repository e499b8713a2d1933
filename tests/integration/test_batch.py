"""Batch scoring: a registered version over whole files, in process and on Spark local[2]."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from mlflow import MlflowClient
from serving_support import Registered, Store, train_and_register

from mlcycle.batch import predict, spark_session
from mlcycle.cli import cli
from mlcycle.data import SCENARIO_TARGET, SCENARIO_TIME, make_scenario
from mlcycle.errors import DataError
from testkit import need

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("batch")]

NAME = "batch_churn"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    return Store(tmp_path_factory.mktemp("batch"))


@pytest.fixture(scope="module")
def champion(store: Store) -> Registered:
    frame = make_scenario(2000, period="reference", seed=3)
    return train_and_register(
        store, NAME, frame, SCENARIO_TARGET, "random_forest", time_column=SCENARIO_TIME,
        params={"n_estimators": "15", "max_depth": "6"},
    )  # fmt: skip


@pytest.fixture(scope="module")
def input_csv(store: Store) -> Path:
    """A drifted period with an id column the model never saw (it passes through)."""
    frame = make_scenario(1200, period="covariate", seed=5, start="2026-03-01")
    frame.insert(0, "row_id", np.arange(len(frame)))
    path = store.root / "to-score.csv"
    frame.to_csv(path, index=False)
    return path


@pytest.fixture
def active(store: Store, champion: Registered) -> Iterator[Store]:
    with store.active():
        yield store


def _read(output: Path) -> pd.DataFrame:
    table = ds.dataset(str(output), format="parquet", partitioning="hive").to_table()
    return table.to_pandas().sort_values("row_id").reset_index(drop=True)


def _expected(store: Store, version: str, csv: Path) -> np.ndarray:
    model = mlflow.pyfunc.load_model(f"models:/{NAME}/{version}")
    frame = pd.read_csv(csv)
    features = model.metadata.get_input_schema().input_names()
    from mlcycle.data import infer_spec, prepare_features

    spec = infer_spec(frame.drop(columns=["row_id"]), SCENARIO_TARGET, None, SCENARIO_TIME, ())
    return np.asarray(model.predict(prepare_features(frame, spec)[features]))


# --------------------------------------------------------------------------- pandas


def test_pandas_scoring_writes_parquet_partitioned_by_the_version_the_alias_names(
    active: Store, champion: Registered, input_csv: Path
) -> None:
    out = active.root / "scored-pandas"
    result = predict(f"models:/{NAME}@champion", str(input_csv), str(out), client=MlflowClient())
    assert (result.model_name, result.model_version, result.rows) == (NAME, champion.version, 1200)
    day = result.scored_at.strftime("%Y-%m-%d")
    assert (out / f"model_version={champion.version}" / f"scored_date={day}").is_dir()
    scored = _read(out)
    assert len(scored) == 1200
    assert {"prediction", "model_name", "batch_id", "scored_at", "request_id", "record_index"} <= (
        set(scored.columns)
    )
    assert (scored["model_name"] == NAME).all()
    assert scored["model_version"].astype(str).eq(champion.version).all()
    assert scored["row_id"].tolist() == list(range(1200))
    np.testing.assert_array_equal(
        scored["prediction"].to_numpy(), _expected(active, champion.version, input_csv)
    )


def test_a_new_champion_lands_in_its_own_partition_and_overwrite_replaces_only_its_own(
    active: Store, champion: Registered, input_csv: Path
) -> None:
    client = MlflowClient()
    out = active.root / "scored-versions"
    first = predict(f"models:/{NAME}@champion", str(input_csv), str(out), client=client)
    source = client.get_model_version(NAME, champion.version).source
    v2 = mlflow.register_model(source, NAME)
    client.set_registered_model_alias(NAME, "champion", v2.version)
    try:
        second = predict(f"models:/{NAME}@champion", str(input_csv), str(out), client=client)
        again = predict(
            f"models:/{NAME}/{v2.version}", str(input_csv), str(out), client=client, overwrite=True
        )
    finally:
        client.set_registered_model_alias(NAME, "champion", champion.version)
    assert second.model_version == str(v2.version) != first.model_version
    scored = _read(out)
    by_batch = scored.groupby("batch_id")["model_version"].first().astype(str).to_dict()
    # The overwrite replaced the second call's partition, not the first version's.
    assert by_batch == {first.batch_id: first.model_version, again.batch_id: str(v2.version)}
    assert len(scored) == 2 * 1200


def test_the_cli_feeds_the_inference_log_in_the_format_monitoring_reads(
    active: Store, champion: Registered, input_csv: Path
) -> None:
    from mlcycle.monitoring.inputs import read_inference_log

    out, log_root = active.root / "scored-cli", active.root / "inference-log-cli"
    res = CliRunner().invoke(
        cli,
        ["predict", "--model", f"models:/{NAME}@champion", "--input", str(input_csv),
         "--output", str(out), "--to-inference-log", "--inference-log", str(log_root)],
        catch_exceptions=False,
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert f"scored     1200 rows with {NAME} version {champion.version} on pandas" in res.output
    assert "logged     1200 rows" in res.output
    logged = read_inference_log(str(log_root), NAME)  # role=champion, as monitoring reads it
    scored = _read(out)
    assert len(logged) == 1200
    assert set(logged["model_version"]) == {champion.version}
    # Labels arriving later join the log through the keys the batch output carries.
    joined = scored.merge(logged, on=["request_id", "record_index"], suffixes=("", "_log"))
    assert len(joined) == 1200
    np.testing.assert_array_equal(joined["prediction"], joined["prediction_log"])
    np.testing.assert_allclose(joined["monthly_charges"], joined["monthly_charges_log"])


def test_predict_proba_adds_class_scores_to_the_output_and_the_inference_log(
    active: Store, champion: Registered, input_csv: Path
) -> None:
    from mlcycle.monitoring.inputs import read_inference_log

    out, log_root = active.root / "scored-proba", active.root / "inference-log-proba"
    res = CliRunner().invoke(
        cli,
        ["predict", "--model", f"models:/{NAME}@champion", "--input", str(input_csv),
         "--output", str(out), "--predict-method", "predict_proba", "--to-inference-log",
         "--inference-log", str(log_root)],
        catch_exceptions=False,
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    scored = _read(out)
    model = mlflow.sklearn.load_model(f"models:/{NAME}/{champion.version}")
    features = scored[list(champion.features.columns)]  # as cast to the signature's types
    got = scored[[f"proba_{c}" for c in model.classes_]].to_numpy()
    np.testing.assert_allclose(got, model.predict_proba(features))
    np.testing.assert_array_equal(scored["prediction"], model.predict(features))
    logged = read_inference_log(str(log_root), NAME)
    joined = scored.merge(logged, on=["request_id", "record_index"], suffixes=("", "_log"))
    assert len(joined) == 1200
    np.testing.assert_allclose(joined["proba_1"], joined["proba_1_log"])


def test_predict_proba_of_an_unknown_method_or_on_spark_is_a_usage_error(
    active: Store, input_csv: Path
) -> None:
    from mlcycle.errors import ConfigError

    args = (f"models:/{NAME}@champion", str(input_csv), str(active.root / "never-proba"))
    client = MlflowClient(tracking_uri=active.uri)
    with pytest.raises(ConfigError, match="predict, predict_proba"):
        predict(*args, client=client, predict_method="transform")
    with pytest.raises(ConfigError, match="pandas engine only"):
        predict(*args, client=client, engine="spark", predict_method="predict_proba")
    res = CliRunner().invoke(
        cli, ["predict", "--model", args[0], "--input", args[1], "--output", args[2],
              "--predict-method", "transform"],
    )  # fmt: skip
    assert res.exit_code == 2 and "predict_proba" in res.output


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("missing file", "does not exist"),
        ("missing columns", "lacks the model's feature column(s): monthly_charges, region"),
        ("unknown model", "no registered model named 'no_such_model'"),
        ("bad values", "column 'tenure_months'"),
    ],
)
def test_bad_input_exits_1_with_a_clear_reason_and_writes_nothing(
    active: Store, input_csv: Path, case: str, message: str
) -> None:
    frame = pd.read_csv(input_csv)
    model, source = f"models:/{NAME}@champion", str(input_csv)
    if case == "missing file":
        source = str(active.root / "nowhere.csv")
    elif case == "missing columns":
        source = str(active.root / "narrow.csv")
        frame.drop(columns=["monthly_charges", "region"]).to_csv(source, index=False)
    elif case == "unknown model":
        model = "models:/no_such_model@champion"
    else:
        source = str(active.root / "bad-values.csv")
        frame.assign(tenure_months="many").to_csv(source, index=False)
    out = active.root / f"never-{case.replace(' ', '-')}"
    res = CliRunner().invoke(
        cli, ["predict", "--model", model, "--input", source, "--output", str(out)]
    )
    assert res.exit_code == 1, res.output
    assert message in res.output
    assert not out.exists()


def test_without_pyarrow_pandas_scoring_writes_the_same_files_and_column_types(
    active: Store, champion: Registered, input_csv: Path
) -> None:
    """The core install has fastparquet, not pyarrow: a subprocess that cannot import pyarrow
    scores into the same layout and Parquet types as a process that uses it."""
    with_arrow, without = active.root / "scored-arrow", active.root / "scored-no-arrow"
    model = f"models:/{NAME}@champion"
    first = predict(model, str(input_csv), str(with_arrow), client=MlflowClient())
    code = textwrap.dedent(
        """
        import sys

        class NoArrow:  # as if not installed (sys.modules['pyarrow'] = None trips scikit-learn)
            def find_spec(self, name, path=None, target=None):
                if name.partition(".")[0] == "pyarrow":
                    raise ModuleNotFoundError(f"No module named {name!r}", name=name)

        sys.meta_path.insert(0, NoArrow())
        from mlcycle.cli import cli
        cli(sys.argv[1:], prog_name="mlcycle")
        """
    )
    args = ["predict", "--model", model, "--input", str(input_csv), "--output", str(without)]
    res = subprocess.run(
        [sys.executable, "-c", code, *args], env=active.env(), cwd=active.root,
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]
    assert f"scored     1200 rows with {NAME} version {champion.version} on pandas" in res.stdout
    files = {root: sorted(root.rglob("*.parquet")) for root in (with_arrow, without)}
    assert [len(f) for f in files.values()] == [1, 1]
    part = f"model_version={champion.version}/scored_date={first.scored_at:%Y-%m-%d}"
    for root, (path,) in files.items():
        assert path.parent == root / part and path.name.startswith("part-")
    arrow_file, plain_file = files[with_arrow][0], files[without][0]
    # Parquet's own types; pyarrow's hint to read strings back as large_string is no type.
    types = [[(c.name, c.physical_type, str(c.logical_type)) for c in pq.ParquetFile(f).schema]
             for f in (arrow_file, plain_file)]  # fmt: skip
    assert types[1] == types[0]
    assert str(pq.read_schema(plain_file).field("scored_at").type) == "timestamp[us, tz=UTC]"
    ids = ["batch_id", "request_id", "scored_at"]
    pd.testing.assert_frame_equal(
        _read(without).drop(columns=ids), _read(with_arrow).drop(columns=ids)
    )


@pytest.mark.parametrize("engine", ["pyarrow", "fastparquet"])
def test_pandas_scoring_writes_the_partition_to_s3_and_overwrite_replaces_it(
    active: Store, champion: Registered, input_csv: Path, s3_bucket: str, engine: str
) -> None:
    import boto3

    from mlcycle.parquet import read_parquet

    s3 = boto3.client("s3")
    output, model = f"s3://{s3_bucket}/scored", f"models:/{NAME}@champion"
    with pd.option_context("io.parquet.engine", engine):
        first = predict(model, str(input_csv), output, client=MlflowClient())
        again = predict(model, str(input_csv), output + "/", client=MlflowClient(), overwrite=True)

    part = f"scored/model_version={champion.version}/scored_date={again.scored_at:%Y-%m-%d}"
    listed = s3.list_objects_v2(Bucket=s3_bucket, Prefix=part + "/")["Contents"]
    keys = [o["Key"] for o in listed]
    # The overwrite left only its own file in the partition (the first call's, unless the
    # date turned between the calls).
    assert keys == [f"{part}/part-{again.batch_id}-0.parquet"]
    assert first.batch_id != again.batch_id
    body = s3.get_object(Bucket=s3_bucket, Key=keys[0])["Body"].read()
    scored = read_parquet(body).sort_values("row_id").reset_index(drop=True)
    assert len(scored) == 1200 and "model_version" not in scored.columns
    assert set(scored["batch_id"]) == {again.batch_id}
    np.testing.assert_array_equal(
        scored["prediction"].to_numpy(), _expected(active, champion.version, input_csv)
    )


# --------------------------------------------------------------------------- spark


@pytest.fixture(scope="module")
def spark(champion: Registered) -> Iterator[object]:
    """One local[2] session for the module (Spark starts in ~10 s)."""
    need(shutil.which("java") is not None, "Java is not installed (Spark needs Java 17+)")
    try:
        import pyspark  # noqa: F401
    except ImportError:
        need(False, "pyspark is not installed (pip install 'mlcycle[spark]')")
    session = spark_session("local[2]", app_name="mlcycle-tests")
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


def test_spark_and_pandas_give_the_same_predictions_and_layout_on_the_same_input(
    active: Store, champion: Registered, input_csv: Path, spark: object
) -> None:
    from mlcycle.monitoring.inputs import read_inference_log

    client = MlflowClient()
    on_pandas = predict(
        f"models:/{NAME}@champion", str(input_csv), str(active.root / "p"), client=client
    )
    log_root = active.root / "inference-log-spark"
    on_spark = predict(
        f"models:/{NAME}@champion", str(input_csv), str(active.root / "s"), client=client,
        engine="spark", spark=spark, inference_log=str(log_root),
    )  # fmt: skip
    assert (on_spark.rows, on_spark.model_version) == (1200, on_pandas.model_version)
    pandas_out, spark_out = _read(active.root / "p"), _read(active.root / "s")
    assert spark_out["row_id"].tolist() == list(range(1200))
    np.testing.assert_array_equal(spark_out["prediction"], pandas_out["prediction"])
    assert spark_out["prediction"].dtype == pandas_out["prediction"].dtype
    day = on_spark.scored_at.strftime("%Y-%m-%d")
    assert (
        active.root / "s" / f"model_version={on_spark.model_version}" / f"scored_date={day}"
    ).is_dir()
    assert on_spark.logged_rows == 1200
    logged = read_inference_log(str(log_root), NAME)
    joined = spark_out.merge(logged, on=["request_id", "record_index"], suffixes=("", "_log"))
    assert len(joined) == 1200
    np.testing.assert_array_equal(joined["prediction"], joined["prediction_log"])


def test_spark_refuses_input_without_the_feature_columns_before_scoring(
    active: Store, input_csv: Path, spark: object
) -> None:
    narrow = active.root / "narrow-spark.csv"
    pd.read_csv(input_csv).drop(columns=["region"]).to_csv(narrow, index=False)
    with pytest.raises(DataError, match="lacks the model's feature column"):
        predict(
            f"models:/{NAME}@champion", str(narrow), str(active.root / "never-spark"),
            client=MlflowClient(), engine="spark", spark=spark,
        )  # fmt: skip
    assert not (active.root / "never-spark").exists()
