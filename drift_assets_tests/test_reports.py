"""The Evidently report is drawn from a seeded sample taken while streaming, never the whole window."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from drift_assets.monitoring.reports import sample_source
from drift_assets.storage.tables import TableSource


def test_sample_is_seeded_bounded_and_spans_every_file(tmp_path):
    for i in range(3):
        pq.write_table(
            pa.table({"a": np.arange(100_000) + i * 100_000, "b": np.zeros(100_000)}),
            tmp_path / f"p{i}.parquet",
            row_group_size=20_000,
        )
    source = TableSource.open(str(tmp_path))
    assert source.num_rows() == 300_000
    sample = sample_source(source, ["a"], max_rows=30_000, seed=5)
    assert sample.column_names == ["a"]
    assert 27_000 < sample.num_rows < 33_000  # Bernoulli(0.1) of 300,000 rows: sd ~ 164
    values = sample.column("a").to_numpy()
    assert all(((values >= lo) & (values < lo + 100_000)).sum() > 9_000 for lo in (0, 100_000, 200_000))
    assert sample.equals(sample_source(source, ["a"], max_rows=30_000, seed=5))
    assert not sample.equals(sample_source(source, ["a"], max_rows=30_000, seed=6))
    small = sample_source(source, ["a"], max_rows=500_000)
    assert small.num_rows == 300_000  # under the cap: every row
