"""Deterministic, seeded data simulators with known ground truth.

Pure Python (numpy, pyarrow, scikit-learn), no Dagster import: usable from the
CLI, tests and notebooks. Each simulator writes parquet through a
``pyarrow.fs.FileSystem`` (local by default, S3 later) and returns a frozen
dataclass describing exactly what was written and what was injected.
"""

from drift_assets.simulate.fraud import (
    CATEGORICAL,
    FEATURES,
    NUMERICAL,
    TOP_FEATURES,
    FraudSimulation,
    make_model_pipeline,
    simulate_fraud,
)
from drift_assets.simulate.llm import (
    REFUSAL_PATTERNS,
    REFUSAL_REGEX,
    Incident,
    LlmSimulation,
    refusal_mask,
    simulate_llm,
)

__all__ = [
    "CATEGORICAL",
    "FEATURES",
    "NUMERICAL",
    "TOP_FEATURES",
    "FraudSimulation",
    "make_model_pipeline",
    "simulate_fraud",
    "REFUSAL_PATTERNS",
    "REFUSAL_REGEX",
    "Incident",
    "LlmSimulation",
    "refusal_mask",
    "simulate_llm",
]
