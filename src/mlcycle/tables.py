"""Reading and writing tables: CSV or Parquet, local or ``s3://``.

API: :func:`load_table`, :func:`write_table`.

Re-exported by :mod:`mlcycle.data`, where these names were first published.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import pandas as pd

from mlcycle.errors import DataError
from mlcycle.parquet import read_parquet, write_parquet
from mlcycle.storage import s3_client


def _read_bytes(source: str) -> bytes:
    if source.startswith("s3://"):
        bucket, _, key = source[5:].partition("/")
        if not bucket or not key:
            raise DataError(f"'{source}' is not an s3://bucket/key URI")
        try:
            body = s3_client().get_object(Bucket=bucket, Key=key)["Body"]
            return bytes(body.read())
        except Exception as exc:
            raise DataError(f"cannot read '{source}': {exc}") from exc
    path = Path(source)
    if not path.exists():
        raise DataError(f"data file '{source}' does not exist")
    if path.is_dir():
        raise DataError(f"'{source}' is a directory; give a CSV or Parquet file")
    return path.read_bytes()


def load_table(source: str | os.PathLike[str]) -> pd.DataFrame:
    """Read a CSV or Parquet table from a local path or an ``s3://`` URI.

    The format follows the suffix (``.csv``, ``.csv.gz``, ``.parquet``, ``.pq``); other
    suffixes are sniffed (Parquet magic bytes, else CSV).

    Raises:
        DataError: the file is missing, unreadable or has no rows.
    """
    source = str(source)
    raw = _read_bytes(source)
    if not raw.strip():
        raise DataError(f"data file '{source}' is empty")
    lower = source.lower()
    is_parquet = lower.endswith((".parquet", ".pq")) or raw[:4] == b"PAR1"
    try:
        if is_parquet:
            df = read_parquet(raw)
        else:
            compression = "gzip" if lower.endswith(".gz") else None
            df = pd.read_csv(io.BytesIO(raw), compression=compression)
    except Exception as exc:
        kind = "Parquet" if is_parquet else "CSV"
        raise DataError(f"cannot read '{source}' as {kind}: {exc}") from exc
    header = df.columns if is_parquet else _csv_header(raw, compression)
    _check_unique_header(header, source)
    if df.empty:
        raise DataError(f"data file '{source}' has no rows")
    return df


def write_table(df: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    """Write ``df`` to a local file: Parquet for ``.parquet``/``.pq``, else CSV (no index).

    Missing parent directories are created. Returns the path written.
    """
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix.lower() in (".parquet", ".pq"):
        write_parquet(df, out)
    else:
        df.to_csv(out, index=False)
    return out


def _csv_header(raw: bytes, compression: str | None) -> pd.Index:
    # pandas renames a repeated header to `age.1`; read the first row as data to see it as
    # written.
    return pd.Index(
        pd.read_csv(io.BytesIO(raw), compression=compression, header=None, nrows=1, dtype=str).iloc[
            0
        ]
    )


def _check_unique_header(header: pd.Index, source: str) -> None:
    repeated = sorted({str(c) for c in header[header.duplicated()]})
    if repeated:
        raise DataError(
            f"data file '{source}' repeats column name(s) "
            + ", ".join(f"'{c}'" for c in repeated)
            + "; give every column a distinct name"
        )
