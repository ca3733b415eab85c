"""The reference fit: counts read off the sorted column, and the exact streamed fit (issues 12, 16).

The "old path" below is the fit as it was before (edges from ``np.unique``/``np.isin`` on the
sorted values, counts by re-binning every value with ``searchsorted`` + ``bincount``), kept here
verbatim as the independent computation both new paths must reproduce.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from drift_assets.stats import ColumnSpec, fit_profile
from drift_assets.stats.binning import POINT_MASS_SHARE, SortedValues, fit_sorted_numerical_binning
from drift_assets.stats.errors import ProfileError
from drift_assets.stats.streamed_fit import StreamedColumn, fit_streamed_numerical, float_keys, key_floats
from drift_assets.storage.tables import TableSource


# --------------------------------------------------------------------------- the old path, verbatim
def _old_quantiles_of_sorted(sorted_values, probs):
    positions = probs * (len(sorted_values) - 1)
    lower = np.floor(positions).astype(np.int64)
    upper = np.minimum(lower + 1, len(sorted_values) - 1)
    fraction = positions - lower
    return sorted_values[lower] + fraction * (sorted_values[upper] - sorted_values[lower])


def _old_drop_empty_bins(sorted_finite, edges):
    left_of = np.searchsorted(sorted_finite, edges, side="left")
    kept, last = [], 0
    for edge, below in zip(edges, left_of, strict=True):
        if below > last and below < sorted_finite.size:
            kept.append(float(edge))
            last = int(below)
    return np.asarray(kept, dtype=np.float64)


def _old_point_mass_edges(sorted_finite, masses, psi_bins, *, single_value):
    parts = [masses, np.nextafter(masses, np.inf)]
    rest = sorted_finite[~np.isin(sorted_finite, masses)]
    rest_bins = max(1, psi_bins - masses.size)
    if rest.size and rest_bins > 1:
        parts.append(_old_quantiles_of_sorted(rest, np.arange(1, rest_bins) / rest_bins))
    candidates = np.unique(np.concatenate(parts))
    if single_value:
        return candidates
    return _old_drop_empty_bins(sorted_finite, candidates)


def old_numerical(values, psi_bins=10, sketch_resolution=1000):
    """(psi_edges, sketch_edges, masses, mean, std, counts, sums, missing) as the old fit gave them."""
    finite = np.sort(values[np.isfinite(values)])
    probs = np.arange(sketch_resolution + 1) / sketch_resolution
    quantiles = _old_quantiles_of_sorted(finite, probs)
    minimum, maximum = float(finite[0]), float(finite[-1])
    distinct, frequency = np.unique(finite, return_counts=True)
    masses = distinct[frequency >= POINT_MASS_SHARE * finite.size]
    if masses.size == 0:
        step = sketch_resolution // psi_bins
        interior = quantiles[step:sketch_resolution:step]
        psi_edges = np.unique(interior[interior > minimum])
        sketch_edges = np.append(np.unique(quantiles), np.nextafter(maximum, np.inf))
    else:
        psi_edges = _old_point_mass_edges(finite, masses, psi_bins, single_value=distinct.size == 1)
        sketch_edges = np.unique(np.concatenate((quantiles, psi_edges, [np.nextafter(maximum, np.inf)])))
    unsorted = values[np.isfinite(values)]
    index = np.searchsorted(sketch_edges, unsorted, side="right")
    counts = np.bincount(index, minlength=len(sketch_edges) + 1)
    sums = np.bincount(index, weights=unsorted, minlength=len(sketch_edges) + 1)
    missing = int((~np.isfinite(values)).sum())
    return psi_edges, sketch_edges, masses, float(finite.mean()), float(finite.std()), counts, sums, missing


def old_categorical(strings: pa.Array):
    counted = pc.value_counts(strings.drop_null())
    values, freqs = counted.field("values").to_pylist(), counted.field("counts").to_pylist()
    order = sorted(range(len(values)), key=lambda i: (-freqs[i], values[i]))
    return [values[i] for i in order], [freqs[i] for i in order] + [0], strings.null_count


def numerical_cases(rng, n=20_000):
    x = rng.normal(size=n)
    x[::7], x[::11], x[::13] = np.nan, np.inf, -np.inf
    yield "nan_and_inf", x
    yield "ties", np.round(rng.normal(size=n), 1)
    yield "poisson_point_masses", rng.poisson(2, n).astype(np.float64)
    yield "zero_inflated", np.where(rng.random(n) < 0.4, 0.0, rng.lognormal(0, 1, n))
    yield "constant", np.full(n, 2015.0)
    yield "two_values", np.where(rng.random(n) < 0.5, -1.0, 1.0)
    yield "one_rare_mass", np.concatenate([np.full(1000, 5.0), rng.normal(size=n - 1000)])
    yield "lognormal", rng.lognormal(3, 1, n)
    yield "huge_and_tiny", np.concatenate([rng.normal(size=n // 2) * 1e300, rng.normal(size=n // 2) * 1e-300])
    yield "seven_rows", rng.normal(size=7)


CASES = list(numerical_cases(np.random.default_rng(7)))
INTEGRAL = {"poisson_point_masses", "constant", "two_values"}


def _assert_same_numerical(name, binning, counts, old, *, sums_exact):
    psi, sketch, masses, mean, std, old_counts, old_sums, missing = old
    assert np.array_equal(binning.psi_edges, psi), name
    assert np.array_equal(binning.sketch_edges, sketch), name
    assert binning.point_masses == tuple(float(m) for m in masses), name
    assert np.array_equal(counts.sketch_counts, old_counts), name
    assert counts.missing == missing, name
    if sums_exact:
        assert np.array_equal(counts.sketch_sums, old_sums), name
    else:  # summed in another order: equal to rounding
        np.testing.assert_allclose(counts.sketch_sums, old_sums, rtol=1e-12, atol=0, err_msg=name)
    return mean, std


# --------------------------------------------------------------------------- in memory
@pytest.mark.parametrize("name,values", CASES, ids=[c[0] for c in CASES])
def test_in_memory_fit_equals_the_old_path(name, values):
    """Edges, point masses, counts, missing, mean and std are identical to the old re-binning fit;
    the per-bin sums too where every value is an integer, else to rounding (summation order)."""
    profile = fit_profile(pa.table({"x": values}), [ColumnSpec("x", "numerical")])
    col = profile.columns["x"]
    old = old_numerical(values)
    mean, std = _assert_same_numerical(name, col.binning, col.reference, old, sums_exact=name in INTEGRAL)
    assert (col.binning.reference_mean, col.binning.reference_std) == (mean, std)


def test_categorical_fit_equals_the_old_path():
    rng = np.random.default_rng(3)
    letters = np.array(list("abcdefg"))[rng.integers(0, 7, 5000)].astype(object)
    letters[::9] = None
    table = pa.table(
        {
            "letters": pa.array(letters, pa.string()),
            "dictionary": pa.array(letters, pa.string()).dictionary_encode(),
            "ints": pa.array(rng.integers(0, 4, 5000)),
            "flags": pa.array(rng.random(5000) < 0.3),
        }
    )
    specs = [ColumnSpec(n, "categorical") for n in table.column_names]
    profile = fit_profile(table, specs)
    for name in table.column_names:
        column = table.column(name).combine_chunks()
        if pa.types.is_dictionary(column.type):
            column = column.dictionary_decode()
        vocabulary, counts, missing = old_categorical(pc.cast(column, pa.string()))
        col = profile.columns[name]
        assert list(col.binning.vocabulary) == vocabulary, name
        assert col.reference.counts.tolist() == counts and col.reference.missing == missing, name
        assert col.reference.unseen_values == {}


# --------------------------------------------------------------------------- streamed
def _batches(values, size):
    return lambda: (values[i : i + size] for i in range(0, values.size, size))


@pytest.mark.parametrize("name,values", CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize(
    "budgets", [{}, {"collect_budget": 40, "child_budget": 16, "leaf_size": 2}], ids=["default", "tiny"]
)
def test_streamed_fit_equals_the_old_path(name, values, budgets):
    """Exact: the same edges, point masses and counts as sorting the column; tiny budgets force
    many refinement passes (every bucket split down to single values)."""
    binning, counts, rows, passes = fit_streamed_numerical(
        _batches(values, 3001), psi_bins=10, sketch_resolution=1000, column=name, **budgets
    )
    old = old_numerical(values)
    mean, std = _assert_same_numerical(name, binning, counts, old, sums_exact=name in INTEGRAL)
    assert rows == values.size
    with np.errstate(over="ignore"):
        np.testing.assert_allclose([binning.reference_mean, binning.reference_std], [mean, std], rtol=1e-12)
    assert passes >= 2


def test_streamed_order_statistics_on_random_inputs():
    """Random sizes, batch sizes and budgets: every rank's value, frequency and count below equal
    the sorted array's (np.sort, np.unique)."""
    rng = np.random.default_rng(11)
    for trial in range(40):
        n = int(rng.integers(1, 3000))
        kind = trial % 4
        if kind == 0:
            x = 1.0 + rng.normal(size=n) * 1e-13  # distinct values a few ulps apart
        elif kind == 1:
            x = rng.integers(-3, 4, n).astype(np.float64)
        elif kind == 2:
            x = rng.standard_cauchy(n)
        else:
            x = np.concatenate([rng.normal(size=n), np.full(n // 3, 7.0), [-0.0, 0.0]])
        stats = StreamedColumn(
            _batches(x, int(rng.integers(1, 500))),
            collect_budget=int(rng.integers(1, 100)),
            child_budget=int(rng.integers(2, 64)),
            leaf_size=int(rng.integers(1, 50)),
        )
        ranks = np.unique(rng.integers(0, x.size, 50))
        expected = np.sort(x)
        assert np.array_equal(stats.values_at(ranks), expected[ranks])
        masses, freq, below, single = stats.heavy_values(POINT_MASS_SHARE)
        reference = SortedValues(expected).heavy_values(POINT_MASS_SHARE)
        assert np.array_equal(masses, reference[0]) and np.array_equal(freq, reference[1])
        assert np.array_equal(below, reference[2]) and single == reference[3]


def test_float_keys_sort_like_the_floats():
    x = np.array([-np.finfo(float).max, -1.5, -5e-324, -0.0, 0.0, 5e-324, 1.0, np.finfo(float).max])
    keys = float_keys(x)
    assert np.all(np.diff(keys.astype(object)) >= 0) and keys[3] == keys[4]
    assert np.array_equal(key_floats(keys), x + 0.0)


def test_profile_from_files_streamed_equals_in_memory(tmp_path):
    """fit_profile over parquet files above max_in_memory_rows is fitted streamed (row group by
    row group): same edges, counts and vocabularies as the in-memory fit, two files, int and float."""
    rng = np.random.default_rng(5)
    n = 30_000
    table = pa.table(
        {
            "amount": rng.lognormal(3, 1, n),
            "count": rng.poisson(2, n),
            "segment": np.array(["a", "b", "c"])[rng.integers(0, 3, n)],
        }
    )
    folder = tmp_path / "ref"
    folder.mkdir()
    pq.write_table(table.slice(0, 12_000), folder / "a.parquet", row_group_size=5000)
    pq.write_table(table.slice(12_000), folder / "b.parquet", row_group_size=4000)
    specs = [ColumnSpec("amount", "numerical"), ColumnSpec("count", "numerical"), ColumnSpec("segment", "categorical")]
    streamed = fit_profile(TableSource.open(str(folder)), specs, max_in_memory_rows=1000)
    memory = fit_profile(TableSource.open(str(folder)), specs)
    assert streamed.reference_rows == memory.reference_rows == n
    for name, col in memory.columns.items():
        other = streamed.columns[name]
        if col.spec.kind == "categorical":
            assert other.binning == col.binning and other.reference.to_dict() == col.reference.to_dict()
            continue
        assert np.array_equal(other.binning.sketch_edges, col.binning.sketch_edges)
        assert np.array_equal(other.binning.psi_edges, col.binning.psi_edges)
        assert other.binning.point_masses == col.binning.point_masses
        assert np.array_equal(other.reference.sketch_counts, col.reference.sketch_counts)
        np.testing.assert_allclose(other.reference.sketch_sums, col.reference.sketch_sums, rtol=1e-12)
        assert other.binning.reference_mean == pytest.approx(col.binning.reference_mean, rel=1e-12)
        assert other.binning.reference_std == pytest.approx(col.binning.reference_std, rel=1e-12)


def test_streamed_categorical_stops_at_an_identifier_column(tmp_path):
    """An identifier column is refused after the batch that passes max_categories, not held whole."""
    for part in range(3):  # three files: three batches
        pq.write_table(pa.table({"id": [f"id{part}-{i}" for i in range(500)]}), tmp_path / f"r{part}.parquet")
    with pytest.raises(ProfileError, match="more than 100 distinct values"):
        fit_profile(
            TableSource.open(str(tmp_path)),
            [ColumnSpec("id", "categorical")],
            max_categories=100,
            max_in_memory_rows=10,
        )


def test_streamed_column_with_no_finite_values_is_refused(tmp_path):
    pq.write_table(pa.table({"x": pa.array([None, np.nan, np.inf] * 100, pa.float64())}), tmp_path / "r.parquet")
    with pytest.raises(ProfileError, match="'x' has no finite values"):
        fit_profile(
            TableSource.open(str(tmp_path / "r.parquet")), [ColumnSpec("x", "numerical")], max_in_memory_rows=10
        )


def test_sorted_binning_is_the_unsorted_one():
    values = np.random.default_rng(2).normal(size=1000)
    a = fit_sorted_numerical_binning(np.sort(values), psi_bins=10, sketch_resolution=1000)
    from drift_assets.stats.binning import fit_numerical_binning

    b = fit_numerical_binning(values, psi_bins=10, sketch_resolution=1000, column="x")
    assert a.to_dict() == b.to_dict()
