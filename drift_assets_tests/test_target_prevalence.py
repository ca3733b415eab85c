"""``target_prevalence_unchanged`` (label drift) where model_performance joins the labels (issue 11):
evaluated once a window's labels cover it, against the 0/1 label of the monitor's reference,
skipped (no result, never "passed") while labels are pending. The statistic is checked against
scipy's chi-square test and a hand count of the label files."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from dagster import AssetCheckKey, AssetKey, instance_for_test
from scipy.stats import chi2_contingency

from drift_assets.stats import DecisionRules
from drift_assets.stats import rules as r
from drift_assets.stats.checks import target_prevalence_check

QUIET = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}
PERFORMANCE = AssetKey(["fraud", "model_performance"])
LABELLED, PENDING = "2026-08-03", "2026-09-07"


def test_the_prevalence_test_matches_scipy_and_fails_only_on_a_real_change():
    # Reference 10,000 rows at 51% positive; windows of 2,000 labelled rows.
    moved = target_prevalence_check("y", 480, 2_000, 5_100, 10_000)  # 0.51 -> 0.24
    _, p, _, _ = chi2_contingency(np.array([[4_900, 5_100], [1_520, 480]]), correction=False)
    assert moved.details["p_value"] == pytest.approx(p, rel=1e-9)
    assert moved.value == pytest.approx(0.51 - 0.24) and moved.threshold == 0.05
    assert not moved.passed and moved.severity == "ERROR" and moved.details["value_kind"] == "share"
    same = target_prevalence_check("y", 1_010, 2_000, 5_100, 10_000)  # 0.505: noise
    assert same.passed
    # Significant but below the minimum change (huge windows): passes; a stricter minimum flips it.
    small = target_prevalence_check("y", 480_000, 1_000_000, 5_100, 10_000)  # 0.51 -> 0.48
    assert small.details["p_value"] < 1e-6 and small.passed
    rules = DecisionRules.from_mapping({"min_prevalence_change": 0.02})
    assert not target_prevalence_check("y", 480_000, 1_000_000, 5_100, 10_000, rules).passed


@pytest.mark.slow
def test_dagster_evaluates_label_drift_on_labelled_weeks_and_skips_pending_ones(project):
    from drift_assets.definitions import build_definitions

    data = project / "data"
    ref = pq.read_table(data / "fraud" / "reference" / "reference.parquet", columns=["is_fraud"])
    ref_rows, ref_pos = ref.num_rows, int(pc.sum(ref.column("is_fraud")).as_py())
    defs = build_definitions()
    key = AssetCheckKey(PERFORMANCE, r.TARGET_PREVALENCE)
    with instance_for_test() as instance:
        job = defs.resolve_job_def("fraud_reference_job")
        assert job.execute_in_process(instance=instance, run_config=QUIET).success
        for week in (LABELLED, PENDING):
            result = defs.resolve_job_def("fraud_window_job").execute_in_process(
                partition_key=week, instance=instance, run_config=QUIET
            )
            assert result.success
        history = {
            rec.partition: rec for rec in instance.event_log_storage.get_asset_check_execution_history(key, limit=20)
        }
        # Labels pending: planned but not evaluated (no result: Dagster shows it not evaluated), never passed.
        assert history[PENDING].status.value == "PLANNED" and not hasattr(history[PENDING].evaluation, "passed")
        evaluation = history[LABELLED].evaluation
        assert evaluation.passed and evaluation.severity.value == "ERROR"
        meta = evaluation.metadata
        assert meta["value_kind"].value == "share"
        assert meta["worst_reference_mean"].value == pytest.approx(ref_pos / ref_rows)
        record = (project / "reports" / "fraud" / "performance" / f"{LABELLED}.json").read_text()
        assert '"reference_labels"' in record
    # The same week with its labels flipped to 40% positive: the check fails (ERROR).
    for path in sorted((data / "fraud" / "labels").glob("arrived=*/*.parquet")):
        table = pq.read_table(path)
        g = np.random.default_rng(0)
        flipped = pa.array((g.random(table.num_rows) < 0.4).astype(table.column("is_fraud").type.to_pandas_dtype()))
        pq.write_table(table.set_column(table.column_names.index("is_fraud"), "is_fraud", flipped), path)
    with instance_for_test() as instance:
        assert (
            defs.resolve_job_def("fraud_reference_job").execute_in_process(instance=instance, run_config=QUIET).success
        )
        assert (
            defs.resolve_job_def("fraud_window_job")
            .execute_in_process(partition_key=LABELLED, instance=instance, run_config=QUIET)
            .success
        )
        (rec,) = instance.event_log_storage.get_asset_check_execution_history(key, limit=20)
        assert not rec.evaluation.passed and rec.evaluation.severity.value == "ERROR"
        assert rec.evaluation.metadata["worst_current_mean"].value == pytest.approx(0.4, abs=0.05)
