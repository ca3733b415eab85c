"""Helpers shared by the pipeline stages (runs inside the DVC virtualenv).

Every stage runs with the work dir as cwd (``python src/<stage>.py``) and reads
``params.yaml`` from there.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import pandas as pd
import yaml

PARAMS_FILE = Path("params.yaml")
PREPARED_DIR = Path("prepared")
TRAIN_FILE = PREPARED_DIR / "train.parquet"
HOLDOUT_FILE = PREPARED_DIR / "holdout.parquet"
SUMMARY_FILE = PREPARED_DIR / "summary.json"
MODEL_FILE = Path("model") / "model.joblib"
METRICS_FILE = Path("metrics.json")

# Extra columns written next to the features/target in prepared/*.parquet.
SOURCE_COLUMN = "source"  # "reference" | "production"


class StageError(Exception):
    """A problem with the inputs that the stage reports as a one-line message on stderr."""


def fail(stage: str, message: str) -> NoReturn:
    print(f"ERROR [{stage}]: {message}", file=sys.stderr, flush=True)
    raise SystemExit(2)


def run_stage(stage: str, main) -> None:
    """Run ``main()``; turn StageError into a clean non-zero exit with the message on stderr."""
    try:
        main()
    except StageError as exc:
        fail(stage, str(exc))


def load_params(path: Path = PARAMS_FILE) -> dict[str, Any]:
    if not path.exists():
        raise StageError(f"{path} not found in {Path.cwd()} (run the stages from the project dir)")
    with path.open() as fh:
        params = yaml.safe_load(fh) or {}
    return params


def get(params: dict[str, Any], dotted: str) -> Any:
    node: Any = params
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            raise StageError(f"missing parameter '{dotted}' in params.yaml")
        node = node[part]
    return node


def feature_columns(params: dict[str, Any]) -> tuple[list[str], list[str]]:
    numerical = list(get(params, "columns.numerical") or [])
    categorical = list(get(params, "columns.categorical") or [])
    if not numerical and not categorical:
        raise StageError("columns.numerical and columns.categorical are both empty")
    overlap = sorted(set(numerical) & set(categorical))
    if overlap:
        raise StageError(f"columns listed as both numerical and categorical: {overlap}")
    return numerical, categorical


def to_utc(value: Any, what: str) -> pd.Timestamp:
    try:
        ts = pd.Timestamp(value)
    except (TypeError, ValueError) as exc:
        raise StageError(f"{what}: cannot parse {value!r} as a datetime ({exc})") from None
    if ts is pd.NaT:
        raise StageError(f"{what}: empty datetime")
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def series_to_utc(s: pd.Series) -> pd.Series:
    if not pd.api.types.is_datetime64_any_dtype(s.dtype):  # already datetimes: to_datetime is a no-op
        s = pd.to_datetime(s, utc=False)  # (that costs ~4 ms a call: once per log file)
    if getattr(s.dt, "tz", None) is None:
        return s.dt.tz_localize("UTC")
    return s.dt.tz_convert("UTC")


def require_columns(df: pd.DataFrame, required: list[str], where: str) -> None:
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise StageError(f"missing required column(s) {missing} in {where}; available: {sorted(map(str, df.columns))}")


def normalize_features(df: pd.DataFrame, numerical: list[str], categorical: list[str]) -> pd.DataFrame:
    """Coerce feature dtypes so that every stage (and the champion) sees the same representation:
    numerical -> float64, categorical -> object (str values, missing as NaN)."""
    out = df.copy()
    for col in numerical:
        try:
            out[col] = pd.to_numeric(out[col], errors="raise").astype("float64")
        except (TypeError, ValueError) as exc:
            raise StageError(f"numerical column '{col}' is not numeric ({exc})") from None
    for col in categorical:
        s = out[col]
        if isinstance(s.dtype, pd.CategoricalDtype):
            s = s.astype(object)
        mask = s.notna()
        out[col] = s.astype(object).where(mask, np.nan)
        present = out[col].to_numpy()[mask.to_numpy()]
        if not set(map(type, present)) <= {str}:  # values read from parquet strings already are
            out.loc[mask, col] = out.loc[mask, col].astype(str)
    return out


class ParquetInput:
    """One input file, opened once for its column names and then the columns a stage reads (reading
    the schema and then the table by path opened and parsed each file twice: 169 files a run)."""

    def __init__(self, path: Path):
        import pyarrow.parquet as pq

        self.path = path
        try:
            self.file = pq.ParquetFile(path)
        except (KeyError, ValueError) as exc:  # pyarrow.ArrowInvalid: not a parquet file
            raise StageError(f"cannot read {path}: {type(exc).__name__}: {exc}") from None
        self.names: list[str] = self.file.schema_arrow.names

    def read(self, columns: list[str] | None = None) -> pd.DataFrame:
        missing = [c for c in (columns or []) if c not in self.names]
        if missing:  # ParquetFile.read would skip them silently
            raise StageError(f"missing required column(s) {missing} in {self.path}; available: {sorted(self.names)}")
        try:
            return self.file.read(columns=columns).to_pandas()
        except (KeyError, ValueError) as exc:
            raise StageError(f"cannot read {self.path}: {type(exc).__name__}: {exc}") from exc

    def __enter__(self) -> ParquetInput:
        return self

    def __exit__(self, *exc: object) -> None:
        self.file.close()


def read_parquet_file(path: Path, columns: list[str] | None = None) -> pd.DataFrame:
    with ParquetInput(path) as source:
        return source.read(columns)


def write_json(path: Path, payload: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n")
