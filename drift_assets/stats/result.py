"""What comparing a window produces: every measure per column, and the check outcomes."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from drift_assets.stats.rules import CheckOutcome


@dataclass
class ColumnDrift:
    """Every measure for one column in one window. ``None`` where a measure does not apply."""

    name: str
    kind: str
    role: str
    psi: float | None
    psi_bins: int | None
    ks_statistic: float | None
    ks_pvalue: float | None
    chi2_pvalue: float | None
    jensen_shannon: float | None
    wasserstein_normed: float | None
    missing_rate: float
    reference_missing_rate: float
    unseen_share: float | None
    out_of_range_share: float | None
    max_category_share_change: float | None
    current_valid: int
    current_mean: float | None = None
    reference_mean: float | None = None
    reference_std: float | None = None
    unseen_values: dict[str, int] = field(default_factory=dict)
    current_missing: int = 0
    # One-sided Fisher p-value that the missing rate rose over the reference's.
    missing_rate_pvalue: float | None = None
    unseen_count: int | None = None
    # The largest per-bin PSI terms: {"bin", "reference_share", "current_share", "contribution"}.
    psi_bins_detail: list[dict] = field(default_factory=list)
    # The PSI of a stationary window of this size: (bins - 1)(1/n + 1/m) (stats.psi.expected_noise).
    psi_noise: float | None = None
    # Filled by the decision step:
    pvalue: float | None = None
    adjusted_pvalue: float | None = None
    significant: bool = False
    large_effect: bool = False
    drifted: bool = False
    problem: str | None = None

    @property
    def test_pvalue(self) -> float | None:
        return self.ks_pvalue if self.kind == "numerical" else self.chi2_pvalue

    def to_dict(self) -> dict:
        return asdict(self)


# The per-column keys of a result document (``DriftResult.to_dict``, and each segment's columns).
COLUMN_KEYS = (
    "kind",
    "role",
    "psi",
    "psi_bins",
    "ks_statistic",
    "ks_pvalue",
    "chi2_pvalue",
    "jensen_shannon",
    "wasserstein_normed",
    "missing_rate",
    "reference_missing_rate",
    "missing_rate_pvalue",
    "unseen_share",
    "out_of_range_share",
    "max_category_share_change",
    "adjusted_pvalue",
    # What a sequential detector reads from stored results (stats.sequential): no rescan.
    "current_valid",
    "current_mean",
    "reference_mean",
    "reference_std",
    "drifted",
    "problem",
)


def column_entry(col: ColumnDrift) -> dict:
    data = col.to_dict()
    entry = {k: data[k] for k in COLUMN_KEYS}
    if col.unseen_values:
        entry["unseen_values"] = col.unseen_values
    if col.psi_bins_detail:
        entry["psi_top_bins"] = col.psi_bins_detail
    return entry


@dataclass
class DriftResult:
    reference_rows: int
    current_rows: int
    columns: dict[str, ColumnDrift]
    checks: list[CheckOutcome]

    @property
    def features(self) -> list[ColumnDrift]:
        return [c for c in self.columns.values() if c.role == "feature"]

    @property
    def prediction(self) -> ColumnDrift | None:
        return next((c for c in self.columns.values() if c.role == "prediction"), None)

    @property
    def drifted_features(self) -> list[str]:
        return [c.name for c in self.features if c.drifted]

    @property
    def share_drifted(self) -> float:
        measured = [c for c in self.features if c.problem is None]
        return len([c for c in measured if c.drifted]) / len(measured) if measured else 0.0

    def failed_checks(self, severity: str | None = None) -> list[CheckOutcome]:
        return [c for c in self.checks if not c.passed and (severity is None or c.severity == severity)]

    @property
    def all_passed(self) -> bool:
        return not self.failed_checks()

    def summary(self) -> dict:
        feature_psis = [c.psi for c in self.features if c.psi is not None]
        pred = self.prediction
        return {
            "drifted_columns": len(self.drifted_features),
            "drifted_features": self.drifted_features,
            "share_drifted": self.share_drifted,
            "all_passed": self.all_passed,
            "drift_detected": bool(self.failed_checks("ERROR")),
            "failed_checks": sorted({c.name for c in self.failed_checks()}),
            "max_feature_psi": max(feature_psis) if feature_psis else None,
            "prediction_psi": pred.psi if pred else None,
            "prediction_ks_pvalue": pred.ks_pvalue if pred else None,
        }

    def to_dict(self) -> dict:
        columns = {name: column_entry(col) for name, col in self.columns.items()}
        return {
            "reference_rows": self.reference_rows,
            "current_rows": self.current_rows,
            "columns": columns,
            "checks": [c.to_dict() for c in self.checks],
            "summary": self.summary(),
        }
