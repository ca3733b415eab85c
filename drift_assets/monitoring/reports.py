"""Evidently HTML reports (new 0.7 API) for humans; the numbers that drive checks come from
``drift_assets.stats``. Evidently is slow on millions of rows, so the report is built on a seeded
sample of each table (``sample_source``, at most ~50,000 rows each)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from drift_assets.stats.profile import ColumnSpec
from drift_assets.storage.tables import TableSource

DEFAULT_MAX_ROWS = 50_000


def sample_source(
    source: TableSource, columns: Sequence[str], max_rows: int = DEFAULT_MAX_ROWS, seed: int = 0
) -> pa.Table:
    """A seeded sample of about ``max_rows`` rows, drawn batch by batch while streaming: a week of
    millions of rows is never loaded whole just to draw a report from it."""
    batches = source.batches(columns)
    total = source.num_rows()
    if total is None or total <= max_rows:
        return pa.Table.from_batches(list(batches))
    rng = np.random.default_rng(seed)
    keep = max_rows / total
    return pa.Table.from_batches([b.filter(pa.array(rng.random(b.num_rows) < keep)) for b in batches])


def _frame(table: pa.Table, numerical: Sequence[str]) -> pd.DataFrame:
    frame = table.to_pandas()
    for col in numerical:  # Evidently wants floats; arrow ints with nulls arrive as objects.
        frame[col] = pd.to_numeric(frame[col], errors="coerce").astype("float64")
    return frame


def write_evidently_report(
    reference: pa.Table,
    current: pa.Table,
    specs: Sequence[ColumnSpec],
    path: str | Path,
) -> Path:
    """Data drift + data summary report of the two (sampled) tables, saved as standalone HTML."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset, DataSummaryPreset

    names = [s.name for s in specs if s.name in current.schema.names]
    numerical = [s.name for s in specs if s.kind == "numerical" and s.name in names]
    categorical = [s.name for s in specs if s.kind == "categorical" and s.name in names]
    definition = DataDefinition(numerical_columns=numerical, categorical_columns=categorical)
    ref_df = _frame(reference.select(names), numerical)
    cur_df = _frame(current.select(names), numerical)
    report = Report([DataDriftPreset(), DataSummaryPreset()])
    snapshot = report.run(
        current_data=Dataset.from_pandas(cur_df, data_definition=definition),
        reference_data=Dataset.from_pandas(ref_df, data_definition=definition),
    )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    snapshot.save_html(str(path))
    return path
