"""Slow drift across windows: CUSUM over the stored per-window results (issue 11, part 3).

The LLM monitor's output length grows 1% a day (drift_assets/simulate/llm.py): the CUSUM must warn
before any hourly window's PSI check does, and stay quiet for >= 200 windows on stationary data.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from drift_assets.monitoring import gradual
from drift_assets.monitoring.config import load_monitors
from drift_assets.monitoring.gradual import gradual_drift, window_z
from drift_assets.simulate import llm
from drift_assets.stats import ColumnSpec, compare, fit_profile, sequential, summarize
from drift_assets.stats import rules as r

COLUMN = "output_length"
HOURLY_ROWS = llm.HOURLY_SHAPE * 195 / llm.HOURLY_SHAPE.mean()  # the simulator's default traffic


def test_cusum_matches_a_hand_computation():
    z = [1.0, 2.0, -0.5, 3.0, 0.2, -4.0, -3.0]
    c = sequential.cusum(z, allowance=0.5, threshold=4.0)
    # S+: 0.5, 2.0, 1.0, 3.5, 3.2, 0, 0 ; S-: 0, 0, 0, 0, 0, 3.5, then 3.5 + 3 - 0.5 = 6 > 4 -> alarm
    np.testing.assert_allclose(c.upper, [0.5, 2.0, 1.0, 3.5, 3.2, 0.0, 0.0])
    np.testing.assert_allclose(c.lower, [0.0, 0.0, 0.0, 0.0, 0.0, 3.5, 6.0])
    assert c.alarms == (6,) and c.first_alarm == 6


def test_the_default_threshold_gives_an_arl0_of_at_least_200_windows():
    h, arl = sequential.calibrate_threshold(runs=1_000, width=2_000, seed=3)
    assert arl >= sequential.TARGET_ARL0 and 3.5 <= h <= sequential.DEFAULT_THRESHOLD
    # Independently: simulated run lengths at the default threshold, another seed.
    z = np.random.default_rng(4).standard_normal((1_000, 2_000))
    assert sequential.run_lengths(z, 0.5, sequential.DEFAULT_THRESHOLD).mean() >= 400


def test_window_z_reads_the_stored_document():
    doc = {
        "columns": {COLUMN: {"current_mean": 11.0, "reference_mean": 10.0, "reference_std": 4.0, "current_valid": 64}}
    }
    assert window_z(doc, COLUMN) == pytest.approx((11.0 - 10.0) / (4.0 / 8.0))
    assert window_z({"columns": {COLUMN: {"current_mean": None}}}, COLUMN) == 0.0


def lengths(g: np.random.Generator, n: int, day: float) -> np.ndarray:
    """Output lengths as the LLM simulator draws them (median x (1 + trend) ** day, lognormal)."""
    median = llm.BASE_MEDIAN_WORDS * (1.0 + llm.TREND_PER_DAY) ** day
    return np.clip(np.round(np.exp(g.normal(np.log(median), llm.LENGTH_SIGMA, n))), 3, llm.MAX_OUTPUT_WORDS)


def hourly_documents(seed: int, hours: int, trend: bool) -> tuple[list[dict], int | None]:
    """Stored-shape drift documents of hourly windows, and the first window whose PSI warn check fails."""
    g = np.random.default_rng(seed)
    profile = fit_profile(pa.table({COLUMN: lengths(g, 20_000, 0.0)}), [ColumnSpec(COLUMN, "numerical")])
    rules = load_monitors().get("llm").rules
    docs, psi_first = [], None
    for hour in range(hours):
        n = max(1, int(g.poisson(HOURLY_ROWS[hour % 24])))
        window = pa.table({COLUMN: lengths(g, n, hour / 24 if trend else 0.0)})
        result = compare(profile, summarize(profile, [window]), rules, top_features={COLUMN})
        docs.append({**result.to_dict(), "partition": str(hour)})
        failed = any(c.name == r.FEATURE_PSI_WARN and not c.passed for c in result.checks)
        if psi_first is None and failed:
            psi_first = hour
    return docs, psi_first


@pytest.mark.slow
def test_stationary_hourly_windows_run_at_least_200_windows_between_alarms(record_property):
    windows = alarms = 0
    for seed in range(8):
        docs, _ = hourly_documents(100 + seed, 500, trend=False)
        alarms += len(gradual_drift(docs, COLUMN).cusum.alarms)
        windows += len(docs)
    record_property("stationary_windows_per_alarm", f"{windows}/{alarms}")
    assert alarms == 0 or windows / alarms >= 200, f"{alarms} alarms in {windows} stationary windows"


@pytest.mark.slow
def test_the_output_length_trend_is_caught_before_the_psi_check_fires(record_property):
    delays = []
    for seed in range(5):
        docs, psi_first = hourly_documents(200 + seed, 24 * 20, trend=True)
        first = gradual_drift(docs, COLUMN).cusum.first_alarm
        assert first is not None, f"seed {seed}: no CUSUM alarm in 20 days"
        assert psi_first is None or first < psi_first, f"seed {seed}: CUSUM {first}, PSI {psi_first}"
        delays.append((first, psi_first))
    record_property("cusum_vs_psi_first_window", str(delays))


def test_cusum_with_a_per_window_allowance_matches_a_hand_computation():
    z = [2.0, 2.0, 2.0, 2.0]
    c = sequential.cusum(z, allowance=[0.5, 1.5, 0.5, 3.0], threshold=3.5)
    # S+: 1.5, 1.5 + 2 - 1.5 = 2.0, 2.0 + 1.5 = 3.5 (not > 3.5), 3.5 + 2 - 3 = 2.5
    np.testing.assert_allclose(c.upper, [1.5, 2.0, 3.5, 2.5])
    assert c.alarms == ()


def doc(partition: str, mean: float, valid: int, *, ref_mean: float = 10.0, ref_std: float = 2.0) -> dict:
    column = {"current_mean": mean, "reference_mean": ref_mean, "reference_std": ref_std, "current_valid": valid}
    return {"partition": partition, "columns": {COLUMN: column}}


def test_the_check_fails_at_the_window_where_the_cusum_crosses_and_restarts_at_a_new_reference():
    # z = (mean - 10) / (2 / sqrt(100)) = 5 * (mean - 10): 0.2 -> z = 1.0, each adds 0.5 to S+.
    previous = [doc(f"w{i}", 10.2, 100) for i in range(10)]
    # After 10 windows S+ = 5.0; this window's z = 1.0 takes it to 5.5 (not > 5.5), then 6.0.
    (at_11,) = gradual.evaluate_gradual_drift(previous, doc("w10", 10.2, 100), [COLUMN])
    assert at_11.passed and at_11.statistic == pytest.approx(5.5) and at_11.windows == 11
    (at_12,) = gradual.evaluate_gradual_drift([*previous, doc("w10", 10.2, 100)], doc("w11", 10.2, 100), [COLUMN])
    assert not at_12.passed and at_12.statistic == pytest.approx(6.0) and at_12.z == pytest.approx(1.0)
    # The same windows measured against another reference before this one: the chain stops there.
    (fresh,) = gradual.evaluate_gradual_drift(previous, doc("w10", 10.2, 100, ref_mean=10.1), [COLUMN])
    assert fresh.windows == 1 and fresh.passed
    # A categorical column (no reference std in the document) gets no outcome.
    assert gradual.evaluate_gradual_drift(previous, {"columns": {COLUMN: {"current_valid": 5}}}, [COLUMN]) == []


def test_a_negligible_offset_in_large_windows_does_not_accumulate():
    # 0.01 reference sd at 20,000 rows a window: z = 0.01 * sqrt(20000) = 1.41 every window.
    docs = [doc(f"w{i}", 10.0 + 0.01 * 2.0, 20_000) for i in range(52)]
    assert (
        gradual.gradual_drift(docs, COLUMN).cusum.first_alarm == 6
    )  # plain allowance 0.5: +0.91 a window, > 5.5 at the 7th
    # MIN_SHIFT_SD = 0.02: allowance 0.02 * sqrt(20000) = 2.83 > z, nothing accumulates in a year.
    assert gradual.gradual_drift(docs, COLUMN, min_shift_sd=gradual.MIN_SHIFT_SD).cusum.alarms == ()
    # 0.05 sd (z = 7.07 > 2.83) is caught within two windows.
    moved = [doc(f"w{i}", 10.0 + 0.05 * 2.0, 20_000) for i in range(3)]
    assert gradual.gradual_drift(moved, COLUMN, min_shift_sd=gradual.MIN_SHIFT_SD).cusum.first_alarm == 1


def test_trailing_documents_reads_the_previous_windows_oldest_first_and_skips_gaps():
    import datetime as dt

    stored = {f"k{h}": doc(f"k{h}", 10.0, 50) for h in (1, 2, 4)}
    start = dt.datetime(2026, 1, 1, 5)
    got = gradual.trailing_documents(stored.get, start, dt.timedelta(hours=1), lambda t: f"k{t.hour}", lookback=5)
    assert [d["partition"] for d in got] == ["k1", "k2", "k4"]


def test_continuing_from_the_stored_state_equals_rebuilding_from_every_document():
    g = np.random.default_rng(5)
    sizes = g.integers(20, 400, 300)
    means = 10.0 + g.normal(0.0, 2.0 / np.sqrt(sizes)) + np.linspace(0.0, 0.4, 300)  # noise + a trend
    docs = [doc(f"w{i:03d}", float(m), int(n)) for i, (m, n) in enumerate(zip(means, sizes, strict=True))]
    stored: list[dict] = []
    failed_at = []
    for i, current in enumerate(docs):
        state = gradual.stored_state(stored[-1], "no_gradual_drift") if stored else None
        (o,) = gradual.evaluate_gradual_drift([], current, [COLUMN], state=state)
        stored.append({**current, "checks": [{"name": "no_gradual_drift", "column": COLUMN, **o.details()}]})
        if not o.passed:
            failed_at.append(i)
    # Independently: one CUSUM over all 300 windows (allowances max(0.5, 0.02 sqrt(n)) by hand).
    z = [(m - 10.0) / (2.0 / np.sqrt(n)) for m, n in zip(means, sizes, strict=True)]
    k = [max(0.5, 0.02 * np.sqrt(n)) for n in sizes]
    assert failed_at == list(sequential.cusum(z, allowance=k).alarms) and failed_at
