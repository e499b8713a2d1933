"""``mlcycle predict``: score a whole table (batch inference)."""

from __future__ import annotations

import json

import click

from mlcycle.cli._common import cli, context
from mlcycle.cli._options import allow_pickle_option, inference_log_option, json_option


@cli.command("predict")
@click.option(
    "--model",
    "model_uri",
    required=True,
    help="models:/NAME@champion, models:/NAME/VERSION, runs:/ID/model or a local path.",
)
@click.option(
    "--input",
    "source",
    required=True,
    metavar="PATH|s3://",
    help="CSV or Parquet file to score (Spark also takes a Parquet directory).",
)
@click.option(
    "--output",
    required=True,
    metavar="DIR|s3://",
    help="Directory of partitioned Parquet (model_version=/scored_date=).",
)
@click.option(
    "--engine",
    type=click.Choice(["pandas", "spark"]),
    default="pandas",
    show_default=True,
    help="In process, or Spark with mlflow.pyfunc.spark_udf (pip install 'mlcycle[spark]').",
)
@click.option(
    "--master",
    default="local[2]",
    show_default=True,
    help="Spark master URL (with --engine spark).",
)
@click.option(
    "--overwrite", is_flag=True, help="Replace the partitions written instead of adding files."
)
@click.option(
    "--to-inference-log",
    "to_log",
    is_flag=True,
    help="Also append the scored rows to the inference log, for monitoring (needs pyarrow: "
    "pip install 'mlcycle[monitoring]').",
)
@inference_log_option
@click.option(
    "--predict-method",
    type=click.Choice(["predict", "predict_proba"]),
    default="predict",
    show_default=True,
    help="predict_proba adds a proba_<class> column per class (classifiers, pandas engine).",
)
@allow_pickle_option
@json_option()
def predict_cmd(
    model_uri: str,
    source: str,
    output: str,
    engine: str,
    master: str,
    overwrite: bool,
    to_log: bool,
    inference_log: str | None,
    predict_method: str,
    allow_pickle: bool,
    as_json: bool,
) -> None:
    """Score a whole table with a registered model and write partitioned Parquet."""
    from mlcycle.batch import predict

    settings, client = context(inference_log=inference_log)
    result = predict(
        model_uri, source, output, client=client, engine=engine, master=master,  # type: ignore[arg-type]
        overwrite=overwrite, inference_log=settings.inference_log if to_log else None,
        allow_pickle=allow_pickle or settings.allow_pickle, predict_method=predict_method,
    )  # fmt: skip
    if as_json:
        click.echo(json.dumps(result.as_dict(), indent=2))
        return
    click.echo(
        f"scored     {result.rows} rows with {result.model_name} version "
        f"{result.model_version} on {result.engine} ({result.rows_per_second:,.0f} rows/s)"
    )
    click.echo(
        f"output     {result.output}/model_version={result.model_version}/ "
        f"(batch {result.batch_id})"
    )
    if result.logged_rows is not None:
        click.echo(
            f"logged     {result.logged_rows} rows to the inference log at {settings.inference_log}"
        )
