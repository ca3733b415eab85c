"""Detection targets, simulated: no false alarms on stationary data, and each kind of drift caught.

A seeded generator of 20 numerical features (normal, lognormal amounts, integer Poisson counts with
heavy ties, one zero-inflated amount) and 5 categorical ones (3 to 8 categories, unequal shares).
The reference has 100,000 rows. Stationary windows come from the same generator with fresh seeds;
drifted windows apply one change to one column of such a window.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pytest

from drift_assets.simulate.synthetic import (
    AMOUNTS,
    CATEGORIES,
    COUNTS,
    NORMALS,
    NUMERICAL,
    ZERO_INFLATED,
)
from drift_assets.stats import (
    ColumnSpec,
    DecisionRules,
    compare,
    fit_profile,
    summarize,
)
from drift_assets.stats import rules as r
from drift_assets.stats.checks import DEFAULT_CHECKS

pytestmark = pytest.mark.slow  # servers, Dagster runs or long simulations

REFERENCE_ROWS = 100_000

VOCABULARIES = {name: [f"{name}_{k}" for k in range(len(p))] for name, p in CATEGORIES.items()}
SPECS = [ColumnSpec(n, "numerical") for n in NUMERICAL] + [ColumnSpec(c, "categorical") for c in CATEGORIES]
assert len(NUMERICAL) == 20 and len(CATEGORIES) == 5


def categorical(rng: np.random.Generator, name: str, n: int, shares=None) -> pa.DictionaryArray:
    p = CATEGORIES[name] if shares is None else shares
    codes = rng.choice(len(p), size=n, p=p).astype(np.int32)
    return pa.DictionaryArray.from_arrays(pa.array(codes), pa.array(VOCABULARIES[name]))


def generate(rng: np.random.Generator, n: int) -> pa.Table:
    columns: dict[str, pa.Array] = {}
    for name, (mean, sd) in NORMALS.items():
        columns[name] = pa.array(rng.normal(mean, sd, n))
    for name, (mu, sigma) in AMOUNTS.items():
        columns[name] = pa.array(rng.lognormal(mu, sigma, n))
    for name, lam in COUNTS.items():
        columns[name] = pa.array(rng.poisson(lam, n))  # int64, heavy ties
    refunds = rng.lognormal(2.0, 1.0, n)
    refunds[rng.random(n) < 0.4] = 0.0
    columns[ZERO_INFLATED] = pa.array(refunds)
    for name in CATEGORIES:
        columns[name] = categorical(rng, name, n)
    return pa.table(columns)


def window_batches(kind: int, rows: int, index: int, chunk: int = 250_000) -> Iterator[pa.Table]:
    """A window streamed in chunks: a 1M-row window is never in memory at once."""
    rng = np.random.default_rng(np.random.SeedSequence([kind, rows, index]))
    done = 0
    while done < rows:
        n = min(chunk, rows - done)
        yield generate(rng, n)
        done += n


@pytest.fixture(scope="module")
def reference() -> pa.Table:
    return generate(np.random.default_rng(np.random.SeedSequence([0, REFERENCE_ROWS])), REFERENCE_ROWS)


@pytest.fixture(scope="module")
def profile(reference):
    return fit_profile(reference, SPECS)


# --------------------------------------------------------------------------- stationary


# Target: >= 99% of stationary windows fail no check (WARN or ERROR). Measured on this generator
# over larger runs: with Evidently's minimum effect (Wasserstein/sd >= 0.1), 1,000-row windows
# alarmed in 105/10,000 (1.05%), all from features_have_no_significant_drift; with the default
# 0.15 it is 0.27%. 10,000 rows 0/1,000; 100,000 rows 0/100.
STATIONARY = [(1_000, 300), (10_000, 100), (100_000, 20), (1_000_000, 4)]


@pytest.mark.parametrize(("rows", "windows"), STATIONARY, ids=[f"{r}rows" for r, _ in STATIONARY])
def test_stationary_windows_raise_no_alarm_in_99_percent_of_windows(profile, rows, windows, record_property):
    failures = []
    for index in range(windows):
        result = compare(profile, summarize(profile, window_batches(1, rows, index)))
        assert result.current_rows == rows
        failed = result.failed_checks()
        if failed:
            failures.append((index, [(c.name, c.column, round(c.value, 4)) for c in failed]))
    record_property("stationary_windows_with_a_failed_check", f"{len(failures)}/{windows}")
    assert len(failures) <= 0.01 * windows, (
        f"{len(failures)}/{windows} stationary windows of {rows} rows failed a check: {failures}"
    )


# --------------------------------------------------------------------------- drifted windows


def replace_column(table: pa.Table, name: str, values) -> pa.Table:
    array = values if isinstance(values, pa.Array) else pa.array(values)
    return table.set_column(table.schema.get_field_index(name), name, array)


def mean_shift(table, rng, reference):
    _, sd = NORMALS["normal_2"]
    return replace_column(table, "normal_2", table.column("normal_2").to_numpy() + 0.5 * sd)


def scale_change(table, rng, reference):
    mean, _ = NORMALS["normal_5"]
    return replace_column(table, "normal_5", mean + 1.5 * (table.column("normal_5").to_numpy() - mean))


def above_reference_max(table, rng, reference):
    values = table.column("amount_1").to_numpy().copy()
    top = float(np.max(reference.column("amount_1").to_numpy()))
    moved = rng.random(len(values)) < 0.3
    values[moved] = top * rng.uniform(1.01, 3.0, moved.sum())
    return replace_column(table, "amount_1", values)


def category_share_shift(table, rng, reference):
    shares = np.array(CATEGORIES["merchant_type"])
    shifted = shares.copy()
    shifted[0] += 0.10
    shifted[1:] *= (1.0 - shifted[0]) / shares[1:].sum()
    return replace_column(table, "merchant_type", categorical(rng, "merchant_type", table.num_rows, shifted))


def new_category(table, rng, reference):
    column = table.column("country").combine_chunks()
    codes = column.indices.to_numpy().copy()
    new_code = len(VOCABULARIES["country"])
    codes[rng.random(len(codes)) < 0.05] = new_code
    dictionary = pa.array([*VOCABULARIES["country"], "country_new"])
    return replace_column(table, "country", pa.DictionaryArray.from_arrays(pa.array(codes), dictionary))


def missing_rise(table, rng, reference):
    values = table.column("normal_6").to_numpy().copy()
    values[rng.random(len(values)) < 0.10] = np.nan
    return replace_column(table, "normal_6", values)


@dataclass(frozen=True)
class Case:
    drift: Callable
    column: str
    must_fail: dict[str, str]  # check name -> the severity the decision rules give it
    drifted: bool = True


FEATURE_DRIFT = {r.FEATURE_NO_DRIFT: "WARN"}
CASES = {
    "mean_shift_half_sd": Case(mean_shift, "normal_2", FEATURE_DRIFT),
    "scale_1.5x": Case(scale_change, "normal_5", FEATURE_DRIFT),
    "30pct_above_reference_max": Case(
        above_reference_max,
        "amount_1",
        {r.FEATURE_PSI_ERROR: "ERROR", r.FEATURE_PSI_WARN: "WARN", r.FEATURE_NO_DRIFT: "WARN"},
    ),
    "category_share_plus_10_points": Case(category_share_shift, "merchant_type", FEATURE_DRIFT),
    "new_category_5pct": Case(new_category, "country", FEATURE_DRIFT),
    "missing_rate_0_to_10pct": Case(missing_rise, "normal_6", {r.MISSING_RATE: "WARN"}, drifted=False),
}
SEEDS = 20
# A 10-point share change at 1,000 rows is the one borderline target: its power is ~99.5% (1,193 of
# 1,200 seeds in a separate run), and a miss is a window whose realised share moved by only ~5
# points (sd of a 0.5 share at n = 1,000: 0.016). Seeds 0-19 happen to hold two such windows
# (realised shares 0.452 and 0.464, adjusted p 0.30 and 0.065), so this pair is measured on 200
# seeds and must be caught in >= 95% of them; every other pair must be caught in all 20.
BORDERLINE = {("category_share_plus_10_points", 1_000): 200}


def seeds_and_required_rate(case_name: str, rows: int) -> tuple[int, float]:
    if (case_name, rows) in BORDERLINE:
        return BORDERLINE[(case_name, rows)], 0.95
    return SEEDS, 1.0


def drifted_window(case: Case, case_index: int, rows: int, seed: int, reference: pa.Table) -> pa.Table:
    table = pa.concat_tables(window_batches(100 + case_index, rows, seed))
    return case.drift(table, np.random.default_rng(np.random.SeedSequence([200 + case_index, rows, seed])), reference)


@pytest.mark.parametrize("rows", [1_000, 10_000])
@pytest.mark.parametrize("case_name", list(CASES))
def test_each_kind_of_drift_is_caught_with_the_rules_severity(profile, reference, case_name, rows):
    case = CASES[case_name]
    case_index = list(CASES).index(case_name)
    assert all(DEFAULT_CHECKS[name].severity == sev for name, sev in case.must_fail.items())
    seeds, required_rate = seeds_and_required_rate(case_name, rows)
    missed = []
    for seed in range(seeds):
        window = drifted_window(case, case_index, rows, seed, reference)
        result = compare(profile, summarize(profile, window.to_batches()), DecisionRules())
        column = result.columns[case.column]
        failed = {c.name: c.severity for c in result.failed_checks() if c.column == case.column}
        caught = (column.drifted or not case.drifted) and all(
            failed.get(name) == severity for name, severity in case.must_fail.items()
        )
        if not caught:
            missed.append((seed, column.drifted, failed, column.psi, column.adjusted_pvalue))
        # Whatever fails for this column fails with the severity the decision rules give.
        assert all(DEFAULT_CHECKS[name].severity == sev for name, sev in failed.items())
    assert len(missed) <= (1 - required_rate) * seeds, (
        f"{case_name} at {rows} rows missed in {len(missed)}/{seeds} windows: {missed}"
    )


@pytest.mark.parametrize("rows", [1_000, 10_000])
def test_category_share_shift_is_caught_by_the_drift_check_not_by_psi(profile, reference, rows):
    """A 10-point share change has a small PSI (~0.04): the PSI checks rightly pass, and the
    dedicated drift check fails on the size of the share change, measured here independently."""
    name = "category_share_plus_10_points"
    case, case_index = CASES[name], list(CASES).index(name)
    vocabulary = VOCABULARIES["merchant_type"]

    def shares_of(table: pa.Table) -> np.ndarray:
        values = table.column("merchant_type").combine_chunks().dictionary_decode().to_numpy(zero_copy_only=False)
        return np.array([np.mean(values == v) for v in vocabulary])

    ref_shares = shares_of(reference)
    shares = np.array(CATEGORIES["merchant_type"])
    shifted = np.concatenate(([shares[0] + 0.1], shares[1:] * 0.5 / 0.6))
    analytic_psi = float(np.sum((shifted - shares) * np.log(shifted / shares)))
    assert analytic_psi == pytest.approx(0.0405, abs=1e-4)
    seeds, required_rate = seeds_and_required_rate(name, rows)
    psis, missed = [], []
    for seed in range(seeds):
        window = drifted_window(case, case_index, rows, seed, reference)
        result = compare(profile, summarize(profile, [window]))
        checks = {c.name: c for c in result.checks if c.column == "merchant_type"}
        assert checks[r.FEATURE_PSI_WARN].passed and checks[r.FEATURE_PSI_ERROR].passed
        assert checks[r.FEATURE_PSI_WARN].value < 0.1
        drift_check = checks[r.FEATURE_NO_DRIFT]
        assert drift_check.details["effect"] == "max_category_share_change"
        independent_change = float(np.max(np.abs(shares_of(window) - ref_shares)))
        assert drift_check.value == pytest.approx(independent_change, abs=1e-12)
        if drift_check.passed:
            missed.append((seed, independent_change, drift_check.details["adjusted_p_value"]))
        else:  # failed for the right reason: a share moved by >= 0.05, significantly
            assert drift_check.value >= drift_check.threshold == 0.05
            assert drift_check.details["adjusted_p_value"] < 0.05
        psis.append(checks[r.FEATURE_PSI_WARN].value)
    assert len(missed) <= (1 - required_rate) * seeds, f"missed {len(missed)}/{seeds}: {missed}"
    # Mean PSI over the seeds is the analytic value plus the small-sample bias (k-1)(1/n + 1/m).
    bias = (len(vocabulary) - 1) * (1 / rows + 1 / REFERENCE_ROWS)
    assert np.mean(psis) == pytest.approx(analytic_psi + bias, abs=0.005)
