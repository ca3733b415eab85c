"""Evidently HTML reports (new 0.7 API) for humans; the numbers that drive checks come from
``drift_assets.stats``. Evidently is slow on millions of rows, so the report is built on a seeded
sample (``max_rows``) of each table; it states the sample size in its file name metadata."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import pyarrow as pa

from drift_assets.stats.profile import ColumnSpec

DEFAULT_MAX_ROWS = 50_000
log = logging.getLogger(__name__)


def _sample(table: pa.Table, max_rows: int, seed: int) -> pd.DataFrame:
    if table.num_rows > max_rows:
        import numpy as np

        idx = np.sort(np.random.default_rng(seed).choice(table.num_rows, size=max_rows, replace=False))
        table = table.take(pa.array(idx))
    return table.to_pandas()


def write_evidently_report(
    reference: pa.Table,
    current: pa.Table,
    specs: Sequence[ColumnSpec],
    path: str | Path,
    *,
    max_rows: int = DEFAULT_MAX_ROWS,
    seed: int = 0,
) -> Path:
    """Data drift + data summary report of the two tables, saved as standalone HTML."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset, DataSummaryPreset

    names = [s.name for s in specs if s.name in current.schema.names]
    numerical = [s.name for s in specs if s.kind == "numerical" and s.name in names]
    categorical = [s.name for s in specs if s.kind == "categorical" and s.name in names]
    definition = DataDefinition(numerical_columns=numerical, categorical_columns=categorical)
    ref_df = _sample(reference.select(names), max_rows, seed)
    cur_df = _sample(current.select(names), max_rows, seed + 1)
    for col in numerical:  # Evidently wants floats; arrow ints with nulls arrive as objects.
        ref_df[col] = pd.to_numeric(ref_df[col], errors="coerce").astype("float64")
        cur_df[col] = pd.to_numeric(cur_df[col], errors="coerce").astype("float64")
    report = Report([DataDriftPreset(), DataSummaryPreset()])
    snapshot = report.run(
        current_data=Dataset.from_pandas(cur_df, data_definition=definition),
        reference_data=Dataset.from_pandas(ref_df, data_definition=definition),
    )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    snapshot.save_html(str(path))
    return path
