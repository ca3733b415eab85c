"""Segment-wise drift: per-segment counts against an independent filter-then-summarise, the
8%-segment target, stationary windows with 3 segment columns, and bad input."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from test_stats_detection import SPECS, generate, replace_column, window_batches

from drift_assets.simulate.synthetic import NORMALS
from drift_assets.stats import ColumnSpec, SchemaError, compare, fit_profile, summarize
from drift_assets.stats import segments as sg

REGIONS = [0.5, 0.27, 0.15, 0.08]  # region=r3 holds 8% of rows
SEGMENT_COLUMNS = ["channel", "card_type", "region"]
SEGMENT_SPECS = [*SPECS, ColumnSpec("region", "categorical")]


def with_region(table: pa.Table, rng: np.random.Generator) -> pa.Table:
    codes = rng.choice(len(REGIONS), size=table.num_rows, p=REGIONS).astype(np.int32)
    names = pa.array([f"r{k}" for k in range(len(REGIONS))])
    return table.append_column("region", pa.DictionaryArray.from_arrays(pa.array(codes), names))


def shift_in_region_r3(table: pa.Table) -> pa.Table:
    _, sd = NORMALS["normal_2"]
    in_r3 = pc.equal(table.column("region").combine_chunks().dictionary_decode(), "r3").to_numpy(zero_copy_only=False)
    values = table.column("normal_2").to_numpy() + np.where(in_r3, sd, 0.0)
    return replace_column(table, "normal_2", values)


@pytest.fixture(scope="module")
def reference() -> pa.Table:
    rng = np.random.default_rng(np.random.SeedSequence([21, 0]))
    return with_region(generate(rng, 100_000), rng)


@pytest.fixture(scope="module")
def profile(reference):
    return fit_profile(reference, SEGMENT_SPECS)


@pytest.fixture(scope="module")
def segment_profiles(profile, reference):
    return sg.fit_segment_profiles(profile, reference, SEGMENT_COLUMNS)


def test_segment_counts_are_the_filtered_rows_summarised_and_they_merge(profile, segment_profiles):
    rng = np.random.default_rng(1)
    window = with_region(generate(rng, 20_000), rng)
    streamed = sg.summarize_segments(profile, window.to_batches(3_000), segment_profiles.values_by_column)
    halves = sg.summarize_segments(
        profile, [window.slice(0, 9_000)], segment_profiles.values_by_column
    ) + sg.summarize_segments(profile, [window.slice(9_000)], segment_profiles.values_by_column)
    region = window.column("region").combine_chunks().dictionary_decode()
    for value in ("r0", "r3"):
        independent = summarize(profile, [window.filter(pc.equal(region, value))])
        for summary in (streamed.segments[f"region={value}"], halves.segments[f"region={value}"]):
            assert summary.rows == independent.rows
            np.testing.assert_array_equal(
                summary.columns["normal_2"].sketch_counts, independent.columns["normal_2"].sketch_counts
            )
            np.testing.assert_array_equal(summary.columns["country"].counts, independent.columns["country"].counts)
    # Each segment column partitions the rows.
    for column in SEGMENT_COLUMNS:
        rows = sum(s.rows for k, s in streamed.segments.items() if k.startswith(f"{column}="))
        assert rows + streamed.other_rows[column] == 20_000 and streamed.other_rows[column] == 0
    restored = sg.SegmentedSummary.from_dict(streamed.to_dict())
    assert restored.segments["region=r3"].rows == streamed.segments["region=r3"].rows


def test_a_one_sd_shift_in_an_8_percent_segment_is_caught_while_global_psi_stays_below_0_1(
    profile, segment_profiles, record_property
):
    seeds, caught, global_psis = 20, 0, []
    for seed in range(seeds):
        rng = np.random.default_rng(np.random.SeedSequence([22, seed]))
        window = shift_in_region_r3(with_region(generate(rng, 50_000), rng))
        global_psis.append(compare(profile, summarize(profile, [window])).columns["normal_2"].psi)
        segmented = sg.summarize_segments(profile, window.to_batches(20_000), segment_profiles.values_by_column)
        result = sg.evaluate_segments(segment_profiles, segmented)
        check = sg.segment_check(result)
        first = result.findings[0] if result.findings else None
        if first and (first.segment, first.column) == ("region=r3", "normal_2"):
            caught += 1
            assert not check.passed and check.details["segment"] == "region=r3" and check.column == "normal_2"
        # Nothing else drifts: every finding is the shifted feature in the shifted segment.
        assert {(f.segment, f.column) for f in result.findings} <= {("region=r3", "normal_2")}
    record_property("caught", f"{caught}/{seeds}")
    record_property("global_psi_max", max(global_psis))
    assert caught >= 0.95 * seeds
    assert max(global_psis) < 0.1


STATIONARY = [
    pytest.param(1_000, 100, id="1000rows"),
    pytest.param(10_000, 40, id="10000rows"),
    pytest.param(100_000, 6, id="100000rows", marks=pytest.mark.slow),
    pytest.param(1_000_000, 1, id="1000000rows", marks=pytest.mark.slow),
]


@pytest.mark.parametrize(("rows", "windows"), STATIONARY)
def test_stationary_windows_fail_the_segment_check_in_at_most_1_percent(
    profile, segment_profiles, rows, windows, record_property
):
    failures, evaluated = [], 0
    for index in range(windows):
        batches = window_batches(6, rows, index)
        rng = np.random.default_rng(np.random.SeedSequence([23, rows, index]))
        segmented = sg.summarize_segments(
            profile, (with_region(b, rng) for b in batches), segment_profiles.values_by_column
        )
        result = sg.evaluate_segments(segment_profiles, segmented)
        evaluated += len(result.columns)
        if result.findings:
            failures.append((index, [(f.segment, f.column, f.adjusted_pvalue) for f in result.findings]))
    record_property("stationary_segment_failures", f"{len(failures)}/{windows}")
    record_property("segments_evaluated", evaluated)
    assert len(failures) <= 0.01 * windows, failures
    assert evaluated > 0


def test_small_segments_are_skipped_with_a_reason_not_passed(profile, segment_profiles):
    rng = np.random.default_rng(5)
    window = shift_in_region_r3(with_region(generate(rng, 2_000), rng))  # region=r3 has ~160 rows
    result = sg.evaluate_segments(
        segment_profiles, sg.summarize_segments(profile, [window], segment_profiles.values_by_column)
    )
    assert "region=r3" not in result.columns
    assert "fewer than min_segment_rows=500" in result.skipped["region=r3"]
    assert "region=r0" in result.columns  # ~1,000 rows: evaluated
    nothing = sg.evaluate_segments(
        segment_profiles, sg.summarize_segments(profile, [window.slice(0, 300)], segment_profiles.values_by_column)
    )
    assert nothing.columns == {} and sg.segment_check(nothing) is None


def test_a_missing_segment_column_is_named(profile, reference, segment_profiles):
    with pytest.raises(SchemaError, match="segment column 'merchant_category' is missing"):
        sg.fit_segment_profiles(profile, reference, ["merchant_category"])
    window = generate(np.random.default_rng(6), 2_000)  # no region column
    segmented = sg.summarize_segments(profile, [window], segment_profiles.values_by_column)
    result = sg.evaluate_segments(segment_profiles, segmented)
    assert result.skipped["region"] == "current window: segment column 'region' is missing"


def test_label_cardinality_is_bounded(profile, reference):
    values = sg.segment_values(reference, "country", max_segments=3)
    assert len(values) == 3
    counts = pc.value_counts(reference.column("country").combine_chunks().dictionary_decode())
    top = sorted(
        zip(counts.field("values").to_pylist(), counts.field("counts").to_pylist(), strict=True), key=lambda vc: -vc[1]
    )[:3]
    assert values == [v for v, _ in top]
    segmented = sg.summarize_segments(profile, [reference.slice(0, 10_000)], {"country": values})
    assert len(segmented.segments) == 3 and segmented.other_rows["country"] > 0
