"""The retraining phase's speed-ups keep their results (issue 16): the DVC stages' environment lets
OpenMP threads sleep, scoring runs on one OpenMP thread (and, for the demo's re-scored log, in one
call), and the pipeline's helpers take shortcuts only where the slow path would change nothing.

Each is checked against the computation it replaces, written out here: the same scores with all
threads and one file at a time, the same normalised frames and timestamps, the same error lines.
"""

from __future__ import annotations

import datetime as dt
import io
import sys
from pathlib import Path
from types import SimpleNamespace

import joblib
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder
from threadpoolctl import threadpool_limits

from drift_assets.cli.demo import serve_champion_from
from drift_assets.monitoring.registry import ModelRegistry
from drift_assets.retraining.dvc_runner import _build_env
from drift_assets.retraining.reference import positive_scores
from drift_assets.storage.root import Root, Storage

TRAINING_SRC = Path(__file__).resolve().parents[1] / "training" / "src"
NUMERICAL, CATEGORICAL = ["amount", "age"], ["channel"]


@pytest.fixture(scope="module")
def stagelib():
    sys.path.insert(0, str(TRAINING_SRC))
    try:
        import stagelib

        yield stagelib
    finally:
        sys.path.remove(str(TRAINING_SRC))


def _frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "amount": rng.lognormal(3, 1, n),
            "age": rng.uniform(0, 3000, n),
            "channel": rng.choice(["web", "pos", "app"], n).astype(object),
        }
    )


@pytest.fixture(scope="module")
def model():
    X = _frame(3000, 0)
    y = ((np.log(X["amount"]) + (X["channel"] == "web")) > 3.4).astype(int)
    pre = ColumnTransformer(
        [("cat", OneHotEncoder(handle_unknown="ignore"), CATEGORICAL), ("num", "passthrough", NUMERICAL)]
    )
    clf = HistGradientBoostingClassifier(max_iter=30, random_state=0)
    return Pipeline([("features", pre), ("model", clf)]).fit(X, y)


# ------------------------------------------------------------------------------------ environment


def test_dvc_stages_get_sleeping_openmp_threads_unless_the_caller_chose(tmp_path, monkeypatch):
    dvc = tmp_path / "bin" / "dvc"
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    env = _build_env(dvc, tmp_path, None)
    assert env["OMP_WAIT_POLICY"] == "PASSIVE"
    assert env["DVC_NO_ANALYTICS"] == "1" and env["DO_NOT_TRACK"] == "1"
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    assert _build_env(dvc, tmp_path, None)["OMP_WAIT_POLICY"] == "ACTIVE"
    assert "OMP_WAIT_POLICY" not in _build_env(dvc, tmp_path, {"OMP_WAIT_POLICY": None})


# ---------------------------------------------------------------------------------------- scoring


def test_positive_scores_on_one_thread_equal_the_default_threads_bit_for_bit(model):
    X = _frame(5000, 1)
    with threadpool_limits(2, user_api="openmp"):
        expected = model.predict_proba(X)[:, list(model.classes_).index(1)].astype(np.float64)
    got = positive_scores(model, X)
    assert got.dtype == np.float64 and np.array_equal(got, expected)
    empty = positive_scores(model, X.iloc[:0])
    assert empty.dtype == np.float64 and empty.shape == (0,)


def test_the_demo_rescores_the_log_in_one_call_with_the_scores_of_one_call_per_file(tmp_path, model):
    data = Root.open(str(tmp_path / "data"))
    registry = ModelRegistry(data, "m/models")
    number, path = registry.reserve()
    buffer = io.BytesIO()
    joblib.dump(model, buffer)
    data.write_bytes(f"{path}/model.joblib", buffer.getvalue())
    registry.commit(number, {"status": "promoted"})
    registry.promote(number, reason="test")
    days = ["2026-10-04", "2026-10-05", "2026-10-06"]
    for i, day in enumerate(days):
        frame = _frame(700 + 50 * i, 10 + i)
        table = pa.table(
            {
                "id": [f"{day}-{k}" for k in range(len(frame))],
                **{c: frame[c].to_numpy() for c in NUMERICAL},
                "channel": frame["channel"].tolist(),
                "score": np.zeros(len(frame)),
                "model_version": ["v0000"] * len(frame),
            }
        )
        pq.write_table(table, tmp_path / "data" / "part.parquet")
        data.write_bytes(f"m/log/date={day}/part-0.parquet", (tmp_path / "data" / "part.parquet").read_bytes())
    before = {d: pq.read_table(tmp_path / "data" / "m" / "log" / f"date={d}" / "part-0.parquet") for d in days}
    monitor = SimpleNamespace(
        model_registry="m/models", numerical=NUMERICAL, categorical=CATEGORICAL, log="m/log", prediction="score"
    )
    storage = Storage(data=data, assets=data, reports=data)
    rows = serve_champion_from(storage, monitor, dt.date(2026, 10, 5))
    assert rows == 750 + 800
    for day, old in before.items():
        new = pq.read_table(tmp_path / "data" / "m" / "log" / f"date={day}" / "part-0.parquet")
        if day < "2026-10-05":
            assert new.equals(old)  # before the promotion: untouched
            continue
        with threadpool_limits(2, user_api="openmp"):  # the old way: a call per file, all threads
            expected = model.predict_proba(old.select(NUMERICAL + CATEGORICAL).to_pandas())[:, 1]
        assert np.array_equal(new.column("score").to_numpy(), expected)
        assert set(new.column("model_version").to_pylist()) == {"v0001"}
        assert new.drop_columns(["score", "model_version"]).equals(old.drop_columns(["score", "model_version"]))


# ---------------------------------------------------------------------------- the stages' helpers


def _normalize_as_before(df: pd.DataFrame, numerical, categorical) -> pd.DataFrame:
    """``stagelib.normalize_features`` before the shortcut: every present value through ``str``."""
    out = df.copy()
    for col in numerical:
        out[col] = pd.to_numeric(out[col], errors="raise").astype("float64")
    for col in categorical:
        s = out[col]
        if isinstance(s.dtype, pd.CategoricalDtype):
            s = s.astype(object)
        mask = s.notna()
        out[col] = s.astype(object).where(mask, np.nan)
        out.loc[mask, col] = out.loc[mask, col].astype(str)
    return out


def test_normalize_features_equals_str_of_every_value_types_included(stagelib):
    n = 400
    df = pd.DataFrame(
        {
            "num": np.arange(n, dtype="int64"),
            "text": ["a", "b", None, "c"] * (n // 4),
            "mixed": [1, "a", None, 2.5] * (n // 4),
            "ints": np.arange(n) % 3,
            "numpy_str": [np.str_("x"), "y", np.nan, "z"] * (n // 4),
            "categories": pd.Categorical(["p", "q", None, "p"] * (n // 4)),
            "all_missing": [None] * n,
        }
    )
    categorical = ["text", "mixed", "ints", "numpy_str", "categories", "all_missing"]
    got = stagelib.normalize_features(df, ["num"], categorical)
    expected = _normalize_as_before(df, ["num"], categorical)
    pd.testing.assert_frame_equal(got, expected)
    for col in categorical:  # the same Python types, not only equal values (np.str_ -> str)
        assert [type(v) for v in got[col]] == [type(v) for v in expected[col]], col


@pytest.mark.parametrize(
    "values",
    [
        pd.Series(pd.date_range("2026-01-01", periods=5, freq="h", tz="UTC")),
        pd.Series(pd.date_range("2026-01-01", periods=5, freq="h", tz="Europe/Berlin").as_unit("us")),
        pd.Series(pd.date_range("2026-01-01", periods=5, freq="h")),  # naive = UTC
        pd.Series(["2026-01-01T00:00:00Z", "2026-01-02T12:30:00Z", None]),
        pd.Series([pd.Timestamp("2026-01-01"), pd.NaT]),
    ],
)
def test_series_to_utc_equals_to_datetime_then_utc(stagelib, values):
    s = pd.to_datetime(values, utc=False)
    expected = s.dt.tz_localize("UTC") if s.dt.tz is None else s.dt.tz_convert("UTC")
    pd.testing.assert_series_equal(stagelib.series_to_utc(values), expected)


def test_parquet_input_reads_once_and_names_missing_columns_and_bad_files_in_one_line(stagelib, tmp_path):
    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"a": [1, 2], "b": ["x", "y"]}), path)
    with stagelib.ParquetInput(path) as source:
        assert source.names == ["a", "b"]
        pd.testing.assert_frame_equal(source.read(["b"]), pq.read_table(path, columns=["b"]).to_pandas())
    with pytest.raises(stagelib.StageError) as missing:
        stagelib.read_parquet_file(path, ["a", "c"])
    assert str(missing.value) == f"missing required column(s) ['c'] in {path}; available: ['a', 'b']"
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"not parquet")
    with pytest.raises(stagelib.StageError) as broken:
        stagelib.read_parquet_file(bad, ["a"])
    assert str(broken.value).startswith(f"cannot read {bad}: ") and "\n" not in str(broken.value)
