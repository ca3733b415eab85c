"""``monitoring/performance``'s label join and max-per-id without pyarrow's acero (whose import
imports pandas, ~0.3 s in a fresh run process): the same rows as ``Table.join`` / ``Table.group_by``
(compared sorted: the measures taken from them are order-free) on duplicated, relabelled, missing
and null ids, int8/int64/bool labels with nulls, chunked and empty inputs; and ``realized_performance``
gives the same document as with acero's join on a labelled and a pending window.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from support import START

from drift_assets.monitoring import performance as perf
from drift_assets.monitoring.config import load_monitors
from drift_assets.monitoring.sources import stream_log
from drift_assets.monitoring.windows import expected_log_types, parse_partition_key
from drift_assets.orchestration.environment import resources_for_environment
from drift_assets.storage.tables import TableSource


def _acero_max(table: pa.Table, id_column: str, label_column: str) -> pa.Table:
    agg = table.group_by(id_column).aggregate([(label_column, "max")])
    return pa.table({id_column: agg.column(id_column), label_column: agg.column(f"{label_column}_max")})


def _rows(table: pa.Table) -> list[tuple]:
    return sorted(zip(*(c.to_pylist() for c in table.columns), strict=True), key=repr)


def _labels(rng: np.random.Generator, n: int, label_type: pa.DataType, null_share: float) -> pa.Table:
    ids = [None if rng.random() < 0.02 else f"t{int(i)}" for i in rng.integers(0, n // 2 + 1, size=n)]
    values = [None if rng.random() < null_share else int(v) for v in rng.integers(0, 2, size=n)]
    label = pa.array(values, pa.int64()).cast(label_type)
    half = n // 2  # two chunks, as concat_tables of two label files gives
    return pa.concat_tables(
        [
            pa.table({"id": pa.array(ids[:half], pa.string()), "y": label[:half]}),
            pa.table({"id": pa.array(ids[half:], pa.string()), "y": label[half:]}),
        ]
    )


@pytest.mark.parametrize("label_type", [pa.int8(), pa.int64(), pa.bool_()])
@pytest.mark.parametrize("null_share", [0.0, 0.3])
@pytest.mark.parametrize("n", [0, 1, 7, 500])
def test_max_label_by_id_is_acero_group_by(label_type, null_share, n):
    table = _labels(np.random.default_rng(n), n, label_type, null_share)
    mine = perf._max_label_by_id(table, "id", "y")
    assert mine.schema == _acero_max(table, "id", "y").schema
    assert _rows(mine) == _rows(_acero_max(table, "id", "y"))


@pytest.mark.parametrize("n", [0, 1, 50, 2000])
def test_inner_join_labels_is_acero_join(n):
    rng = np.random.default_rng(100 + n)
    labels = _acero_max(_labels(rng, n, pa.int8(), 0.1), "id", "y")
    ids = [None if rng.random() < 0.05 else f"t{int(i)}" for i in rng.integers(0, n + 1, size=n)]  # dupes too
    scored = pa.concat_tables(
        [
            pa.table({"id": pa.array(ids[: n // 3], pa.string()), "s": pa.array(rng.random(n // 3))}),
            pa.table({"id": pa.array(ids[n // 3 :], pa.string()), "s": pa.array(rng.random(n - n // 3))}),
        ]
    )
    mine = perf._inner_join_labels(scored, labels, "id")
    acero = scored.join(labels, keys="id", join_type="inner")
    assert mine.schema == acero.schema
    assert _rows(mine) == _rows(acero)


def _acero_join(scored: pa.Table, labels: pa.Table, key: str) -> pa.Table:
    return scored.join(labels, keys=key, join_type="inner")


def test_realized_performance_is_the_same_as_with_acero(project, monkeypatch):
    """The fraud monitor's realized performance of a labelled week and of a pending one, against
    the same function with acero's join and group-by put back."""
    monitor = next(m for m in load_monitors(None) if m.name == "fraud")
    st = resources_for_environment(None)["storage"].storage()
    statuses = []
    for week in (START + dt.timedelta(weeks=1), START + dt.timedelta(weeks=5)):
        window = parse_partition_key(week.isoformat(), monitor.cadence)
        rows = stream_log(st.data, monitor, window, types=expected_log_types(monitor))
        path = project / f"window-{week}.parquet"
        pq.write_table(pa.Table.from_batches(list(rows)), path)
        window_table = TableSource.open(str(path))
        mine = perf.realized_performance(st.data, monitor, window, window_table)
        with monkeypatch.context() as m:
            m.setattr(perf, "_max_label_by_id", _acero_max)
            m.setattr(perf, "_inner_join_labels", _acero_join)
            acero = perf.realized_performance(st.data, monitor, window, window_table)
        assert mine == acero
        statuses.append(mine["status"])
    assert statuses == ["ok", "labels_pending"]  # a labelled week, then one whose labels are pending
