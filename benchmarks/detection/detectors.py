"""The detectors compared, each answering "does this column alarm in this window?".

- ``ours``: ``fit_profile`` / ``summarize`` / ``compare`` with the default decision rules; a column
  alarms when any check with that column fails (WARN or ERROR). The window holds the 12 stationary
  family columns (plus one shifted column for power), so Holm's correction runs over 12-13 features,
  as it would in a monitor.
- ``naive``: scipy's two-sample KS (numerical) or chi-square homogeneity (categorical) on the raw
  values, p < 0.05, no correction, NaN dropped.
- ``evidently``: Evidently 0.7.23's default ``DataDriftPreset`` (new API); a column alarms when its
  ``ValueDrift`` verdict is drift (distance >= threshold, or p-value < threshold). A full report
  costs ~0.8 s per column here with a 100,000-row reference, so most windows call the same
  verdict through Evidently's own default stattest (``get_stattest(..., None)``, the function
  ``ValueDrift`` resolves to), ~0.15 s per column; ``Evidently.report_alarms`` runs the real
  ``Report([DataDriftPreset()])`` and the benchmark checks on some windows that both agree.
- ``always`` / ``never``: the trivial baselines (rates 1 and 0 by construction).
"""

from __future__ import annotations

import copy
import re
import warnings
from collections.abc import Mapping

import numpy as np
import pyarrow as pa
from scipy.stats import chi2_contingency, ks_2samp

from drift_assets.stats import ColumnSpec, DecisionRules, ReferenceProfile, fit_profile
from drift_assets.stats.checks import DEFAULT_CHECKS, WindowFacts
from drift_assets.stats.compare import decide_drift, measure_column
from drift_assets.stats.result import ColumnDrift
from drift_assets.stats.summary import WindowSummary, summarize_batch

Columns = Mapping[str, np.ndarray]


def arrow_table(columns: Columns, kinds: Mapping[str, str]) -> pa.Table:
    return pa.table(
        {
            name: pa.array(values.tolist() if kinds[name] == "categorical" else values)
            for name, values in columns.items()
        }
    )


class Ours:
    def __init__(self, reference: Columns, kinds: Mapping[str, str], stationary: list[str]):
        specs = [ColumnSpec(name, kinds[name]) for name in reference]  # type: ignore[arg-type]
        self.kinds = dict(kinds)
        self.profile = fit_profile(arrow_table(reference, kinds), specs)
        self.stationary = stationary

    def _sub_profile(self, names: list[str]) -> ReferenceProfile:
        columns = {n: self.profile.columns[n] for n in names}
        return ReferenceProfile(columns, self.profile.reference_rows, self.profile.psi_bins)

    def summarize(self, columns: Columns) -> WindowSummary:
        profile = self._sub_profile(list(columns))
        return summarize_batch(profile, arrow_table(columns, self.kinds))

    def measure(self, summary: WindowSummary) -> dict[str, ColumnDrift]:
        rules = DecisionRules()
        return {n: measure_column(self.profile.columns[n], c, rules.psi_epsilon) for n, c in summary.columns.items()}

    def failed(self, base: dict[str, ColumnDrift], extra: dict[str, ColumnDrift] | None = None) -> list:
        """The failed check outcomes of the window: the steps of ``stats.compare.compare`` (measure,
        decide with Holm over the window's features, evaluate the check table), with the stationary
        columns measured once per window."""
        columns = {n: copy.copy(c) for n, c in {**base, **(extra or {})}.items()}
        rules = DecisionRules()
        decide_drift(columns, rules)
        return [o for o in DEFAULT_CHECKS.evaluate_window(WindowFacts(columns, {}, rules, None)) if not o.passed]

    def alarms(self, base: dict[str, ColumnDrift], extra: dict[str, ColumnDrift] | None = None) -> dict[str, bool]:
        """Per column: did any of its checks fail? ``"(window)"``: did any check fail at all?"""
        failed = self.failed(base, extra)
        out = {name: any(c.column == name for c in failed) for name in {**base, **(extra or {})}}
        out["(window)"] = bool(failed)
        return out


_REFERENCE_COUNTS: dict[int, dict] = {}


def _category_counts(values: np.ndarray) -> dict:
    keys, counts = np.unique(values.astype(str), return_counts=True)
    return dict(zip(keys.tolist(), counts.tolist(), strict=True))


def naive_alarm(reference: np.ndarray, current: np.ndarray, kind: str) -> bool:
    if kind == "numerical":
        ref, cur = reference, current[~np.isnan(current)]  # the reference columns have no NaN
        if cur.size == 0:
            return False
        return bool(ks_2samp(ref, cur).pvalue < 0.05)
    if id(reference) not in _REFERENCE_COUNTS:
        _REFERENCE_COUNTS[id(reference)] = _category_counts(reference)
    ref_counts = _REFERENCE_COUNTS[id(reference)]
    cur_counts = _category_counts(current)
    values = sorted(set(ref_counts) | set(cur_counts))
    if len(values) < 2:
        return False
    table = np.array([[ref_counts.get(v, 0) for v in values], [cur_counts.get(v, 0) for v in values]])
    return bool(chi2_contingency(table)[1] < 0.05)


_VALUE_DRIFT = re.compile(r"ValueDrift\(column=(?P<column>.*?),method=(?P<method>.*?),threshold=(?P<threshold>[^)]*)\)")


class Evidently:
    """One ``Report([DataDriftPreset()])`` per window over all its columns (the preset is per column)."""

    def __init__(self, reference: Columns, kinds: Mapping[str, str]):
        import pandas as pd

        self.pd = pd
        self.kinds = dict(kinds)
        self.reference = pd.DataFrame({n: self._series(n, v) for n, v in reference.items()})

    def _series(self, name: str, values: np.ndarray):
        return values.astype(object) if self.kinds[name] == "categorical" else values

    def alarms(self, columns: Columns) -> dict[str, bool]:
        """Evidently's per-column verdict through its default stattest (what ``ValueDrift`` resolves)."""
        from evidently.legacy.calculations.stattests.registry import get_stattest
        from evidently.legacy.core import ColumnType

        out = {}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for name, values in columns.items():
                kind = ColumnType.Numerical if self.kinds[name] == "numerical" else ColumnType.Categorical
                ref = self.reference[name].dropna()
                cur = self.pd.Series(self._series(name, values)).dropna()
                if cur.empty:
                    out[name] = False
                    continue
                test = get_stattest(ref, cur, kind, None)
                out[name] = bool(test(ref, cur, kind, None).drifted)
        out["(window)"] = any(out.values())
        return out

    def report_alarms(self, columns: Columns) -> dict[str, bool]:
        """The same verdicts from a real ``Report([DataDriftPreset()])`` (slow: for validation)."""
        from evidently import DataDefinition, Dataset, Report
        from evidently.presets import DataDriftPreset

        names = list(columns)
        definition = DataDefinition(
            numerical_columns=[n for n in names if self.kinds[n] == "numerical"],
            categorical_columns=[n for n in names if self.kinds[n] == "categorical"],
        )
        current = self.pd.DataFrame({n: self._series(n, columns[n]) for n in names})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            snapshot = Report([DataDriftPreset()]).run(
                current_data=Dataset.from_pandas(current, data_definition=definition),
                reference_data=Dataset.from_pandas(self.reference[names], data_definition=definition),
            )
        out = dict.fromkeys(names, False)
        for metric in snapshot.dict()["metrics"]:
            match = _VALUE_DRIFT.fullmatch(metric["metric_name"])
            if not match or match["column"] not in out:
                continue
            value, threshold = float(metric["value"]), float(match["threshold"])
            is_pvalue = "p_value" in match["method"]
            out[match["column"]] = bool(value < threshold if is_pvalue else value >= threshold)
        out["(window)"] = any(out.values())
        return out
