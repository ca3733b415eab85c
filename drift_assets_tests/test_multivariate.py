"""Reconstruction-error multivariate drift: the encoding and PCA checked against independent
computations (scipy, scikit-learn's PCA), mergeable counts, the correlation-flip target, stationary
windows of 1k to 1M rows, and bad input.

Data: the suite's column mix (``test_stats_detection.generate``: normal, lognormal, Poisson counts,
a zero-inflated amount, 5 categorical columns). For the flip, ``normal_0`` and ``normal_1`` are
replaced by a bivariate normal pair with the same marginals and correlation 0.6 (reference) or
-0.6 (window).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from scipy import stats
from sklearn.decomposition import PCA
from test_stats_detection import SPECS, generate, replace_column, window_batches

from drift_assets.simulate.synthetic import NORMALS
from drift_assets.stats import ColumnSpec, ProfileError, SchemaError, compare, fit_profile, summarize
from drift_assets.stats import multivariate as mv
from drift_assets.stats.explain import explain_reconstruction

REFERENCE_ROWS = 100_000
PAIR = ("normal_0", "normal_1")


def with_correlated_pair(table: pa.Table, rng: np.random.Generator, rho: float) -> pa.Table:
    """Replace the pair by a bivariate normal with correlation ``rho`` and the original marginals."""
    a = rng.normal(size=table.num_rows)
    b = rho * a + np.sqrt(1 - rho**2) * rng.normal(size=table.num_rows)
    for name, z in zip(PAIR, (a, b), strict=True):
        mean, sd = NORMALS[name]
        table = replace_column(table, name, mean + sd * z)
    return table


@pytest.fixture(scope="module")
def reference() -> pa.Table:
    rng = np.random.default_rng(np.random.SeedSequence([14, REFERENCE_ROWS]))
    return with_correlated_pair(generate(rng, REFERENCE_ROWS), rng, 0.6)


@pytest.fixture(scope="module")
def model(reference) -> mv.ReconstructionModel:
    return mv.fit_reconstruction(reference, SPECS)


def encoded_halves(model: mv.ReconstructionModel, reference: pa.Table) -> tuple[np.ndarray, np.ndarray]:
    fit_rows, calibration_rows = mv.reference_halves(reference.num_rows, mv.DEFAULT_MAX_HALF_ROWS, 0)
    zeros = np.zeros(len(model.centre))
    return tuple(  # type: ignore[return-value]
        mv.encode_table(model.encodings, zeros, reference.take(pa.array(rows)), "reference")
        for rows in (fit_rows, calibration_rows)
    )


# --------------------------------------------------------------------------- against independent computations


def test_numerical_encoding_is_the_standardised_normal_score_of_the_reference_rank(model, reference):
    fit_rows, _ = mv.reference_halves(reference.num_rows, mv.DEFAULT_MAX_HALF_ROWS, 0)
    values = reference.column("amount_3").to_numpy()[fit_rows]  # lognormal: plain z-scores would be skewed
    encoding = next(e for e in model.encodings if e.name == "amount_3")
    ours = np.interp(values, encoding.knots, encoding.scores)
    independent = stats.norm.ppf(stats.rankdata(values) / (len(values) + 1))
    assert np.corrcoef(ours, independent)[0, 1] > 0.999
    assert ours.mean() == pytest.approx(0.0, abs=1e-9) and ours.std() == pytest.approx(1.0, abs=1e-9)
    assert stats.skew(ours) == pytest.approx(0.0, abs=0.05)


def test_categorical_blocks_are_white_and_the_pca_matches_scikit_learn(model, reference):
    fitting, held_out = encoded_halves(model, reference)
    slices = model.column_slices()
    block = fitting[:, slices["country"]]  # 7 categories -> 6 whitened directions
    assert block.shape[1] == 6
    np.testing.assert_allclose(np.cov(block, rowvar=False, bias=True), np.eye(6), atol=1e-9)
    pca = PCA(n_components=mv.DEFAULT_VARIANCE_SHARE, svd_solver="full").fit(fitting)
    assert model.kept_components == pca.n_components_
    # The calibration's per-row errors are scikit-learn's squared reconstruction residuals.
    residual = held_out - pca.inverse_transform(pca.transform(held_out))
    errors = np.sum(residual**2, axis=1)
    assert model.calibration.mean == pytest.approx(errors.mean(), rel=1e-6)
    assert model.calibration.sd == pytest.approx(errors.std(ddof=1), rel=1e-6)
    assert model.calibration.rows == len(held_out) == REFERENCE_ROWS // 2


def test_window_mean_error_from_streamed_counts_equals_the_per_row_errors(model, reference):
    rng = np.random.default_rng(5)
    window = with_correlated_pair(generate(rng, 7_000), rng, -0.6)
    fitting, _ = encoded_halves(model, reference)
    pca = PCA(n_components=model.kept_components, svd_solver="full").fit(fitting)
    encoded = mv.encode_table(model.encodings, np.zeros(len(model.centre)), window, "current window")
    direct = np.mean(np.sum((encoded - pca.inverse_transform(pca.transform(encoded))) ** 2, axis=1))
    streamed = mv.reconstruction_counts(model, window.to_batches(max_chunksize=1_000))
    whole = mv.count_batch(model, window)
    parts = mv.count_batch(model, window.slice(0, 2_500)) + mv.count_batch(model, window.slice(2_500))
    for counts in (streamed, whole, parts):
        assert counts.rows == counts.rows_seen == 7_000
        assert mv.evaluate_reconstruction(model, counts).mean_error == pytest.approx(direct, rel=1e-9)
    np.testing.assert_allclose(parts.sum_xx, whole.sum_xx, rtol=1e-9, atol=1e-9)
    restored = mv.ReconstructionCounts.from_dict(streamed.to_dict())
    assert mv.evaluate_reconstruction(model, restored).mean_error == pytest.approx(direct, rel=1e-9)


def test_threshold_is_the_normal_quantile_of_the_two_sample_mean_difference():
    calibration = mv.Calibration(rows=50_000, mean=4.0, sd=2.0, third_moment=0.0, residual_moment=np.eye(1))
    for rows in (1_000, 100_000):
        expected = 4.0 + stats.norm.isf(0.001) * 2.0 * np.sqrt(1 / rows + 1 / 50_000)
        assert mv.error_threshold(calibration, rows, 0.001, 0.0) == pytest.approx(expected, rel=1e-12)
    # The effect floor wins when the statistical threshold is tighter than 5% of the mean.
    assert mv.error_threshold(calibration, 10**7, 0.001, 0.05) == pytest.approx(4.2)
    skewed = mv.Calibration(50_000, 4.0, 2.0, third_moment=8.0 * 2.0**3, residual_moment=np.eye(1))
    assert mv.error_threshold(skewed, 1_000, 0.001, 0.0) > mv.error_threshold(calibration, 1_000, 0.001, 0.0)


def test_model_round_trips_through_versioned_json(model, reference):
    restored = mv.ReconstructionModel.from_json(model.to_json())
    rng = np.random.default_rng(3)
    window = with_correlated_pair(generate(rng, 2_000), rng, 0.6)
    a = mv.evaluate_reconstruction(model, mv.reconstruction_counts(model, [window]))
    b = mv.evaluate_reconstruction(restored, mv.reconstruction_counts(restored, [window]))
    assert a.to_dict() == b.to_dict()
    data = model.to_dict()
    with pytest.raises(ProfileError, match="version 99 is not supported"):
        mv.ReconstructionModel.from_dict({**data, "version": 99})
    with pytest.raises(ProfileError, match="not a reconstruction model"):
        mv.ReconstructionModel.from_dict({**data, "format": "something else"})


# --------------------------------------------------------------------------- targets


def test_correlation_flip_is_caught_and_explained_while_univariate_checks_pass(model, reference):
    """rho 0.6 -> -0.6, marginals unchanged, 5,000-row windows: caught in >= 95% of 20 seeds (all
    20 measured), both features named; the univariate checks on the same windows do not fail."""
    profile = fit_profile(reference, SPECS)
    seeds, caught, named, univariate_failures = 20, 0, 0, []
    for seed in range(seeds):
        rng = np.random.default_rng(np.random.SeedSequence([15, seed]))
        window = with_correlated_pair(generate(rng, 5_000), rng, -0.6)
        result = mv.evaluate_reconstruction(model, mv.reconstruction_counts(model, window.to_batches(2_000)))
        caught += result.drifted
        named += set(PAIR) <= set(result.explained_by)
        univariate = compare(profile, summarize(profile, [window]))
        univariate_failures += [(seed, c.name, c.column) for c in univariate.failed_checks()]
        assert not any(univariate.columns[name].drifted for name in PAIR)
        if seed == 0:
            text = explain_reconstruction(result)
            assert "normal_0" in text and "normal_1" in text
            change = result.correlation_changes[0]
            assert set(change.columns) == set(PAIR)
            assert change.reference == pytest.approx(0.6, abs=0.02) and change.current == pytest.approx(-0.6, abs=0.05)
    assert caught >= 0.95 * seeds and named >= 0.95 * seeds, (caught, named)
    assert not [f for f in univariate_failures if f[2] in PAIR], univariate_failures
    assert len({f[0] for f in univariate_failures}) <= 0.05 * seeds, univariate_failures


STATIONARY = [(1_000, 300), (10_000, 100), (100_000, 20), (1_000_000, 4)]


@pytest.mark.parametrize(("rows", "windows"), STATIONARY, ids=[f"{r}rows" for r, _ in STATIONARY])
def test_stationary_windows_fail_the_check_in_at_most_1_percent(rows, windows, record_property):
    """The suite's own generator and reference (independent columns), windows streamed in chunks and
    sampled to ~50,000 evaluated rows beyond that size."""
    reference = generate(np.random.default_rng(np.random.SeedSequence([0, 100_000])), 100_000)
    model = mv.fit_reconstruction(reference, SPECS)
    rate = mv.sample_rate_for(rows)
    failures, z_scores = [], []
    for index in range(windows):
        counts = mv.reconstruction_counts(model, window_batches(3, rows, index), sample_rate=rate, seed=index)
        result = mv.evaluate_reconstruction(model, counts)
        assert result.rows_seen == rows and result.skipped is None
        z_scores.append(result.z_score)
        if result.drifted:
            failures.append((index, result.mean_error, result.threshold))
    record_property("stationary_multivariate_failures", f"{len(failures)}/{windows}")
    record_property("max_z", max(z_scores))
    assert len(failures) <= 0.01 * windows, failures


def test_large_windows_are_evaluated_on_a_seeded_sample_of_about_50000_rows(model):
    assert mv.sample_rate_for(None) == mv.sample_rate_for(50_000) == 1.0
    rate = mv.sample_rate_for(400_000)
    assert rate == pytest.approx(0.125)
    first = mv.reconstruction_counts(model, window_batches(4, 400_000, 0), sample_rate=rate, seed=7)
    again = mv.reconstruction_counts(model, window_batches(4, 400_000, 0), sample_rate=rate, seed=7)
    assert first.rows_seen == 400_000
    assert abs(first.rows - 50_000) < 5 * np.sqrt(400_000 * rate * (1 - rate))
    np.testing.assert_array_equal(first.sum_xx, again.sum_xx)


# --------------------------------------------------------------------------- missing values and bad input


def test_missing_values_are_imputed_at_the_centre_and_add_no_error(model):
    rng = np.random.default_rng(9)
    window = with_correlated_pair(generate(rng, 5_000), rng, 0.6)
    clean = mv.evaluate_reconstruction(model, mv.count_batch(model, window))
    for name in ("normal_3", "amount_1", "count_2"):
        values = window.column(name).to_numpy().astype(float)
        values[rng.random(len(values)) < 0.3] = np.nan
        window = replace_column(window, name, values)
    mask = pa.array(rng.random(window.num_rows) < 0.3)
    channel = window.column("channel").combine_chunks().dictionary_decode()
    window = replace_column(window, "channel", pa.compute.if_else(mask, pa.nulls(len(channel), pa.string()), channel))
    holes = mv.evaluate_reconstruction(model, mv.count_batch(model, window))
    assert not clean.drifted and holes.rows_evaluated == 5_000 and not holes.drifted
    assert holes.mean_error < clean.mean_error  # a missing value contributes exactly 0


def test_a_single_column_monitor_is_skipped_with_a_reason(reference):
    specs = [ColumnSpec("amount_1", "numerical"), ColumnSpec("score", "numerical", "prediction")]
    reason = mv.skip_reason(specs)
    assert reason is not None and "at least 2 feature columns" in reason and "'amount_1'" in reason
    with pytest.raises(ProfileError, match="at least 2 feature columns"):
        mv.fit_reconstruction(reference, specs)
    assert mv.skip_reason(SPECS) is None


def test_a_missing_or_mistyped_window_column_skips_the_check_naming_the_column(model):
    window = generate(np.random.default_rng(4), 1_000)
    absent = mv.evaluate_reconstruction(model, mv.count_batch(model, window.drop_columns(["amount_2"])))
    assert absent.skipped is not None and "'amount_2' is missing" in absent.skipped
    assert mv.reconstruction_check(absent) is None  # skipped, not reported as passing
    as_text = replace_column(window, "normal_4", pa.array([str(v) for v in window.column("normal_4").to_pylist()]))
    mistyped = mv.evaluate_reconstruction(model, mv.count_batch(model, as_text))
    assert mistyped.skipped is not None and "'normal_4' should be numerical" in mistyped.skipped


def test_check_outcome_carries_value_threshold_and_features(model):
    rng = np.random.default_rng(11)
    window = with_correlated_pair(generate(rng, 5_000), rng, -0.6)
    check = mv.reconstruction_check(mv.evaluate_reconstruction(model, mv.count_batch(model, window)))
    assert check is not None and check.name == "no_multivariate_drift" and check.severity == "ERROR"
    assert not check.passed and check.value > check.threshold
    assert set(PAIR) <= set(check.details["explained_by"])


# --------------------------------------------------------------------------- compare's one-read fit (issue 16)


def test_model_fitted_from_its_sample_rows_is_the_whole_tables_fit(reference, model):
    """``compare`` takes the model's rows from the profile fit's column reads (or streams them):
    the same rows in the same order give the same model, byte for byte in its JSON."""
    rows = mv.fit_sample_rows(reference.num_rows)
    assert len(rows) == 2 * min(reference.num_rows // 2, mv.DEFAULT_MAX_HALF_ROWS) and np.all(np.diff(rows) > 0)
    tapped = mv.fit_reconstruction_from_sample(reference.take(pa.array(rows)), reference.num_rows, SPECS)
    assert tapped.to_json() == model.to_json()
    streamed = mv.take_rows(iter(reference.to_batches(max_chunksize=7_777)), rows)
    assert streamed is not None and streamed.equals(reference.take(pa.array(rows)))
    assert mv.fit_reconstruction_from_sample(streamed, reference.num_rows, SPECS).to_json() == model.to_json()
    small = reference.slice(0, 1_000)  # fewer rows than two capped halves: every row is used
    assert len(mv.fit_sample_rows(1_000)) == 1_000
    whole = mv.fit_reconstruction(small, SPECS).to_json()
    assert mv.fit_reconstruction_from_sample(small, 1_000, SPECS).to_json() == whole
    with pytest.raises(ValueError, match="expected the"):
        mv.fit_reconstruction_from_sample(small.slice(0, 900), 1_000, SPECS)
    with pytest.raises(ProfileError, match="at least 400"):
        mv.fit_reconstruction_from_sample(small.slice(0, 300), 300, SPECS)


def test_interp_is_numpy_interp_exactly():
    """The encoding's knot lookup goes through bin_index; the values are np.interp's, bit for bit:
    ties at knots, just beside them, outside the range, +-inf, NaN, -0.0, extreme and zero scores."""
    rng = np.random.default_rng(16)
    families = [
        rng.normal(size=5_000),
        rng.lognormal(size=5_000) * 1e3,
        rng.poisson(3, 5_000).astype(float),
        np.concatenate([np.zeros(3_000), rng.exponential(size=2_000)]),
    ]
    for trial in range(120):
        ref = families[trial % 4]
        knots = np.unique(np.quantile(ref, np.linspace(0, 1, int(rng.integers(2, 260)))))
        if len(knots) < 2:
            continue
        scores = np.sort(rng.normal(size=len(knots))) * rng.choice([1.0, 1e-300, 1e300])
        if trial % 5 == 0:  # signed zeros at the ends and inside: the end values keep their sign
            scores[[0, -1, len(scores) // 2]] = rng.choice([0.0, -0.0], 3)
        x = np.concatenate(
            [
                rng.choice(ref, 2_000),
                knots,
                np.nextafter(knots, np.inf),
                np.nextafter(knots, -np.inf),
                [np.nan, np.inf, -np.inf, -0.0, 0.0, 1e308, -1e308, 5e-324],
                rng.normal(size=300) * 1e5,
            ]
        )
        expected, got = np.interp(x, knots, scores), mv.interp(x, knots, scores)
        assert got.tobytes() == expected.tobytes(), trial
        into = np.empty((len(x), 3), order="F")[:, 1]  # a Fortran matrix's column, as encode_table's
        assert mv.interp(x, knots, scores, out=into) is into and into.tobytes() == expected.tobytes(), trial


# --------------------------------------------------------------------------- compare's overlapped fit (issue 16)


def test_covariance_in_place_is_np_cov_bit_for_bit():
    """The model's covariance is centred in the encoded matrix's own memory (no copy of it): the
    same matrix as ``np.cov(..., rowvar=False, bias=True)``, bit for bit, whatever the shape."""
    rng = np.random.default_rng(16)
    for rows, width in ((100_000, 41), (5_000, 60), (777, 1), (20, 2)):
        encoded = np.ascontiguousarray(rng.normal(3.0, rng.uniform(0.1, 50.0, width), (rows, width)))
        for layout in (encoded, np.asfortranarray(encoded)):  # encode_table's matrices are Fortran-ordered
            expected = np.atleast_2d(np.cov(layout, rowvar=False, bias=True))
            assert np.array_equal(np.atleast_2d(mv.covariance_in_place(layout.copy(order="K"))), expected)


def test_encoding_in_row_blocks_is_the_whole_batchs(reference, model, monkeypatch):
    """``encode_table`` encodes blocks of rows (less scratch memory): the same matrix, bit for
    bit, with blocks smaller than, equal to and larger than the batch (and a ragged last block)."""
    rows = reference.slice(0, 5_000)
    monkeypatch.setattr(mv, "ENCODE_BLOCK_ROWS", 1_000_000)
    whole = mv.encode_table(model.encodings, model.centre, rows, "reference")
    assert whole.shape == (5_000, len(model.centre)) and whole.flags.f_contiguous
    for block in (1, 333, 4_999, 5_000):
        monkeypatch.setattr(mv, "ENCODE_BLOCK_ROWS", block)
        assert np.array_equal(mv.encode_table(model.encodings, model.centre, rows, "reference"), whole, equal_nan=True)
    empty = mv.encode_table(model.encodings, model.centre, rows.slice(0, 0), "reference")
    assert empty.shape == (0, len(model.centre))


def test_counts_from_presampled_batches(reference, model):
    """``compare`` samples the window's rows before the model exists (``sample_batch``), counting
    them later with ``rows_seen``: the same counts as the one-step calls."""
    window = reference.slice(0, 30_000)
    one_step, two_step = np.random.default_rng(5), np.random.default_rng(5)
    for batch in window.to_batches(max_chunksize=7_000):
        direct = mv.count_batch(model, batch, sample_rate=0.3, rng=one_step)
        sampled = mv.sample_batch(batch, model.columns, 0.3, two_step)
        assert 0 < sampled.num_rows < batch.num_rows
        later = mv.count_batch(model, sampled, rows_seen=batch.num_rows)
        assert direct.to_dict() == later.to_dict() and later.rows_seen == batch.num_rows


def test_model_from_columns_encoded_one_at_a_time_is_the_whole_tables_fit(reference, model):
    """``compare`` encodes each feature column of the two halves as the profile fit reads it, on
    the profile's threads, in whatever order they finish: the model assembled from those columns
    is the one-call fit, byte for byte in its JSON; a feature not encoded is named."""
    fit_rows, calibration_rows = mv.reference_halves(reference.num_rows, mv.DEFAULT_MAX_HALF_ROWS, 0)
    fitting, held_out = reference.take(pa.array(fit_rows)), reference.take(pa.array(calibration_rows))
    features = [s for s in SPECS if s.role == "feature"]
    columns = {
        s.name: mv.encode_reference_column(s, fitting.column(s.name), held_out.column(s.name))
        for s in reversed(features)
    }
    assert all(c.fitting.shape == (len(fit_rows), c.encoding.width) for c in columns.values())
    rebuilt = mv.fit_reconstruction_from_encoded_columns(columns, reference.num_rows, SPECS)
    assert rebuilt.to_json() == model.to_json()
    del columns[features[2].name]
    with pytest.raises(SchemaError, match=repr(features[2].name)):
        mv.fit_reconstruction_from_encoded_columns(columns, reference.num_rows, SPECS)
    with pytest.raises(SchemaError, match="should be numerical"):
        numerical = next(s for s in features if s.kind == "numerical")
        mv.encode_reference_column(numerical, fitting.column("channel"), held_out.column("channel"))
