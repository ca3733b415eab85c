"""The statistics core: fit a reference profile once, summarise windows, compare, decide.

Plain functions and dataclasses on numpy / pyarrow / scipy. No Dagster import here (a test checks):
the same code serves the CLI, the Dagster assets and anything else that wants drift numbers.
"""

from drift_assets.stats.checks import DEFAULT_CHECKS, CheckRule, CheckTable, auc_check
from drift_assets.stats.compare import compare
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
from drift_assets.stats.result import ColumnDrift, DriftResult
from drift_assets.stats.rules import CheckOutcome, ColumnThresholds, DecisionRules
from drift_assets.stats.summary import WindowSummary, summarize

__all__ = [
    "DEFAULT_CHECKS",
    "CheckOutcome",
    "CheckRule",
    "CheckTable",
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
