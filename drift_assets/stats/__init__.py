"""The statistics core: fit a reference profile once, summarise windows, compare, decide.

Plain functions and dataclasses on numpy / pyarrow / scipy. No Dagster import here (a test checks):
the same code serves the CLI, the Dagster assets and anything else that wants drift numbers.
"""

from drift_assets.stats.compare import ColumnDrift, DriftResult, compare
from drift_assets.stats.errors import (
    DriftInputError,
    EmptyWindowError,
    ProfileError,
    SchemaError,
)
from drift_assets.stats.profile import (
    ColumnSpec,
    ReferenceProfile,
    fit_profile,
    infer_column_specs,
)
from drift_assets.stats.rules import (
    CheckOutcome,
    ColumnThresholds,
    DecisionRules,
    auc_check,
)
from drift_assets.stats.summary import WindowSummary, summarize

__all__ = [
    "CheckOutcome",
    "ColumnDrift",
    "ColumnSpec",
    "ColumnThresholds",
    "DecisionRules",
    "DriftInputError",
    "DriftResult",
    "EmptyWindowError",
    "ProfileError",
    "ReferenceProfile",
    "SchemaError",
    "WindowSummary",
    "auc_check",
    "compare",
    "fit_profile",
    "infer_column_specs",
    "summarize",
]
