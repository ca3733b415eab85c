"""End-to-end tests of the retraining DVC pipeline (training/) driven by drift_assets.retrain.

These run real `dvc repro` subprocesses from the separate DVC virtualenv
($DRIFT_ASSETS_DVC, default <repo>/.venv-dvc/bin/dvc) on small synthetic data.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

from drift_assets.retraining.dvc_runner import (
    DvcReproError,
    DvcRunResult,
    prepare_workdir,
    raise_for_failure,
    resolve_dvc_executable,
    run_dvc_repro,
)

REPO = Path(__file__).resolve().parents[1]
TEMPLATE = REPO / "training"
DVC = os.environ.get("DRIFT_ASSETS_DVC") or str(REPO / ".venv-dvc" / "bin" / "dvc")

pytestmark = pytest.mark.skipif(
    not Path(DVC).is_file(),
    reason=f"DVC executable {DVC} not found (create it with `make .venv-dvc` or set DRIFT_ASSETS_DVC)",
)
pytestmark = [pytestmark, pytest.mark.slow]  # real `dvc repro` runs

NUMERICAL = ["amount", "account_age_days", "txn_count_24h"]
CATEGORICAL = ["merchant_category"]
FEATURES = NUMERICAL + CATEGORICAL
CATEGORY_EFFECT = {"grocery": -0.6, "fuel": -0.3, "travel": 0.3, "online": 0.6, "electronics": 0.9}
NEW_CATEGORY = "crypto"  # the pattern the champion has never seen

LOG_START = pd.Timestamp("2024-01-01T00:00:00Z")
LOG_DAYS = 42
ROWS_PER_DAY = 200
CUTOFF = pd.Timestamp("2024-02-05T12:00:00Z")  # mid-partition, to check the exact comparison
ENV = {"OMP_NUM_THREADS": "1"}  # shared CI cores


# --------------------------------------------------------------------------------------------
# Synthetic data
# --------------------------------------------------------------------------------------------


def _features(rng: np.random.Generator, n: int, new_pattern_share: float = 0.0) -> pd.DataFrame:
    cats = np.array(list(CATEGORY_EFFECT))
    category = rng.choice(cats, size=n).astype(object)
    if new_pattern_share:
        category[rng.random(n) < new_pattern_share] = NEW_CATEGORY
    return pd.DataFrame(
        {
            "amount": np.round(rng.lognormal(3.5, 1.0, n), 2),
            "account_age_days": rng.uniform(0, 3000, n).round(),
            "txn_count_24h": rng.poisson(2.0, n).astype("int64"),
            "merchant_category": category,
        }
    )


def _fraud(rng: np.random.Generator, X: pd.DataFrame) -> np.ndarray:
    effect = X["merchant_category"].map({**CATEGORY_EFFECT, NEW_CATEGORY: 3.5}).to_numpy(float)
    z = (
        -2.0
        + 0.9 * (np.log(X["amount"].to_numpy()) - 3.5)
        - 0.0008 * X["account_age_days"].to_numpy()
        + 0.35 * (X["txn_count_24h"].to_numpy() - 2)
        + effect
    )
    return (rng.random(len(X)) < 1 / (1 + np.exp(-z))).astype("int8")


def _fit_champion(X: pd.DataFrame, y: np.ndarray) -> Pipeline:
    pre = ColumnTransformer(
        [("cat", OneHotEncoder(handle_unknown="ignore"), CATEGORICAL), ("num", "passthrough", NUMERICAL)]
    )
    model = Pipeline(
        [("features", pre), ("model", HistGradientBoostingClassifier(max_iter=100, learning_rate=0.1, random_state=0))]
    )
    return model.fit(X[FEATURES], y)


def _write_log_and_labels(root: Path, rng: np.random.Generator, new_pattern_share: float, *, all_negative=False):
    n = LOG_DAYS * ROWS_PER_DAY
    X = _features(rng, n, new_pattern_share)
    y = _fraud(rng, X)
    if all_negative:
        y[:] = 0
    day = np.repeat(np.arange(LOG_DAYS), ROWS_PER_DAY)
    seconds = rng.integers(0, 86400, n)
    ts = LOG_START + pd.to_timedelta(day, unit="D") + pd.to_timedelta(seconds, unit="s")
    log = X.copy()
    log.insert(0, "transaction_id", [f"tx-{root.name}-{i:06d}" for i in range(n)])
    log.insert(1, "timestamp", pd.DatetimeIndex(ts).as_unit("us"))
    log["fraud_score"] = rng.random(n)
    log["model_version"] = "champion-v1"
    for date, part in log.groupby(log["timestamp"].dt.strftime("%Y-%m-%d")):
        d = root / "log" / f"date={date}"
        d.mkdir(parents=True)
        part.to_parquet(d / "part-0.parquet", index=False)

    # Labels: 85% of transactions get one, 0.25 + Exp(3) days later; 3% first get a wrong
    # label that is corrected one day later (the latest label must win).
    labelled = rng.random(n) < 0.85
    delay = pd.to_timedelta(0.25 + rng.exponential(3.0, n), unit="D")
    arrived = pd.DatetimeIndex(ts) + delay
    labels = pd.DataFrame({"transaction_id": log["transaction_id"], "is_fraud": y, "label_arrived_at": arrived})[
        labelled
    ]
    corrected = labels.sample(frac=0.03, random_state=1)
    wrong = corrected.assign(
        is_fraud=(1 - corrected["is_fraud"]).astype("int8"),
        label_arrived_at=corrected["label_arrived_at"] - pd.Timedelta(days=1),
    )
    labels = pd.concat([labels, wrong], ignore_index=True)
    labels["is_fraud"] = labels["is_fraud"].astype("int8")
    labels["label_arrived_at"] = labels["label_arrived_at"].dt.as_unit("us")
    for date, part in labels.groupby(labels["label_arrived_at"].dt.strftime("%Y-%m-%d")):
        d = root / "labels" / f"arrived={date}"
        d.mkdir(parents=True)
        part.to_parquet(d / "part-0.parquet", index=False)
    return log, labels


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, Path]:
    """Reference + champion (no new pattern) and two production scenarios:
    `drift` (25% of transactions in a new, very risky merchant category) and `stable`."""
    root = tmp_path_factory.mktemp("inputs")
    rng = np.random.default_rng(7)
    # A strong champion: fit on plenty of reference-distribution data.
    X_fit = _features(rng, 12000)
    champion = _fit_champion(X_fit, _fraud(rng, X_fit))
    joblib.dump(champion, root / "champion.joblib")

    ref = _features(rng, 4000)
    ref["is_fraud"] = _fraud(rng, ref)
    ref["prediction"] = champion.predict_proba(ref[FEATURES])[:, 1]
    ref.insert(0, "transaction_id", [f"ref-{i:06d}" for i in range(len(ref))])
    ref.to_parquet(root / "reference.parquet", index=False)

    out = {"root": root, "reference": root / "reference.parquet", "champion": root / "champion.joblib"}
    scenarios = (("drift", 0.25, False, 11), ("stable", 0.0, False, 12), ("negatives", 0.0, True, 13))
    for name, share, all_neg, seed in scenarios:
        d = root / name
        d.mkdir()
        _write_log_and_labels(d, np.random.default_rng(seed), share, all_negative=all_neg)
        out[f"{name}_log"] = d / "log"
        out[f"{name}_labels"] = d / "labels"
    return out


def _params(inputs, scenario: str = "drift", **overrides) -> dict:
    params = {
        "data": {
            "reference": inputs["reference"],
            "log": inputs[f"{scenario}_log"],
            "labels": inputs[f"{scenario}_labels"],
            "champion_model": inputs["champion"],
        },
        "columns": {
            "id": "transaction_id",
            "timestamp": "timestamp",
            "target": "is_fraud",
            "numerical": NUMERICAL,
            "categorical": CATEGORICAL,
        },
        "window": {"cutoff": CUTOFF.to_pydatetime(), "labels_as_of": None},
        "split": {"holdout_weeks": 2, "holdout_fraction": 0.3},
        "seed": 1,
        "model": {"max_iter": 100, "learning_rate": 0.1},
    }
    for dotted, value in overrides.items():
        node = params
        *parents, leaf = dotted.split("__")
        for p in parents:
            node = node[p]
        node[leaf] = value
    return params


def _run(tmp_path_factory, name: str, params: dict) -> DvcRunResult:
    workdir = prepare_workdir(TEMPLATE, tmp_path_factory.mktemp(name) / "work", params)
    return run_dvc_repro(workdir, dvc_executable=DVC, timeout_s=300, extra_env=ENV)


@pytest.fixture(scope="module")
def drift_run(inputs, tmp_path_factory) -> DvcRunResult:
    # Point-in-time run: only labels that had arrived by the cutoff.
    return _run(tmp_path_factory, "drift", _params(inputs, "drift", window__labels_as_of=CUTOFF.isoformat()))


# --------------------------------------------------------------------------------------------
# prepare_workdir / executable resolution (no dvc subprocess)
# --------------------------------------------------------------------------------------------


def test_prepare_workdir_copies_template_and_merges_params(tmp_path, inputs):
    # A template that was run by hand: caches, outputs and bytecode must not be copied.
    template = tmp_path / "template"
    shutil.copytree(TEMPLATE, template)
    for junk in (
        "src/__pycache__/x.pyc",
        ".dvc/cache/files/md5/ab/cd",
        ".dvc/tmp/btime",
        "dvc.lock",
        "prepared/train.parquet",
        "model/model.joblib",
        "metrics.json",
    ):
        (template / junk).parent.mkdir(parents=True, exist_ok=True)
        (template / junk).write_text("junk")
    workdir = prepare_workdir(template, tmp_path / "w", _params(inputs, seed=5))
    files = sorted(str(p.relative_to(workdir)) for p in workdir.rglob("*") if p.is_file())
    assert files == [
        ".dvc/.gitignore",
        ".dvc/config",
        ".dvcignore",
        "dvc.yaml",
        "params.yaml",
        "src/evaluate.py",
        "src/prepare.py",
        "src/stagelib.py",
        "src/train.py",
    ]
    assert "no_scm = True" in (workdir / ".dvc" / "config").read_text()
    params = yaml.safe_load((workdir / "params.yaml").read_text())
    defaults = yaml.safe_load((TEMPLATE / "params.yaml").read_text())
    assert params["seed"] == 5
    assert params["data"]["log"] == str(inputs["drift_log"])
    assert params["window"]["cutoff"] == "2024-02-05T12:00:00Z"
    assert params["split"] == defaults["split"]
    assert params["columns"]["numerical"] == NUMERICAL

    # Deep update keeps untouched defaults.
    w2 = prepare_workdir(TEMPLATE, tmp_path / "w2", {"model": {"max_iter": 7}})
    p2 = yaml.safe_load((w2 / "params.yaml").read_text())
    assert p2["model"] == {**defaults["model"], "max_iter": 7}
    assert p2["data"] == defaults["data"]

    with pytest.raises(FileExistsError):
        prepare_workdir(TEMPLATE, tmp_path / "w", {})
    with pytest.raises(KeyError, match="window.cuttoff"):
        prepare_workdir(TEMPLATE, tmp_path / "w3", {"window": {"cuttoff": "2024-01-01"}})


def test_missing_dvc_executable_is_a_clear_error(tmp_path):
    missing = tmp_path / "nope" / "bin" / "dvc"
    with pytest.raises(FileNotFoundError, match=r"make \.venv-dvc") as exc:
        resolve_dvc_executable(str(missing))
    assert str(missing) in str(exc.value)
    (tmp_path / "w").mkdir()
    with pytest.raises(FileNotFoundError, match=str(missing)):
        run_dvc_repro(tmp_path / "w", dvc_executable=str(missing))


# --------------------------------------------------------------------------------------------
# Real `dvc repro` runs
# --------------------------------------------------------------------------------------------


def test_full_repro_produces_model_metrics_and_lock(drift_run):
    r = drift_run
    assert r.returncode == 0, r.stderr_tail
    wd = r.workdir
    assert (wd / "model" / "model.joblib").is_file()
    assert r.model_path == wd / "model" / "model.joblib"
    assert (wd / "dvc.lock").is_file()
    assert r.lock_sha256 and len(r.lock_sha256) == 64
    assert r.metrics == json.loads((wd / "metrics.json").read_text())
    m = r.metrics
    assert set(m) == {"challenger_auc", "champion_auc", "auc_delta", "holdout_rows", "holdout_positives", "train_rows"}
    assert 0.0 <= m["challenger_auc"] <= 1.0 and 0.0 <= m["champion_auc"] <= 1.0
    assert m["auc_delta"] == pytest.approx(m["challenger_auc"] - m["champion_auc"])
    assert m["holdout_rows"] >= 50 and 0 < m["holdout_positives"] < m["holdout_rows"]

    lock = yaml.safe_load((wd / "dvc.lock").read_text())
    assert set(lock["stages"]) == {"prepare", "train", "evaluate"}
    dep_paths = {d["path"] for d in lock["stages"]["prepare"]["deps"]}
    assert str(drift_run.workdir) not in str(dep_paths)  # inputs are external, absolute deps
    assert any(p.endswith("/log") for p in dep_paths) and any(p.endswith("/labels") for p in dep_paths)
    assert lock["stages"]["prepare"]["params"]["params.yaml"]["seed"] == 1
    # Everything DVC keeps stays inside the work dir.
    assert (wd / ".dvc" / "tmp" / "site_cache").is_dir()

    # A second repro in the same dir is a no-op and leaves dvc.lock untouched.
    again = run_dvc_repro(wd, dvc_executable=DVC, extra_env=ENV)
    assert again.returncode == 0, again.stderr_tail
    assert again.lock_sha256 == r.lock_sha256
    assert again.metrics == r.metrics


def test_challenger_wins_when_production_has_a_new_pattern(drift_run):
    m = drift_run.metrics
    assert m is not None, drift_run.stderr_tail
    assert m["challenger_auc"] > m["champion_auc"] + 0.03, m


def test_challenger_not_clearly_better_without_drift(inputs, tmp_path_factory):
    r = _run(tmp_path_factory, "stable", _params(inputs, "stable"))
    raise_for_failure(r)
    m = r.metrics
    assert abs(m["auc_delta"]) < 0.04, m
    assert m["challenger_auc"] <= m["champion_auc"] + 0.02, m


@pytest.mark.parametrize(
    ("case", "overrides", "expected"),
    [
        (
            "missing_column",
            {"columns__numerical": [*NUMERICAL, "device_score"]},
            r"missing required column\(s\) \['device_score'\]",
        ),
        ("single_class", {"data__labels": "negatives_labels", "data__log": "negatives_log"}, "single class"),
        ("small_holdout", {"split__holdout_weeks": 0.02}, r"holdout has \d+ rows \(< 50\)"),
    ],
    ids=["missing_column", "single_class", "small_holdout"],
)
def test_failing_stage_is_reported(inputs, tmp_path_factory, case, overrides, expected):
    overrides = {k: (inputs[v] if isinstance(v, str) and v in inputs else v) for k, v in overrides.items()}
    r = _run(tmp_path_factory, case, _params(inputs, "drift", **overrides))
    assert r.returncode != 0
    assert not r.ok
    assert r.metrics is None
    assert not (r.workdir / "model" / "model.joblib").exists()
    assert r.model_path is None
    assert "ERROR [prepare]" in r.stderr_tail
    assert re.search(expected, r.stderr_tail), r.stderr_tail
    assert len(r.stderr_tail.splitlines()) <= 40
    with pytest.raises(DvcReproError) as exc:
        raise_for_failure(r)
    assert r.stderr_tail in str(exc.value)
    assert exc.value.result is r


def test_prepare_respects_cutoff_and_label_arrival(drift_run, inputs):
    raise_for_failure(drift_run)
    wd = drift_run.workdir
    train = pd.read_parquet(wd / "prepared" / "train.parquet")
    holdout = pd.read_parquet(wd / "prepared" / "holdout.parquet")
    summary = json.loads((wd / "prepared" / "summary.json").read_text())

    log = pd.read_parquet(inputs["drift_log"])  # hive partitions: adds a `date` column
    labels = pd.read_parquet(inputs["drift_labels"])
    arrived = labels[labels["label_arrived_at"] < CUTOFF]
    latest = arrived.sort_values("label_arrived_at").drop_duplicates("transaction_id", keep="last")
    expected = log[log["timestamp"] < CUTOFF].merge(latest, on="transaction_id", how="inner")
    expected = expected.set_index("transaction_id")

    prod_train = train[train["source"] == "production"]
    used = pd.concat([prod_train, holdout], ignore_index=True)
    assert (holdout["source"] == "production").all()
    # Nothing at/after the cutoff, nothing without a label that had arrived by labels_as_of.
    assert (used["timestamp"] < CUTOFF).all()
    assert set(used["transaction_id"]) == set(expected.index)
    assert used["transaction_id"].is_unique
    assert not set(holdout["transaction_id"]) & set(prod_train["transaction_id"])
    # The rows carry the latest label and the logged features.
    got = used.set_index("transaction_id").loc[expected.index]
    assert (got["is_fraud"].to_numpy() == expected["is_fraud"].to_numpy()).all()
    np.testing.assert_allclose(got["amount"].to_numpy(), expected["amount"].to_numpy())
    assert (got["merchant_category"].to_numpy() == expected["merchant_category"].to_numpy()).all()
    # Log rows that are at/after the cutoff or unlabelled exist, and were excluded.
    assert (log["timestamp"] >= CUTOFF).any()
    assert (~log["transaction_id"].isin(labels["transaction_id"])).any()
    late_labels = set(labels.loc[labels["label_arrived_at"] >= CUTOFF, "transaction_id"]) - set(
        latest["transaction_id"]
    )
    assert late_labels and not late_labels & set(used["transaction_id"])

    # Holdout: the requested fraction of the last two weeks' labelled rows.
    holdout_start = CUTOFF - pd.Timedelta(weeks=2)
    assert (holdout["timestamp"] >= holdout_start).all()
    candidates = int((expected["timestamp"] >= holdout_start).sum())
    assert len(holdout) == round(0.3 * candidates)
    # Train = all reference rows + the other production rows.
    ref = pd.read_parquet(inputs["reference"])
    assert (train["source"] == "reference").sum() == len(ref)
    assert summary["train"]["rows"] == len(train) == drift_run.metrics["train_rows"]
    assert summary["holdout"]["rows"] == len(holdout) == drift_run.metrics["holdout_rows"]
    assert summary["production"]["labelled_rows"] == len(expected)
    assert summary["production"]["rows_at_or_after_cutoff_ignored"] == int((log["timestamp"] >= CUTOFF).sum())


def test_two_workdirs_run_independently(inputs, tmp_path_factory):
    pa = _params(inputs, "drift", seed=11)
    pb = _params(inputs, "drift", seed=12, split__holdout_fraction=0.4, model__learning_rate=0.05)
    with ThreadPoolExecutor(max_workers=2) as pool:
        fa = pool.submit(_run, tmp_path_factory, "indep_a", pa)
        fb = pool.submit(_run, tmp_path_factory, "indep_b", pb)
        a, b = fa.result(), fb.result()
    raise_for_failure(a)
    raise_for_failure(b)
    assert a.workdir != b.workdir
    assert a.lock_sha256 != b.lock_sha256
    assert a.metrics != b.metrics
    assert b.metrics["holdout_rows"] > a.metrics["holdout_rows"]
    assert (a.workdir / "model" / "model.joblib").read_bytes() != (b.workdir / "model" / "model.joblib").read_bytes()
    for r, p in ((a, pa), (b, pb)):
        lock = yaml.safe_load((r.workdir / "dvc.lock").read_text())
        assert lock["stages"]["train"]["params"]["params.yaml"]["seed"] == p["seed"]
        assert lock["stages"]["train"]["params"]["params.yaml"]["model"]["learning_rate"] == p["model"]["learning_rate"]


def test_prepare_accepts_features_packed_in_a_struct_column(inputs, tmp_path):
    """The production log may carry the features as one struct column named `features`."""
    import subprocess

    import pyarrow as pa
    import pyarrow.parquet as pq

    packed = tmp_path / "packed_log"
    for part in sorted(Path(inputs["drift_log"]).glob("date=*/part-0.parquet")):
        t = pq.read_table(part)
        struct = pa.StructArray.from_arrays([t.column(c).combine_chunks() for c in FEATURES], FEATURES)
        out = pa.table(
            {
                "transaction_id": t.column("transaction_id"),
                "timestamp": t.column("timestamp"),
                "features": struct,
                "fraud_score": t.column("fraud_score"),
                "model_version": t.column("model_version"),
            }
        )
        (packed / part.parent.name).mkdir(parents=True)
        pq.write_table(out, packed / part.parent.name / "part-0.parquet")

    python = str(Path(DVC).parent / "python")  # run the stage script alone, as dvc would
    prepared = {}
    for name, log_dir in (("flat", inputs["drift_log"]), ("packed", packed)):
        wd = prepare_workdir(TEMPLATE, tmp_path / name, _params(inputs, "drift", data__log=log_dir))
        proc = subprocess.run([python, "src/prepare.py"], cwd=wd, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        prepared[name] = [pd.read_parquet(wd / "prepared" / f) for f in ("train.parquet", "holdout.parquet")]
    for flat, packed_df in zip(prepared["flat"], prepared["packed"], strict=False):
        pd.testing.assert_frame_equal(flat, packed_df)


def test_timeout_kills_the_run_and_returns_a_result(inputs, tmp_path):
    workdir = prepare_workdir(TEMPLATE, tmp_path / "w", _params(inputs, "drift"))
    r = run_dvc_repro(workdir, dvc_executable=DVC, timeout_s=0.5, extra_env=ENV)
    assert r.timed_out and r.returncode != 0 and r.metrics is None
    assert "timed out" in r.stderr_tail
    assert r.duration_s < 30
    with pytest.raises(DvcReproError, match="timed out"):
        raise_for_failure(r)


def test_holdout_anchor_latest_label(inputs, tmp_path):
    """Label feeds slower than holdout_weeks: anchor the holdout at the newest labelled row."""
    import subprocess

    as_of = CUTOFF - pd.Timedelta(days=10)  # the last 10 days before the cutoff have no labels yet
    params = _params(inputs, "drift", window__labels_as_of=as_of.isoformat(), split__holdout_anchor="latest_label")
    wd = prepare_workdir(TEMPLATE, tmp_path / "w", params)
    python = str(Path(DVC).parent / "python")
    proc = subprocess.run([python, "src/prepare.py"], cwd=wd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((wd / "prepared" / "summary.json").read_text())
    holdout = pd.read_parquet(wd / "prepared" / "holdout.parquet")
    end = pd.Timestamp(summary["holdout_end"])
    assert end < as_of and end == pd.Timestamp(summary["production"]["labelled_timestamp_range"]["max"])
    assert (holdout["timestamp"] >= end - pd.Timedelta(weeks=2)).all() and (holdout["timestamp"] <= end).all()
    assert len(holdout) >= 50
