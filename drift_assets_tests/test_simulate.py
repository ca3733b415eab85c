"""Tests of the seeded simulators: layout, determinism, and that the injected truth is really there."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn.metrics import roc_auc_score

from drift_assets.simulate import (
    FraudSimulation,
    LlmSimulation,
    make_model_pipeline,
    refusal_mask,
    simulate_fraud,
    simulate_llm,
)
from drift_assets.simulate.fraud import FEATURES
from drift_assets.simulate.llm import WORDS

SMALL_FRAUD = dict(
    rows_per_week=3000,
    weeks=5,
    drift_week=3,
    label_delay_days=7,
    training_rows=15_000,
    reference_rows=8_000,
    seed=7,
)
TINY_FRAUD = dict(rows_per_week=700, weeks=2, drift_week=2, label_delay_days=3, training_rows=3000, reference_rows=1000)
SMALL_LLM = dict(
    days=3,
    reference_days=2,
    mean_rows_per_hour=120,
    refusal_spike_day=2,
    refusal_spike_hours=(14, 17),
    version_change_day=3,
    version_change_hour=9,
)
UTC = UTC


# --------------------------------------------------------------------------- helpers


@pytest.fixture(scope="module", autouse=True)
def _single_thread():
    """Tiny HistGradientBoosting fits spend their time in OpenMP syncs; on a shared 2-core box one
    thread is several times faster (results are identical either way)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        yield


def _read_dir(root: Path) -> pd.DataFrame:
    """All part files under a partitioned directory, concatenated (partition column not added)."""
    files = sorted(root.glob("*/part-0.parquet"))
    return pa.concat_tables([pq.read_table(f) for f in files]).to_pandas()


def _parquet_files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*.parquet"))}


def _utc(d: date) -> pd.Timestamp:
    return pd.Timestamp(datetime.combine(d, datetime.min.time(), tzinfo=UTC))


# --------------------------------------------------------------------------- fraud fixtures


@pytest.fixture(scope="module")
def fraud(tmp_path_factory: pytest.TempPathFactory) -> tuple[FraudSimulation, Path]:
    base = tmp_path_factory.mktemp("fraud")
    return simulate_fraud(str(base), **SMALL_FRAUD), base


@pytest.fixture(scope="module")
def fraud_frames(fraud) -> dict[str, pd.DataFrame]:
    sim, base = fraud
    log = _read_dir(base / "log")
    labels = _read_dir(base / "labels")
    joined = log.merge(labels[["transaction_id", "is_fraud"]], on="transaction_id", how="left")
    return {
        "log": log,
        "labels": labels,
        "joined": joined,
        "reference": pq.read_table(base / "reference" / "reference.parquet").to_pandas(),
        "training": pq.read_table(base / "reference" / "training.parquet").to_pandas(),
    }


# --------------------------------------------------------------------------- fraud tests


def test_start_must_be_monday(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="Monday"):
        simulate_fraud(str(tmp_path), start=date(2026, 8, 4), **TINY_FRAUD)


def test_fraud_is_deterministic(tmp_path: Path) -> None:
    a = simulate_fraud(str(tmp_path / "a"), seed=3, **TINY_FRAUD)
    simulate_fraud(str(tmp_path / "b"), seed=3, **TINY_FRAUD)
    simulate_fraud(str(tmp_path / "c"), seed=4, **TINY_FRAUD)
    files_a, files_b, files_c = (_parquet_files(tmp_path / k) for k in "abc")
    assert files_a.keys() == files_b.keys() and files_a == files_b
    assert files_a.keys() == files_c.keys()
    assert all(files_a[k] != files_c[k] for k in files_a)
    for k in files_a:
        assert pq.read_table(tmp_path / "a" / k).equals(pq.read_table(tmp_path / "b" / k))
    # Moving the drift leaves the days before it untouched.
    later = dict(TINY_FRAUD, drift_week=3)
    simulate_fraud(str(tmp_path / "d"), seed=3, **later)
    first_day = f"log/date={a.start.isoformat()}/part-0.parquet"
    drift_day = f"log/date={a.drift_start.isoformat()}/part-0.parquet"
    files_d = _parquet_files(tmp_path / "d")
    assert files_d[first_day] == files_a[first_day]
    assert files_d[drift_day] != files_a[drift_day]


def test_fraud_result_and_manifest(fraud) -> None:
    sim, base = fraud
    assert sim.start == date(2026, 8, 3)
    assert sim.end == sim.as_of == date(2026, 8, 3) + timedelta(days=35)
    assert sim.drift_start == date(2026, 8, 17)
    assert sim.week_starts == tuple(date(2026, 8, 3) + timedelta(days=7 * i) for i in range(5))
    assert list(sim.top_features) == [
        "txn_count_1h",
        "txn_count_24h",
        "avg_txn_amount_7d",
        "txn_amount",
        "distance_from_home_km",
    ]
    manifest = json.loads((base / "manifest.json").read_text())
    assert manifest["drift_start"] == "2026-08-17"
    assert manifest["as_of"] == sim.as_of.isoformat()
    assert "card-testing" in manifest["drift_description"]
    assert manifest["numerical"] == list(sim.numerical) and manifest["categorical"] == list(sim.categorical)
    for path in sim.paths.values():
        assert Path(path).exists(), path


def test_fraud_layout_and_schema(fraud, fraud_frames) -> None:
    sim, base = fraud
    days = [sim.start + timedelta(days=i) for i in range((sim.end - sim.start).days)]
    assert sorted(p.name for p in (base / "log").iterdir()) == [f"date={d.isoformat()}" for d in days]
    schema = pq.read_schema(base / "log" / f"date={sim.start.isoformat()}" / "part-0.parquet")
    assert schema.names == ["transaction_id", "timestamp", *FEATURES, "fraud_score", "model_version"]
    assert schema.field("timestamp").type == pa.timestamp("us", tz="UTC")
    assert schema.field("fraud_score").type == pa.float64()
    for name in sim.numerical:
        assert schema.field(name).type in (pa.int64(), pa.float64()), name
    for name in sim.categorical:
        assert schema.field(name).type == pa.string(), name

    log = fraud_frames["log"]
    assert len(log) == 5 * 3000
    assert (log["model_version"] == "v0001").all()
    weekly = log.groupby((log["timestamp"] - _utc(sim.start)).dt.days // 7).size()
    assert (weekly == 3000).all()
    for name in ("customer_segment", "channel", "card_present"):
        assert set(log[name]) <= {"retail", "premium", "business", "student", "web", "mobile", "pos", "yes", "no"}
    assert log["hour_of_day"].between(0, 23).all()
    assert (log["hour_of_day"] == log["timestamp"].dt.hour).all()
    zero_share = (fraud_frames["reference"]["distance_from_home_km"] == 0).mean()
    assert 0.35 < zero_share < 0.45

    ids = pd.concat(
        [log["transaction_id"], fraud_frames["reference"]["transaction_id"], fraud_frames["training"]["transaction_id"]]
    )
    assert ids.is_unique

    training = fraud_frames["training"]
    assert training["timestamp"].max() < _utc(sim.start)
    assert training["timestamp"].min() >= _utc(sim.training_start)
    assert training["is_fraud"].dtype == np.int8
    assert 0.005 < training["is_fraud"].mean() < 0.02


def test_fraud_labels_are_delayed_and_pending(fraud, fraud_frames) -> None:
    sim, base = fraud
    labels = fraud_frames["labels"]
    log = fraud_frames["log"].set_index("transaction_id")
    assert labels["transaction_id"].is_unique
    assert labels["is_fraud"].dtype == np.int8
    assert str(labels["label_arrived_at"].dt.tz) == "UTC"
    ts = log.loc[labels["transaction_id"], "timestamp"].to_numpy()
    delay = labels["label_arrived_at"].to_numpy() - ts
    assert (delay >= np.timedelta64(sim.label_delay_days, "D")).all()
    assert (delay < np.timedelta64(sim.label_delay_days + 3, "D")).all()
    assert (labels["label_arrived_at"] < _utc(sim.as_of)).all()
    for part in (base / "labels").iterdir():
        arrived = pq.read_table(part / "part-0.parquet").to_pandas()["label_arrived_at"]
        assert (arrived.dt.date.astype(str) == part.name.removeprefix("arrived=")).all()
    # The last days are still waiting for their labels.
    pending = log.index.difference(labels["transaction_id"])
    assert log.loc[pending, "timestamp"].min() >= _utc(sim.as_of - timedelta(days=sim.label_delay_days + 3))
    assert log.loc[log["timestamp"] >= _utc(sim.as_of - timedelta(days=sim.label_delay_days))].index.isin(pending).all()


def test_fraud_drift_is_real(fraud, fraud_frames) -> None:
    sim, _ = fraud
    log, ref = fraud_frames["log"], fraud_frames["reference"]
    drifted = log["timestamp"] >= _utc(sim.drift_start)
    before, after = log[~drifted], log[drifted]

    count_before = np.mean(before["txn_count_1h"].to_numpy())
    count_after = np.mean(after["txn_count_1h"].to_numpy())
    assert abs(count_before - np.mean(ref["txn_count_1h"].to_numpy())) < 0.1
    assert count_after > count_before + 1.5

    digital_before = np.mean(before["merchant_category"].to_numpy() == "digital_goods")
    digital_after = np.mean(after["merchant_category"].to_numpy() == "digital_goods")
    assert digital_after - digital_before >= 0.08
    assert np.median(after["txn_amount"]) < np.median(before["txn_amount"])
    assert np.mean(after["channel"] == "web") > np.mean(before["channel"] == "web") + 0.1

    # Stationary weeks look like the reference, drifted ones do not.
    assert abs(before["fraud_score"].mean() - ref["fraud_score"].mean()) < 0.004
    assert after["fraud_score"].mean() > 1.5 * before["fraud_score"].mean()


def test_champion_degrades_and_retraining_helps(fraud, fraud_frames) -> None:
    sim, base = fraud
    labelled = fraud_frames["joined"].dropna(subset=["is_fraud"]).sort_values("timestamp")
    drifted = labelled["timestamp"] >= _utc(sim.drift_start)
    pre, post = labelled[~drifted], labelled[drifted]
    assert post["is_fraud"].mean() > 2 * pre["is_fraud"].mean()
    auc_pre = roc_auc_score(pre["is_fraud"], pre["fraud_score"])
    auc_post = roc_auc_score(post["is_fraud"], post["fraud_score"])
    assert auc_pre - auc_post > 0.02, (auc_pre, auc_post)

    champion = joblib.load(base / "models" / "versions" / "v0001" / "model.joblib")
    ref = fraud_frames["reference"]
    np.testing.assert_allclose(champion.predict_proba(ref[list(FEATURES)])[:, 1], ref["fraud_score"])

    # A challenger that saw half of the labelled drift beats the champion on the other half.
    half = len(post) // 2
    train = pd.concat([fraud_frames["training"], post.iloc[:half]])
    challenger = make_model_pipeline(sim.numerical, sim.categorical, seed=1)
    challenger.fit(train[list(FEATURES)], train["is_fraud"].astype(int))
    test = post.iloc[half:]
    auc_champion = roc_auc_score(test["is_fraud"], test["fraud_score"])
    auc_challenger = roc_auc_score(test["is_fraud"], challenger.predict_proba(test[list(FEATURES)])[:, 1])
    assert auc_challenger > auc_champion + 0.02, (auc_champion, auc_challenger)


def test_champion_registry_files(fraud) -> None:
    sim, base = fraud
    pointer = json.loads((base / "models" / "champion.json").read_text())
    assert pointer == {"version": 1, "name": "v0001"}
    meta = json.loads((base / "models" / "versions" / "v0001" / "metadata.json").read_text())
    training_bytes = (base / "reference" / "training.parquet").read_bytes()
    assert meta["training_data_sha256"] == hashlib.sha256(training_bytes).hexdigest()
    assert meta["status"] == "promoted" and meta["parent"] is None and meta["trigger"] is None
    assert 0.75 < meta["auc_reference"] == pytest.approx(sim.auc_reference)
    assert not list((base / "models").rglob("*.tmp"))


# --------------------------------------------------------------------------- llm


@pytest.fixture(scope="module")
def llm(tmp_path_factory: pytest.TempPathFactory) -> tuple[LlmSimulation, Path, pd.DataFrame]:
    base = tmp_path_factory.mktemp("llm")
    sim = simulate_llm(str(base), **SMALL_LLM)
    log = _read_dir(base / "log")
    log["refusal"] = refusal_mask(pa.array(log["output"]))
    log["words"] = log["output"].str.split().str.len()
    return sim, base, log


def test_llm_layout_schema_and_manifest(llm) -> None:
    sim, base, log = llm
    assert sorted(p.name for p in (base / "log").iterdir()) == ["date=2026-10-05", "date=2026-10-06", "date=2026-10-07"]
    table = pq.read_table(base / "log" / "date=2026-10-05" / "part-0.parquet")
    assert table.schema.names == ["timestamp", "request_id", "model_version", "prompt", "output", "latency_ms"]
    assert table.schema.field("timestamp").type == pa.timestamp("us", tz="UTC")
    assert table.schema.field("latency_ms").type == pa.float64()
    assert log["request_id"].is_unique
    table.column("output").combine_chunks().validate(full=True)
    assert log["output"].str.len().min() > 0 and log["prompt"].str.endswith("?").all()
    ref = pq.read_table(base / "reference" / "reference.parquet").to_pandas()
    assert ref["timestamp"].min() >= _utc(date(2026, 10, 3)) and ref["timestamp"].max() < _utc(date(2026, 10, 5))
    assert (ref["model_version"] == "chat-v3").all()

    assert sim.refusal_spike_start == "2026-10-06T14:00:00+00:00"
    assert sim.refusal_spike_end == "2026-10-06T17:00:00+00:00"
    assert sim.version_change_at == "2026-10-07T09:00:00+00:00"
    manifest = json.loads((base / "manifest.json").read_text())
    assert [i["start"] for i in manifest["incidents"]] == [sim.refusal_spike_start, sim.version_change_at]
    assert manifest["incidents"][1]["end"] == "2026-10-08T00:00:00+00:00"


def test_llm_hourly_seasonality(llm) -> None:
    _, _, log = llm
    per_hour = log.groupby(log["timestamp"].dt.floor("h")).size()
    by_hour_of_day = per_hour.groupby(per_hour.index.hour).mean()
    assert by_hour_of_day.loc[[2, 3, 4]].mean() < 0.2 * by_hour_of_day.loc[[12, 13, 14]].mean()
    # Length does not depend on the hour (day 1 has no incident).
    day1 = log[log["timestamp"] < _utc(date(2026, 10, 6))]
    night = day1.loc[day1["timestamp"].dt.hour < 8, "words"].median()
    afternoon = day1.loc[day1["timestamp"].dt.hour.between(12, 18), "words"].median()
    assert abs(night / afternoon - 1) < 0.15


def test_llm_refusal_spike(llm) -> None:
    sim, _, log = llm
    start, end = pd.Timestamp(sim.refusal_spike_start), pd.Timestamp(sim.refusal_spike_end)
    spike = (log["timestamp"] >= start) & (log["timestamp"] < end)
    assert log.loc[spike, "refusal"].mean() >= 0.25
    assert log.loc[~spike, "refusal"].mean() <= 0.05
    assert log.loc[spike, "prompt"].str.contains("instructions", case=False).mean() > 0.2
    assert not any(w.lower() in {"sorry", "cannot", "can't", "won't", "unable", "i", "i'm"} for w in WORDS)
    samples = ["I CAN'T HELP WITH THAT!", "i'm sorry, but i cannot assist with that request", "Here is a plan."]
    assert refusal_mask(samples).tolist() == [True, True, False]


def test_llm_length_collapse(llm) -> None:
    sim, _, log = llm
    after = log["timestamp"] >= pd.Timestamp(sim.version_change_at)
    assert (log.loc[after, "model_version"] == "chat-v4").all()
    assert (log.loc[~after, "model_version"] == "chat-v3").all()
    assert log.loc[after, "words"].median() < 0.4 * log.loc[~after, "words"].median()
    assert log.loc[after, "output"].str.len().median() < 0.4 * log.loc[~after, "output"].str.len().median()


def test_llm_is_deterministic(tmp_path: Path) -> None:
    tiny = dict(SMALL_LLM, mean_rows_per_hour=20, reference_days=1)
    simulate_llm(str(tmp_path / "a"), seed=5, **tiny)
    simulate_llm(str(tmp_path / "b"), seed=5, **tiny)
    simulate_llm(str(tmp_path / "c"), seed=6, **tiny)
    a, b, c = (_parquet_files(tmp_path / k) for k in "abc")
    assert a == b
    assert a.keys() == c.keys() and all(a[k] != c[k] for k in a)


def test_llm_rejects_incident_outside_log(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        simulate_llm(str(tmp_path), **dict(SMALL_LLM, version_change_day=4))


def test_simulators_write_through_any_pyarrow_filesystem(tmp_path: Path) -> None:
    """The same code path later writes to S3: here a sub-tree filesystem with relative paths."""
    from pyarrow.fs import LocalFileSystem, SubTreeFileSystem

    fs = SubTreeFileSystem(str(tmp_path), LocalFileSystem())
    sim = simulate_fraud("sims/fraud", filesystem=fs, seed=3, **TINY_FRAUD)
    assert sim.paths["champion_model"] == "sims/fraud/models/versions/v0001/model.joblib"
    assert (tmp_path / "sims/fraud/models/versions/v0001/model.joblib").exists()
    assert (tmp_path / "sims/fraud/manifest.json").exists()
    simulate_llm("sims/llm", filesystem=fs, **dict(SMALL_LLM, mean_rows_per_hour=10, reference_days=1))
    assert len(list((tmp_path / "sims/llm/log").iterdir())) == 3
