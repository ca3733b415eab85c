"""Slow drift across windows: CUSUM over the stored per-window results (issue 11, part 3).

The LLM monitor's output length grows 1% a day (drift_assets/simulate/llm.py): the CUSUM must warn
before any hourly window's PSI check does, and stay quiet for >= 200 windows on stationary data.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

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
