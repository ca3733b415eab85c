"""Stage `train`: fit the challenger on prepared/train.parquet -> model/model.joblib.

Same architecture (and step names) as the champion built by
drift_assets.simulate.fraud.make_model_pipeline: Pipeline([("features", ColumnTransformer(
OneHotEncoder(categorical) + passthrough(numerical))), ("model", HistGradientBoostingClassifier)]),
fit on a pandas DataFrame of the feature columns.
"""

from __future__ import annotations

import joblib
import stagelib as sl
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder
from stagelib import StageError

STAGE = "train"


def build_model(numerical: list[str], categorical: list[str], max_iter: int, learning_rate: float, seed: int):
    pre = ColumnTransformer(
        [
            ("cat", OneHotEncoder(handle_unknown="ignore"), categorical),
            ("num", "passthrough", numerical),
        ]
    )
    clf = HistGradientBoostingClassifier(max_iter=max_iter, learning_rate=learning_rate, random_state=seed)
    return Pipeline([("features", pre), ("model", clf)])


def main() -> None:
    params = sl.load_params()
    target = sl.get(params, "columns.target")
    numerical, categorical = sl.feature_columns(params)
    max_iter = int(sl.get(params, "model.max_iter"))
    learning_rate = float(sl.get(params, "model.learning_rate"))
    seed = int(sl.get(params, "seed"))

    # Only the columns the fit uses (not the id, timestamp and source columns prepare writes).
    train = sl.read_parquet_file(sl.TRAIN_FILE, [*numerical, *categorical, target])
    train = sl.normalize_features(train, numerical, categorical)
    X = train[[*numerical, *categorical]]
    y = train[target].astype(int)
    if y.nunique() < 2:
        raise StageError(f"training data has a single class {y.unique().tolist()}")

    model = build_model(numerical, categorical, max_iter, learning_rate, seed)
    model.fit(X, y)
    sl.MODEL_FILE.parent.mkdir(parents=True, exist_ok=True)
    joblib.dump(model, sl.MODEL_FILE)
    n_iter = getattr(model.named_steps["model"], "n_iter_", None)
    print(f"train: fitted on {len(X)} rows ({int(y.sum())} positives), n_iter={n_iter} -> {sl.MODEL_FILE}")


if __name__ == "__main__":
    sl.run_stage(STAGE, main)
