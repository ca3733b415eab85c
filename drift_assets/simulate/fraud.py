"""Seeded simulator of a card-fraud model in production, with an injected drift.

Why a simulator: monitoring code needs data whose truth is known. Every week
before ``drift_week`` comes from exactly the same generator as the reference
sample (so a correct monitor stays quiet), and from ``drift_start`` on a
card-testing fraud wave changes features, predictions and model quality in
documented ways (so a correct monitor fires, and retraining helps).

Randomness is split into independent streams keyed by ``(seed, stream, day)``:
a given day's rows do not depend on how many days or weeks were simulated, and
changing ``drift_week`` leaves the pre-drift days byte-identical.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.fs as pafs

from drift_assets.simulate import _io
from drift_assets.storage.root import sha256_of

NUMERICAL: tuple[str, ...] = (
    "txn_amount",
    "avg_txn_amount_7d",
    "amount_to_avg_ratio",
    "txn_count_1h",
    "txn_count_24h",
    "distinct_merchants_7d",
    "account_age_days",
    "distance_from_home_km",
    "failed_logins_24h",
    "merchant_risk_score",
    "hour_of_day",
)
CATEGORICAL: tuple[str, ...] = ("customer_segment", "merchant_category", "channel", "card_present")
FEATURES: tuple[str, ...] = NUMERICAL + CATEGORICAL
TOP_FEATURES: tuple[str, ...] = (
    "txn_count_1h",
    "txn_count_24h",
    "avg_txn_amount_7d",
    "txn_amount",
    "distance_from_home_km",
)
INT_FEATURES = frozenset(
    {
        "txn_count_1h",
        "txn_count_24h",
        "distinct_merchants_7d",
        "account_age_days",
        "failed_logins_24h",
        "hour_of_day",
    }
)
ID_COLUMN = "transaction_id"
TIMESTAMP_COLUMN = "timestamp"
LABEL_COLUMN = "is_fraud"
PREDICTION_COLUMN = "fraud_score"
MODEL_VERSION_COLUMN = "model_version"
LABEL_ARRIVED_COLUMN = "label_arrived_at"
CHAMPION_NAME = "v0001"

SEGMENTS = np.array(["retail", "premium", "business", "student"])
SEGMENT_P = np.array([0.55, 0.15, 0.15, 0.15])
# Log-mean of the 7-day average ticket per segment (retail ≈ 45, premium ≈ 100 ...).
SEGMENT_LOG_AVG = np.array([3.8, 4.6, 4.9, 3.2])
SEGMENT_AGE_DAYS = np.array([900.0, 1500.0, 1200.0, 350.0])
SEGMENT_COUNT_24H = np.array([2.5, 3.0, 4.5, 3.0])

MERCHANT_CATEGORIES = np.array(
    ["grocery", "restaurants", "fuel", "retail", "travel", "entertainment", "digital_goods", "utilities"]
)
MERCHANT_P = np.array([0.22, 0.16, 0.10, 0.18, 0.06, 0.08, 0.08, 0.12])
DIGITAL_GOODS = int(np.flatnonzero(MERCHANT_CATEGORIES == "digital_goods")[0])
CHANNELS = np.array(["pos", "web", "mobile"])
POS, WEB, MOBILE = 0, 1, 2

# Traffic shape, identical every week: Monday..Sunday volume and hourly profiles.
WEEKDAY_WEIGHTS = np.array([1.00, 0.98, 1.00, 1.03, 1.12, 0.97, 0.85])

# Intercept tuned offline so that the pre-drift fraud rate is ~1%.
BASE_INTERCEPT = -7.42
# Card-testing wave (drift): share of traffic and intercept tuned for ~12% fraud inside it.
WAVE_SHARE = 0.35
WAVE_INTERCEPT = -6.74

STREAM_TRAINING, STREAM_REFERENCE, STREAM_LOG, STREAM_WAVE, STREAM_LABELS = 1, 2, 3, 4, 5


@dataclass(frozen=True)
class FraudSimulation:
    """What was written and when the drift starts: the single source of truth for callers."""

    base: str
    start: date
    end: date
    drift_start: date
    as_of: date
    week_starts: tuple[date, ...]
    numerical: tuple[str, ...]
    categorical: tuple[str, ...]
    top_features: tuple[str, ...]
    paths: Mapping[str, str]
    seed: int
    drift_week: int
    rows_per_week: int
    label_delay_days: int
    training_start: date
    auc_reference: float
    model_version: str = CHAMPION_NAME
    id_column: str = ID_COLUMN
    timestamp_column: str = TIMESTAMP_COLUMN
    label_column: str = LABEL_COLUMN
    prediction_column: str = PREDICTION_COLUMN
    description: str = field(default="", repr=False)
    story: str = "card_testing"


# --------------------------------------------------------------------------- traffic


def hour_profile(weekend: bool) -> np.ndarray:
    """Probability of each UTC hour: lunch and evening peaks on weekdays, later and flatter on weekends."""
    h = np.arange(24, dtype=float)
    if weekend:
        shape = 0.20 + 1.1 * np.exp(-(((h - 14.0) / 3.5) ** 2)) + 0.9 * np.exp(-(((h - 20.5) / 2.5) ** 2))
    else:
        shape = (
            0.15
            + 0.5 * np.exp(-(((h - 8.5) / 1.5) ** 2))
            + 1.0 * np.exp(-(((h - 12.5) / 2.5) ** 2))
            + 1.2 * np.exp(-(((h - 19.0) / 2.5) ** 2))
        )
    return shape / shape.sum()


def daily_counts(rows_per_week: int) -> np.ndarray:
    """Rows for Monday..Sunday; they sum exactly to rows_per_week and are the same every week."""
    return _io.largest_remainder(rows_per_week, WEEKDAY_WEIGHTS)


def _timestamps_in_day(rng: np.random.Generator, day: date, n: int) -> np.ndarray:
    """Sorted microsecond timestamps for one day following that day's hourly profile."""
    hours = rng.choice(24, size=n, p=hour_profile(day.weekday() >= 5))
    offsets = rng.integers(0, _io.US_PER_HOUR, size=n)
    return np.sort(_io.epoch_us(day) + hours * _io.US_PER_HOUR + offsets)


def _timestamps_in_weeks(rng: np.random.Generator, first_day: date, n_weeks: int, n: int) -> np.ndarray:
    """Sorted timestamps spread over whole weeks with the production day/hour mix.

    Whole weeks matter: a reference window that over-represents weekends would
    make hour_of_day (and everything correlated with it) look drifted.
    """
    day_weights = np.tile(WEEKDAY_WEIGHTS, n_weeks)
    day_index = rng.choice(day_weights.size, size=n, p=day_weights / day_weights.sum())
    weekend = (day_index % 7) >= 5
    hours = np.where(
        weekend,
        rng.choice(24, size=n, p=hour_profile(True)),
        rng.choice(24, size=n, p=hour_profile(False)),
    )
    offsets = rng.integers(0, _io.US_PER_HOUR, size=n)
    return np.sort(_io.epoch_us(first_day) + day_index * _io.US_PER_DAY + hours * _io.US_PER_HOUR + offsets)


def _hour_of_day(ts_us: np.ndarray) -> np.ndarray:
    """UTC hour of microsecond timestamps."""
    return ((ts_us // _io.US_PER_HOUR) % 24).astype(np.int64)


# --------------------------------------------------------------------------- features


def _channel_for(rng_uniform: np.ndarray, category: np.ndarray) -> np.ndarray:
    """Digital goods are never bought at a terminal; other categories are mostly in-store."""
    digital = category == DIGITAL_GOODS
    other = np.where(rng_uniform < 0.55, POS, np.where(rng_uniform < 0.75, WEB, MOBILE))
    online = np.where(rng_uniform < 0.60, WEB, MOBILE)
    return np.where(digital, online, other)


def _card_present_for(rng_uniform: np.ndarray, channel: np.ndarray) -> np.ndarray:
    """Terminal payments are card-present (bar a few manual entries), online ones are not."""
    return np.where(channel == POS, rng_uniform < 0.96, rng_uniform < 0.01)


def _base_population(rng: np.random.Generator, ts_us: np.ndarray) -> dict[str, np.ndarray]:
    """Stationary transaction features; categoricals are kept as integer codes until the end."""
    n = ts_us.size
    segment = rng.choice(SEGMENTS.size, size=n, p=SEGMENT_P)
    avg = np.round(np.exp(rng.normal(SEGMENT_LOG_AVG[segment], 0.6)), 2) + 1.0
    amount = np.round(np.maximum(avg * np.exp(rng.normal(0.0, 0.7, size=n)), 0.5), 2)
    # A few bursty (but honest) shoppers give the champion support at high velocities.
    bursty = rng.random(n) < 0.05
    count_1h = np.where(bursty, 2 + rng.poisson(3.0, size=n), rng.poisson(1.2, size=n))
    count_24h = count_1h + rng.poisson(SEGMENT_COUNT_24H[segment])
    category = rng.choice(MERCHANT_CATEGORIES.size, size=n, p=MERCHANT_P)
    channel = _channel_for(rng.random(n), category)
    at_home = rng.random(n) < 0.40
    distance = np.where(at_home, 0.0, np.round(np.exp(rng.normal(2.0, 1.2, size=n)), 2))
    return {
        "segment": segment,
        "txn_amount": amount,
        "avg_txn_amount_7d": avg,
        "txn_count_1h": count_1h.astype(np.int64),
        "txn_count_24h": count_24h.astype(np.int64),
        "distinct_merchants_7d": (1 + rng.poisson(4.0, size=n)).astype(np.int64),
        "account_age_days": (1 + rng.exponential(SEGMENT_AGE_DAYS[segment])).astype(np.int64),
        "distance_from_home_km": distance,
        "failed_logins_24h": rng.poisson(0.08, size=n).astype(np.int64),
        "merchant_risk_score": rng.beta(2.0, 8.0, size=n),
        "hour_of_day": _hour_of_day(ts_us),
        "category": category,
        "channel": channel,
        "card_present": _card_present_for(rng.random(n), channel),
        "fraud_uniform": rng.random(n),
    }


def _apply_card_testing_wave(rng: np.random.Generator, f: dict[str, np.ndarray]) -> np.ndarray:
    """Turn a share of rows into high-velocity, small-ticket, mostly web/digital-goods traffic.

    Returns the mask of wave rows. Drawn from its own stream so pre-drift days
    stay identical whatever drift_week is.
    """
    n = f["txn_amount"].size
    wave = rng.random(n) < WAVE_SHARE
    k = int(wave.sum())
    category = np.where(rng.random(k) < 0.60, DIGITAL_GOODS, f["category"][wave])
    u_channel = rng.random(k)
    channel = np.where(
        category == DIGITAL_GOODS,
        np.where(u_channel < 0.80, WEB, MOBILE),
        np.where(u_channel < 0.70, WEB, np.where(u_channel < 0.85, MOBILE, POS)),
    )
    count_1h = 3 + rng.poisson(4.0, size=k)
    f["category"][wave] = category
    f["channel"][wave] = channel
    f["card_present"][wave] = _card_present_for(rng.random(k), channel)
    f["txn_amount"][wave] = np.round(np.maximum(np.exp(rng.normal(np.log(3.5), 0.7, size=k)), 0.5), 2)
    f["txn_count_1h"][wave] = count_1h
    f["txn_count_24h"][wave] = count_1h + rng.poisson(9.0, size=k)
    f["distinct_merchants_7d"][wave] += rng.poisson(3.0, size=k)
    return wave


def _base_fraud_logit(f: dict[str, np.ndarray]) -> np.ndarray:
    """The fraud pattern the champion learns: unusual amounts, velocity, distance, risky merchants."""
    ratio = f["txn_amount"] / f["avg_txn_amount_7d"]
    night = (f["hour_of_day"] <= 5).astype(float)
    not_present = (~f["card_present"]).astype(float)
    student = (f["segment"] == 3).astype(float)
    return (
        BASE_INTERCEPT
        + 2.0 * np.maximum(np.log(ratio), 0.0)
        + 0.8 * np.minimum(f["txn_count_1h"], 6)
        + 0.06 * f["txn_count_24h"]
        + 0.5 * np.log1p(f["distance_from_home_km"])
        + 1.2 * f["failed_logins_24h"]
        + 4.0 * f["merchant_risk_score"]
        + 0.8 * night
        + 0.7 * not_present
        + 0.4 * student
        - 0.5 * np.log1p(f["account_age_days"])
    )


def _wave_fraud_logit(f: dict[str, np.ndarray]) -> np.ndarray:
    """The new pattern: fraud = web AND digital goods AND tiny amounts AND bursts. The champion never saw it."""
    web = (f["channel"] == WEB).astype(float)
    digital = (f["category"] == DIGITAL_GOODS).astype(float)
    tiny = (f["txn_amount"] < 5.0).astype(float)
    return (
        WAVE_INTERCEPT
        + 1.5 * web
        + 1.5 * digital
        + 1.4 * tiny
        + 0.9 * web * digital * tiny
        + 0.15 * (f["txn_count_1h"] - 6)
    )


# ------------------------------------------------------------------- drift stories
# What happens from ``drift_week`` on. ``card_testing`` (the default) is the original wave: new features
# AND a new fraud pattern. The other three isolate what performance estimation can and cannot see.
CARD_TESTING = "card_testing"
COVARIATE_HARMFUL = "covariate_harmful"
COVARIATE_BENIGN = "covariate_benign"
CONCEPT = "concept"
STORIES: tuple[str, ...] = (CARD_TESTING, COVARIATE_HARMFUL, COVARIATE_BENIGN, CONCEPT)
STORY_DESCRIPTIONS = {
    COVARIATE_HARMFUL: (
        "covariate shift that lowers AUC: a platform migration routes 95% of transactions through one "
        "payment gateway, so the features that separated fraud best stop varying for them: txn_count_1h = 1 "
        "(txn_count_24h = 1 + the segment's Poisson), merchant_risk_score ~ Beta(20, 80) (about 0.2 for every "
        "merchant) and distance_from_home_km ~ LogNormal(2, 0.2) (about 7 km), all values the reference has "
        "plenty of. P(fraud | features) is unchanged, so the champion's scores stay calibrated, but they "
        "separate fraud less: the AUC falls, and the scores show it (the estimated AUC drops before any label "
        "arrives)."
    ),
    COVARIATE_BENIGN: (
        "covariate shift the model is robust to: prices rise 60% (txn_amount and avg_txn_amount_7d x 1.6, so "
        "amount_to_avg_ratio is unchanged) and customers visit more merchants (distinct_merchants_7d + 4). "
        "Top-feature PSI is far above 0.25 (drift ERROR), but P(fraud | features) depends on the ratio, not "
        "the level: the estimated and the realized AUC stay flat (drift without performance impact)."
    ),
    CONCEPT: (
        "concept shift: a fraud ring using stolen credentials on ordinary-looking transactions adds ~2% fraud "
        "independent of every feature. The features and hence the scores keep their distribution, so the "
        "estimate (from the scores alone) cannot see it; the realized AUC falls when the labels arrive."
    ),
}
# The concept story's extra fraud probability, independent of the features.
CONCEPT_EXTRA_FRAUD = 0.02


def _apply_story(story: str, rng: np.random.Generator, f: dict[str, np.ndarray], p: np.ndarray) -> np.ndarray:
    """Change the drifted days' features (and, for the concept story, P(fraud | features)); returns p."""
    n = p.size
    if story == CARD_TESTING:
        wave = _apply_card_testing_wave(rng, f)
        return np.where(wave, _sigmoid(_wave_fraud_logit(f)), p)
    if story == COVARIATE_HARMFUL:
        gateway = rng.random(n) < 0.95
        k = int(gateway.sum())
        f["txn_count_1h"][gateway] = 1
        f["txn_count_24h"][gateway] = 1 + rng.poisson(SEGMENT_COUNT_24H[f["segment"][gateway]])
        f["merchant_risk_score"][gateway] = rng.beta(20.0, 80.0, size=k)
        f["distance_from_home_km"][gateway] = np.round(np.exp(rng.normal(2.0, 0.2, size=k)), 2)
        return _sigmoid(_base_fraud_logit(f))
    if story == COVARIATE_BENIGN:
        f["txn_amount"] = np.round(f["txn_amount"] * 1.6, 2)
        f["avg_txn_amount_7d"] = np.round(f["avg_txn_amount_7d"] * 1.6, 2)
        f["distinct_merchants_7d"] = f["distinct_merchants_7d"] + 4
        return _sigmoid(_base_fraud_logit(f))
    if story == CONCEPT:
        return 1.0 - (1.0 - p) * (1.0 - CONCEPT_EXTRA_FRAUD)
    raise ValueError(f"unknown drift story {story!r}; known: {', '.join(STORIES)}")


def _sigmoid(z: np.ndarray) -> np.ndarray:
    """Numerically safe logistic function."""
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def _draw_transactions(
    ts_us: np.ndarray, rng: np.random.Generator, wave_rng: np.random.Generator | None, story: str = CARD_TESTING
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Features and latent fraud labels for a batch; ``wave_rng`` switches the drift ``story`` on."""
    f = _base_population(rng, ts_us)
    p = _sigmoid(_base_fraud_logit(f))
    if wave_rng is not None:
        p = _apply_story(story, wave_rng, f, p)
    f["amount_to_avg_ratio"] = f["txn_amount"] / f["avg_txn_amount_7d"]
    is_fraud = (f["fraud_uniform"] < p).astype(np.int8)
    return f, is_fraud


def feature_columns(f: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Public column names and dtypes (int64 / float64 / str) from the internal arrays."""
    out: dict[str, np.ndarray] = {}
    for name in NUMERICAL:
        out[name] = f[name].astype(np.int64 if name in INT_FEATURES else np.float64)
    out["customer_segment"] = SEGMENTS[f["segment"]]
    out["merchant_category"] = MERCHANT_CATEGORIES[f["category"]]
    out["channel"] = CHANNELS[f["channel"]]
    out["card_present"] = np.where(f["card_present"], "yes", "no")
    return out


def _feature_frame(columns: dict[str, np.ndarray]) -> pd.DataFrame:
    """Exactly the model's input columns, in a fixed order."""
    return pd.DataFrame({name: columns[name] for name in FEATURES})


def _table(ids: pa.Array, ts_us: np.ndarray, columns: dict[str, np.ndarray], tail: dict[str, pa.Array]) -> pa.Table:
    """id, timestamp, features, then extra columns (score, label, version...)."""
    arrays: dict[str, pa.Array] = {ID_COLUMN: ids, TIMESTAMP_COLUMN: _io.timestamp_array(ts_us)}
    for name in FEATURES:
        arrays[name] = pa.array(columns[name])
    arrays.update(tail)
    return pa.table(arrays)


# --------------------------------------------------------------------------- model


def make_model_pipeline(
    numerical: tuple[str, ...] | list[str] = NUMERICAL,
    categorical: tuple[str, ...] | list[str] = CATEGORICAL,
    seed: int = 7,
):
    """The champion's architecture; retraining should reuse it so challengers differ only by data."""
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    pre = ColumnTransformer(
        [
            ("cat", OneHotEncoder(handle_unknown="ignore"), list(categorical)),
            ("num", "passthrough", list(numerical)),
        ]
    )
    clf = HistGradientBoostingClassifier(max_iter=200, learning_rate=0.1, random_state=seed)
    return Pipeline([("features", pre), ("model", clf)])


def _score(model, columns: dict[str, np.ndarray]) -> np.ndarray:
    """Champion probability of fraud."""
    return model.predict_proba(_feature_frame(columns))[:, 1].astype(np.float64)


# --------------------------------------------------------------------------- writing


def _check_monday(start: date) -> None:
    """Weekly partitions are Monday-based; a non-Monday start would split weeks silently."""
    if start.weekday() != 0:
        raise ValueError(f"start must be a Monday, got {start.isoformat()} ({start.strftime('%A')})")


def _paths(base: str) -> dict[str, str]:
    """Every location the simulation writes, so callers never rebuild them by hand."""
    version_dir = _io.join(base, "models", "versions", CHAMPION_NAME)
    return {
        "manifest": _io.join(base, "manifest.json"),
        "training": _io.join(base, "reference", "training.parquet"),
        "reference": _io.join(base, "reference", "reference.parquet"),
        "log_dir": _io.join(base, "log"),
        "labels_dir": _io.join(base, "labels"),
        "models_dir": _io.join(base, "models"),
        "champion_pointer": _io.join(base, "models", "champion.json"),
        "champion_dir": version_dir,
        "champion_model": _io.join(version_dir, "model.joblib"),
        "champion_metadata": _io.join(version_dir, "metadata.json"),
    }


def log_path(base: str, day: date) -> str:
    """Prediction log file of one day."""
    return _io.join(base, "log", f"date={day.isoformat()}", "part-0.parquet")


def labels_path(base: str, day: date) -> str:
    """Label file of the labels that arrived on one day."""
    return _io.join(base, "labels", f"arrived={day.isoformat()}", "part-0.parquet")


def _clean(fs: pafs.FileSystem, paths: dict[str, str]) -> None:
    """Drop outputs of an earlier run: stale day partitions would silently join the new data."""
    for key in ("log_dir", "labels_dir", "models_dir", "manifest"):
        _io.remove_if_exists(fs, paths[key])
    _io.remove_if_exists(fs, _io.parent(paths["training"]))


def _pre_production_sample(
    seed: int, stream: int, prefix: str, n: int, first_day: date, n_weeks: int
) -> tuple[pa.Array, np.ndarray, dict[str, np.ndarray], np.ndarray]:
    """A stationary sample over the pre-production weeks (training or reference)."""
    rng = np.random.default_rng([seed, stream])
    ts_us = _timestamps_in_weeks(rng, first_day, n_weeks, n)
    f, is_fraud = _draw_transactions(ts_us, rng, None)
    return _io.padded_ids(prefix, 1, n, 8), ts_us, feature_columns(f), is_fraud


def _write_labels_for(fs: pafs.FileSystem, base: str, pending: dict[date, list[tuple]], before: date) -> list[date]:
    """Flush every arrival day < ``before``: no later transaction can add labels to it."""
    written = []
    for day in sorted(d for d in pending if d < before):
        parts = pending.pop(day)
        ids = pa.concat_arrays([p[0] for p in parts])
        labels = np.concatenate([p[1] for p in parts])
        arrived = np.concatenate([p[2] for p in parts])
        order = np.argsort(arrived, kind="stable")
        table = pa.table(
            {
                ID_COLUMN: ids.take(pa.array(order)),
                LABEL_COLUMN: pa.array(labels[order], type=pa.int8()),
                LABEL_ARRIVED_COLUMN: _io.timestamp_array(arrived[order]),
            }
        )
        _io.write_parquet(fs, labels_path(base, day), table)
        written.append(day)
    return written


def _queue_labels(
    pending: dict[date, list[tuple]],
    ids: pa.Array,
    ts_us: np.ndarray,
    is_fraud: np.ndarray,
    rng: np.random.Generator,
    delay_days: int,
    as_of_us: int,
) -> None:
    """Each label arrives delay_days + U[0, 3) days after its transaction; only arrivals before as_of exist."""
    arrived = ts_us + delay_days * _io.US_PER_DAY + rng.integers(0, 3 * _io.US_PER_DAY, size=ts_us.size)
    keep = arrived < as_of_us
    if not keep.any():
        return
    arrived_day = arrived // _io.US_PER_DAY
    for day_number in np.unique(arrived_day[keep]):
        sel = np.flatnonzero(keep & (arrived_day == day_number))
        day = date(1970, 1, 1) + timedelta(days=int(day_number))
        pending.setdefault(day, []).append((ids.take(pa.array(sel)), is_fraud[sel], arrived[sel]))


def _write_champion(
    fs: pafs.FileSystem, paths: dict[str, str], model, start: date, seed: int, auc_reference: float, n_train: int
) -> None:
    """Model, metadata (with data lineage) and the champion pointer, each written atomically."""
    _io.write_joblib_atomic(fs, paths["champion_model"], model)
    metadata = {
        "version": 1,
        "name": CHAMPION_NAME,
        # Deterministic on purpose: the champion goes live at the start of production.
        "created_at": _io.midnight_utc(start).isoformat(),
        "training_data_sha256": sha256_of(fs, paths["training"]),
        # Loading the model verifies it against this hash (ModelRegistry.load_model).
        "model_sha256": sha256_of(fs, paths["champion_model"]),
        "training_rows": n_train,
        "auc_reference": auc_reference,
        "features": {
            "numerical": list(NUMERICAL),
            "categorical": list(CATEGORICAL),
            "top_features": list(TOP_FEATURES),
        },
        "label_column": LABEL_COLUMN,
        "prediction_column": PREDICTION_COLUMN,
        "seed": seed,
        "status": "promoted",
        "parent": None,
        "trigger": None,
        "reason": "initial champion from simulation",
    }
    _io.write_json_atomic(fs, paths["champion_metadata"], metadata)
    _io.write_json_atomic(fs, paths["champion_pointer"], {"version": 1, "name": CHAMPION_NAME})


def _drift_description(drift_start: date, story: str = CARD_TESTING) -> str:
    """Plain-English statement of the injected drift, for humans reading the manifest."""
    if story != CARD_TESTING:
        return f"From {drift_start.isoformat()} (UTC) to the end of the log, a {STORY_DESCRIPTIONS[story]}"
    return (
        f"From {drift_start.isoformat()} (UTC) to the end of the log, a card-testing fraud wave: "
        f"about {WAVE_SHARE:.0%} of transactions become high-velocity micro-payments "
        "(txn_count_1h = 3 + Poisson(4) instead of mostly 0-2, txn_count_24h = txn_count_1h + Poisson(9), "
        "txn_amount lognormal around 3.5 instead of ~50, 60% moved to merchant_category=digital_goods "
        "(share ~8% -> ~27%), channel mostly web (share ~23% -> ~42%), card_present mostly 'no', "
        "distinct_merchants_7d + Poisson(3); amount_to_avg_ratio falls with txn_amount). avg_txn_amount_7d, "
        "distance_from_home_km and the other features keep their distribution. "
        "Inside the wave fraud follows a NEW pattern "
        "(web AND digital_goods AND amount < 5 AND bursts) that the champion never saw: the fraud rate rises "
        "from ~1% to ~4%, the champion scores the whole high-velocity wave as risky (fraud_score distribution "
        "shifts up, mean ~3x) but cannot rank fraud inside it, so its AUC drops by ~0.1 (about 0.90 -> 0.80 at "
        "default sizes); a model retrained on labelled drift-period data recovers (~0.90). Weeks before the drift "
        "use exactly the reference generator (no trend)."
    )


def simulate_fraud(
    base: str,
    *,
    start: date = date(2026, 8, 3),
    weeks: int = 13,
    rows_per_week: int = 20_000,
    drift_week: int = 9,
    label_delay_days: int = 14,
    training_rows: int = 60_000,
    reference_rows: int = 40_000,
    seed: int = 7,
    filesystem: pafs.FileSystem | None = None,
    clean: bool = True,
    story: str = CARD_TESTING,
    progress: Callable[[int, int], None] | None = None,
) -> FraudSimulation:
    """Write reference data, a champion model, a daily prediction log and a delayed label feed.

    ``drift_week`` is 1-based; a value > ``weeks`` gives a log with no drift. ``story`` is what happens
    from then on (``STORIES``): the card-testing wave (default), a covariate shift that lowers AUC, one
    the model is robust to, or a concept shift (see ``STORY_DESCRIPTIONS``).
    ``clean`` removes outputs of a previous run under ``base`` first. ``progress(done, total)`` is
    called after the training/reference step and after each day of log (total = days + 1).
    """
    _check_monday(start)
    if weeks < 1 or rows_per_week < 7 or drift_week < 1:
        raise ValueError("weeks >= 1, rows_per_week >= 7 and drift_week >= 1 are required")
    if story not in STORIES:
        raise ValueError(f"unknown drift story {story!r}; known: {', '.join(STORIES)}")
    fs = _io.resolve_filesystem(filesystem)
    paths = _paths(base)
    if clean:
        _clean(fs, paths)

    end = start + timedelta(days=7 * weeks)
    drift_start = start + timedelta(days=7 * (drift_week - 1))
    pre_weeks = max(1, math.ceil(training_rows / rows_per_week))
    training_start = start - timedelta(days=7 * pre_weeks)

    model, auc_reference = _write_reference_and_champion(
        fs, paths, seed, training_rows, reference_rows, training_start, pre_weeks, start
    )
    if progress:
        progress(1, 7 * weeks + 1)
    _write_log_and_labels(
        fs, base, model, seed, start, end, drift_start, rows_per_week, label_delay_days, story, progress
    )

    sim = FraudSimulation(
        base=base,
        start=start,
        end=end,
        drift_start=drift_start,
        as_of=end,
        week_starts=tuple(start + timedelta(days=7 * w) for w in range(weeks)),
        numerical=NUMERICAL,
        categorical=CATEGORICAL,
        top_features=TOP_FEATURES,
        paths=paths,
        seed=seed,
        drift_week=drift_week,
        rows_per_week=rows_per_week,
        label_delay_days=label_delay_days,
        training_start=training_start,
        auc_reference=auc_reference,
        description=_drift_description(drift_start, story),
        story=story,
    )
    _io.write_json_atomic(fs, paths["manifest"], _manifest(sim, training_rows, reference_rows))
    return sim


def _write_reference_and_champion(
    fs: pafs.FileSystem,
    paths: dict[str, str],
    seed: int,
    training_rows: int,
    reference_rows: int,
    training_start: date,
    pre_weeks: int,
    start: date,
):
    """Training sample → champion; held-out reference sample scored out-of-sample."""
    from sklearn.metrics import roc_auc_score

    ids, ts_us, cols, y = _pre_production_sample(
        seed, STREAM_TRAINING, "train-", training_rows, training_start, pre_weeks
    )
    _io.write_parquet(fs, paths["training"], _table(ids, ts_us, cols, {LABEL_COLUMN: pa.array(y, type=pa.int8())}))
    model = make_model_pipeline(NUMERICAL, CATEGORICAL, seed)
    model.fit(_feature_frame(cols), y)

    ids, ts_us, cols, y = _pre_production_sample(
        seed, STREAM_REFERENCE, "ref-", reference_rows, training_start, pre_weeks
    )
    score = _score(model, cols)
    tail = {PREDICTION_COLUMN: pa.array(score, type=pa.float64()), LABEL_COLUMN: pa.array(y, type=pa.int8())}
    _io.write_parquet(fs, paths["reference"], _table(ids, ts_us, cols, tail))
    auc_reference = float(roc_auc_score(y, score)) if 0 < y.sum() < y.size else float("nan")
    _write_champion(fs, paths, model, start, seed, auc_reference, training_rows)
    return model, auc_reference


def _write_log_and_labels(
    fs: pafs.FileSystem,
    base: str,
    model,
    seed: int,
    start: date,
    end: date,
    drift_start: date,
    rows_per_week: int,
    label_delay_days: int,
    story: str = CARD_TESTING,
    progress: Callable[[int, int], None] | None = None,
) -> None:
    """Generate, score and write one day at a time so memory stays bounded for millions of rows."""
    total_days = (end - start).days
    counts = daily_counts(rows_per_week)
    as_of_us = _io.epoch_us(end)
    pending: dict[date, list[tuple]] = {}
    day = start
    while day < end:
        ordinal = day.toordinal()
        rng = np.random.default_rng([seed, STREAM_LOG, ordinal])
        wave_rng = np.random.default_rng([seed, STREAM_WAVE, ordinal]) if day >= drift_start else None
        ts_us = _timestamps_in_day(rng, day, int(counts[day.weekday()]))
        f, is_fraud = _draw_transactions(ts_us, rng, wave_rng, story)
        cols = feature_columns(f)
        ids = _io.padded_ids(f"tx-{day.strftime('%Y%m%d')}-", 1, ts_us.size, 7)
        tail = {
            PREDICTION_COLUMN: pa.array(_score(model, cols), type=pa.float64()),
            MODEL_VERSION_COLUMN: pa.array(np.full(ts_us.size, CHAMPION_NAME)),
        }
        _io.write_parquet(fs, log_path(base, day), _table(ids, ts_us, cols, tail))
        label_rng = np.random.default_rng([seed, STREAM_LABELS, ordinal])
        _queue_labels(pending, ids, ts_us, is_fraud, label_rng, label_delay_days, as_of_us)
        day += timedelta(days=1)
        _write_labels_for(fs, base, pending, day + timedelta(days=label_delay_days))
        if progress:
            progress(1 + (day - start).days, 1 + total_days)
    _write_labels_for(fs, base, pending, end)


def _manifest(sim: FraudSimulation, training_rows: int, reference_rows: int) -> dict:
    """JSON-friendly description of the run (dates as ISO strings)."""
    return {
        "kind": "fraud",
        "base": sim.base,
        "seed": sim.seed,
        "start": sim.start.isoformat(),
        "end": sim.end.isoformat(),
        "end_is_exclusive": True,
        "as_of": sim.as_of.isoformat(),
        "weeks": len(sim.week_starts),
        "week_starts": [w.isoformat() for w in sim.week_starts],
        "rows_per_week": sim.rows_per_week,
        "daily_counts_mon_to_sun": [int(c) for c in daily_counts(sim.rows_per_week)],
        "drift_week": sim.drift_week,
        "drift_start": sim.drift_start.isoformat(),
        "drift_description": sim.description,
        "drift_story": sim.story,
        "label_delay_days": sim.label_delay_days,
        "label_extra_delay_days": [0, 3],
        "training_period": {"start": sim.training_start.isoformat(), "end": sim.start.isoformat()},
        "training_rows": training_rows,
        "reference_rows": reference_rows,
        "numerical": list(sim.numerical),
        "categorical": list(sim.categorical),
        "top_features": list(sim.top_features),
        "id_column": ID_COLUMN,
        "timestamp_column": TIMESTAMP_COLUMN,
        "label_column": LABEL_COLUMN,
        "label_arrived_column": LABEL_ARRIVED_COLUMN,
        "prediction_column": PREDICTION_COLUMN,
        "model_version_column": MODEL_VERSION_COLUMN,
        "champion": {"version": 1, "name": CHAMPION_NAME, "auc_reference": sim.auc_reference},
        "paths": dict(sim.paths),
        "layout": {
            "log": "log/date=YYYY-MM-DD/part-0.parquet",
            "labels": "labels/arrived=YYYY-MM-DD/part-0.parquet",
        },
    }
