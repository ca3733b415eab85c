"""Stage `evaluate`: score challenger and champion on the SAME holdout -> metrics.json."""

from __future__ import annotations

import json
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import stagelib as sl
from sklearn.metrics import roc_auc_score
from stagelib import StageError

STAGE = "evaluate"


def _positive_scores(model, X: pd.DataFrame, name: str) -> np.ndarray:
    cols = list(getattr(model, "feature_names_in_", X.columns))
    missing = [c for c in cols if c not in X.columns]
    if missing:
        raise StageError(f"{name} model expects feature(s) {missing} that are not in the holdout")
    try:
        proba = model.predict_proba(X[cols])
    except Exception as exc:  # noqa: BLE001 - report any scoring failure as a stage error
        raise StageError(f"{name} model failed to score the holdout: {type(exc).__name__}: {exc}") from None
    classes = list(getattr(model, "classes_", [0, 1]))
    if 1 not in classes:
        raise StageError(f"{name} model has no positive class 1 (classes_={classes})")
    return proba[:, classes.index(1)]


def main() -> None:
    params = sl.load_params()
    target = sl.get(params, "columns.target")
    numerical, categorical = sl.feature_columns(params)
    champion_path = Path(sl.get(params, "data.champion_model"))

    holdout = pd.read_parquet(sl.HOLDOUT_FILE)
    sl.require_columns(holdout, [*numerical, *categorical, target], str(sl.HOLDOUT_FILE))
    holdout = sl.normalize_features(holdout, numerical, categorical)
    X = holdout[[*numerical, *categorical]]
    y = holdout[target].astype(int).to_numpy()
    summary = json.loads(sl.SUMMARY_FILE.read_text())

    challenger = joblib.load(sl.MODEL_FILE)
    if not champion_path.exists():
        raise StageError(f"data.champion_model {champion_path} does not exist")
    try:
        champion = joblib.load(champion_path)
    except Exception as exc:  # noqa: BLE001
        raise StageError(f"cannot load champion model {champion_path}: {type(exc).__name__}: {exc}") from None

    challenger_auc = float(roc_auc_score(y, _positive_scores(challenger, X, "challenger")))
    champion_auc = float(roc_auc_score(y, _positive_scores(champion, X, "champion")))
    metrics = {
        "challenger_auc": challenger_auc,
        "champion_auc": champion_auc,
        "auc_delta": challenger_auc - champion_auc,
        "holdout_rows": int(len(y)),
        "holdout_positives": int(y.sum()),
        "train_rows": int(summary["train"]["rows"]),
    }
    sl.write_json(sl.METRICS_FILE, metrics)
    print(
        f"evaluate: challenger_auc={challenger_auc:.4f} champion_auc={champion_auc:.4f} "
        f"delta={metrics['auc_delta']:+.4f} on {len(y)} holdout rows"
    )


if __name__ == "__main__":
    sl.run_stage(STAGE, main)
