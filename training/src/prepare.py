"""Stage `prepare`: build the training set and the holdout.

* production rows = log rows with timestamp < window.cutoff, inner-joined with the labels
  that have arrived (label rows with label_arrived_at < window.labels_as_of when that is set;
  the latest label wins if a transaction was labelled more than once).
* holdout = seeded random split.holdout_fraction of the labelled production rows from the
  last split.holdout_weeks weeks before the cutoff (split.holdout_anchor=cutoff, default) or
  before the newest labelled production row (split.holdout_anchor=latest_label).
* train = reference rows (with a target) + every other labelled production row.

Outputs: prepared/train.parquet, prepared/holdout.parquet, prepared/summary.json.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import stagelib as sl
from stagelib import StageError

STAGE = "prepare"


def _parquet_files(root: Path, what: str) -> list[Path]:
    if not root.exists():
        raise StageError(f"{what} directory {root} does not exist")
    if root.is_file():
        return [root]
    files = sorted(
        p
        for p in root.rglob("*.parquet")
        if p.is_file() and not any(part.startswith((".", "_")) for part in p.relative_to(root).parts)
    )
    if not files:
        raise StageError(f"no parquet files under {what} directory {root}")
    return files


def _expand_features(df: pd.DataFrame, features: list[str], path: Path) -> pd.DataFrame:
    """Log files may carry the features in a single struct/map/JSON column named `features`."""

    def as_dict(v: Any) -> dict:
        if v is None or (isinstance(v, float) and np.isnan(v)):
            return {}
        if isinstance(v, dict):
            return v
        if isinstance(v, str):
            return json.loads(v)
        return dict(v)  # pyarrow map -> list of (key, value) tuples

    try:
        expanded = pd.DataFrame([as_dict(v) for v in df["features"]], index=df.index)
    except (TypeError, ValueError) as exc:
        raise StageError(f"cannot decode the 'features' column in {path}: {exc}") from None
    sl.require_columns(expanded, features, f"the 'features' column of {path}")
    return pd.concat([df.drop(columns=["features"]), expanded[features]], axis=1)


def _read_log_file(path: Path, id_col: str, ts_col: str, features: list[str]) -> pd.DataFrame:
    with sl.ParquetInput(path) as source:
        if all(c in source.names for c in features) or "features" not in source.names:
            return source.read([id_col, ts_col, *features])  # raises naming the missing columns
        return _expand_features(source.read([id_col, ts_col, "features"]), features, path)


def read_log(root: Path, id_col: str, ts_col: str, features: list[str], cutoff: pd.Timestamp):
    frames = []
    n_after_cutoff = 0
    files = _parquet_files(root, "data.log")
    for path in files:
        df = _read_log_file(path, id_col, ts_col, features)
        df[ts_col] = sl.series_to_utc(df[ts_col])
        keep = df[ts_col] < cutoff  # NaT compares False -> dropped
        n_after_cutoff += int((df[ts_col] >= cutoff).sum())
        frames.append(df.loc[keep])
    log = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    return log, len(files), n_after_cutoff


def read_labels(root: Path, id_col: str, target: str, as_of: pd.Timestamp | None):
    files = _parquet_files(root, "data.labels")
    frames = []
    for path in files:
        with sl.ParquetInput(path) as source:
            cols = [id_col, target]
            if "label_arrived_at" in source.names:
                cols.append("label_arrived_at")
            elif as_of is not None:
                cols.append("label_arrived_at")  # raises: needed for window.labels_as_of
            df = source.read(cols)
        df["_file_order"] = len(frames)
        frames.append(df)
    labels = pd.concat(frames, ignore_index=True)
    stats = {"files": len(files), "rows": int(len(labels))}
    if "label_arrived_at" in labels.columns:
        labels["label_arrived_at"] = sl.series_to_utc(labels["label_arrived_at"])
    if as_of is not None:
        arrived = labels["label_arrived_at"] < as_of
        stats["ignored_arrived_at_or_after_as_of"] = int((~arrived).sum())
        labels = labels.loc[arrived]
    missing_target = labels[target].isna()
    stats["missing_target"] = int(missing_target.sum())
    labels = labels.loc[~missing_target]
    # The latest label wins when a transaction was (re)labelled more than once.
    order = ["_file_order"] + (["label_arrived_at"] if "label_arrived_at" in labels.columns else [])
    labels = labels.sort_values(order, kind="stable").drop_duplicates(subset=[id_col], keep="last")
    stats["usable"] = int(len(labels))
    return labels[[id_col, target]], stats


def _binary_target(s: pd.Series, where: str) -> pd.Series:
    values = pd.to_numeric(s, errors="coerce")
    bad = ~values.isin([0, 1])
    if bad.any():
        examples = s[bad].astype(str).unique()[:5].tolist()
        raise StageError(f"target in {where} must be 0/1; found {examples}")
    return values.astype("int8")


def _ts_range(s: pd.Series) -> dict[str, str | None]:
    s = s.dropna()
    if s.empty:
        return {"min": None, "max": None}
    return {"min": s.min().isoformat(), "max": s.max().isoformat()}


def main() -> None:
    params = sl.load_params()
    id_col = sl.get(params, "columns.id")
    ts_col = sl.get(params, "columns.timestamp")
    target = sl.get(params, "columns.target")
    numerical, categorical = sl.feature_columns(params)
    features = [*numerical, *categorical]
    cutoff = sl.to_utc(sl.get(params, "window.cutoff"), "window.cutoff")
    as_of_raw = (params.get("window") or {}).get("labels_as_of")
    as_of = None if as_of_raw in (None, "") else sl.to_utc(as_of_raw, "window.labels_as_of")
    holdout_weeks = float(sl.get(params, "split.holdout_weeks"))
    holdout_fraction = float(sl.get(params, "split.holdout_fraction"))
    anchor = (params.get("split") or {}).get("holdout_anchor") or "cutoff"
    seed = int(sl.get(params, "seed"))
    if anchor not in ("cutoff", "latest_label"):
        raise StageError(f"split.holdout_anchor must be 'cutoff' or 'latest_label', got {anchor!r}")
    if holdout_weeks <= 0:
        raise StageError(f"split.holdout_weeks must be > 0, got {holdout_weeks}")
    if not 0 < holdout_fraction < 1:
        raise StageError(f"split.holdout_fraction must be in (0, 1), got {holdout_fraction}")

    # --- reference -------------------------------------------------------------------------
    ref_path = Path(sl.get(params, "data.reference"))
    if not ref_path.exists():
        raise StageError(f"data.reference {ref_path} does not exist")
    with sl.ParquetInput(ref_path) as source:
        ref = source.read([*features, target] + [c for c in (id_col, ts_col) if c in source.names])
    ref_missing_target = ref[target].isna()
    ref = ref.loc[~ref_missing_target].copy()
    ref[target] = _binary_target(ref[target], f"data.reference {ref_path}")

    # --- production log + labels -------------------------------------------------------------
    log, n_log_files, n_after_cutoff = read_log(Path(sl.get(params, "data.log")), id_col, ts_col, features, cutoff)
    n_before_dedup = len(log)
    log = log.sort_values([ts_col], kind="stable").drop_duplicates(subset=[id_col], keep="last")
    labels, label_stats = read_labels(Path(sl.get(params, "data.labels")), id_col, target, as_of)
    labels[target] = _binary_target(labels[target], "data.labels")
    # Both sides are unique by id (drop_duplicates above), so the join is one-to-one unless the
    # string form below makes two ids equal: only then is it checked (a 0.25 s check otherwise).
    validate = None
    if len(log) and len(labels) and log[id_col].dtype != labels[id_col].dtype:
        # e.g. int ids in one feed and string ids in the other: join on the string form.
        log[id_col] = log[id_col].astype(str)
        labels[id_col] = labels[id_col].astype(str)
        validate = "one_to_one"
    prod = log.merge(labels, on=id_col, how="inner", validate=validate)
    prod = prod.sort_values([ts_col, id_col], kind="stable").reset_index(drop=True)

    # --- holdout split -----------------------------------------------------------------------
    # anchor "cutoff": the holdout window is [cutoff - holdout_weeks, cutoff).
    # anchor "latest_label": it ends at the newest labelled production row instead, for label
    # feeds whose delay is longer than holdout_weeks (the last weeks before cutoff are unlabelled).
    if anchor == "latest_label" and len(prod):
        holdout_end = prod[ts_col].max()
        holdout_start = holdout_end - pd.Timedelta(weeks=holdout_weeks)
    else:
        holdout_end = cutoff
        holdout_start = cutoff - pd.Timedelta(weeks=holdout_weeks)
    recent_idx = np.flatnonzero((prod[ts_col] >= holdout_start).to_numpy())
    n_holdout = int(round(holdout_fraction * len(recent_idx)))
    rng = np.random.default_rng(seed)
    holdout_idx = np.sort(rng.choice(recent_idx, size=n_holdout, replace=False)) if n_holdout else recent_idx[:0]
    is_holdout = np.zeros(len(prod), dtype=bool)
    is_holdout[holdout_idx] = True
    holdout = prod.loc[is_holdout]
    prod_train = prod.loc[~is_holdout]

    if len(holdout) < 50:
        raise StageError(
            f"holdout has {len(holdout)} rows (< 50): {len(recent_idx)} labelled production rows in "
            f"[{holdout_start.isoformat()}, {holdout_end.isoformat()}] x holdout_fraction={holdout_fraction} "
            f"(split.holdout_anchor={anchor}). Wait for more labels, widen split.holdout_weeks / "
            "split.holdout_fraction, or use split.holdout_anchor=latest_label."
        )
    holdout_classes = sorted(holdout[target].unique().tolist())
    if len(holdout_classes) < 2:
        raise StageError(f"holdout has a single class {holdout_classes} ({len(holdout)} rows); AUC is undefined")

    # --- assemble outputs ----------------------------------------------------------------------
    def frame(df: pd.DataFrame, source: str) -> pd.DataFrame:
        out = pd.DataFrame(index=df.index)
        out[sl.SOURCE_COLUMN] = source
        out[id_col] = df[id_col].astype("string") if id_col in df.columns else pd.NA
        out[id_col] = out[id_col].astype("string")
        if ts_col in df.columns:
            out[ts_col] = sl.series_to_utc(df[ts_col])
        else:
            out[ts_col] = pd.Series(pd.NaT, index=df.index, dtype="datetime64[ns, UTC]")
        for col in features:
            out[col] = df[col]
        out[target] = df[target].astype("int8")
        return sl.normalize_features(out, numerical, categorical).reset_index(drop=True)

    train = pd.concat([frame(ref, "reference"), frame(prod_train, "production")], ignore_index=True)
    holdout_out = frame(holdout, "production")
    if train[target].nunique() < 2:
        raise StageError(f"training data has a single class {train[target].unique().tolist()}")

    sl.PREPARED_DIR.mkdir(parents=True, exist_ok=True)
    train.to_parquet(sl.TRAIN_FILE, index=False)
    holdout_out.to_parquet(sl.HOLDOUT_FILE, index=False)

    summary = {
        "cutoff": cutoff.isoformat(),
        "labels_as_of": None if as_of is None else as_of.isoformat(),
        "holdout_anchor": anchor,
        "holdout_start": holdout_start.isoformat(),
        "holdout_end": holdout_end.isoformat(),
        "reference": {
            "rows": int(len(ref)),
            "positives": int(ref[target].sum()),
            "dropped_missing_target": int(ref_missing_target.sum()),
        },
        "production": {
            "files": n_log_files,
            "rows_before_cutoff": int(n_before_dedup),
            "rows_at_or_after_cutoff_ignored": n_after_cutoff,
            "duplicate_ids_dropped": int(n_before_dedup - len(log)),
            "labelled_rows": int(len(prod)),
            "unlabelled_rows": int(len(log) - len(prod)),
            "positives": int(prod[target].sum()),
            "timestamp_range": _ts_range(log[ts_col]) if len(log) else _ts_range(pd.Series([], dtype=object)),
            "labelled_timestamp_range": _ts_range(prod[ts_col]),
        },
        "labels": label_stats,
        "holdout": {
            "rows": int(len(holdout_out)),
            "positives": int(holdout_out[target].sum()),
            "negatives": int(len(holdout_out) - holdout_out[target].sum()),
            "candidate_rows": int(len(recent_idx)),
            "timestamp_range": _ts_range(holdout_out[ts_col]),
        },
        "train": {
            "rows": int(len(train)),
            "positives": int(train[target].sum()),
            "reference_rows": int(len(ref)),
            "production_rows": int(len(prod_train)),
        },
    }
    sl.write_json(sl.SUMMARY_FILE, summary)
    print(
        f"prepare: train={len(train)} rows ({summary['train']['positives']} positives), "
        f"holdout={len(holdout_out)} rows ({summary['holdout']['positives']} positives), "
        f"production labelled={len(prod)} / {len(log)} before cutoff {cutoff.isoformat()}"
    )


if __name__ == "__main__":
    sl.run_stage(STAGE, main)
