"""Issue 16, window side: the faster paths give the same numbers as the plain ones.

- the lookup-table bin index equals ``np.searchsorted(edges, x, side="right")`` on every input kind
  (ties, ±inf, NaN, -0.0, duplicate edges, heavy tails), and is actually used on sketch edges;
- the window summary counted on a thread pool is bit-identical to the serial one;
- the KS p-value without ``scipy.stats`` equals ``kstwo.sf`` and the missing-rate Fisher p-value
  equals ``fisher_exact``;
- the compare path (``drift-assets compare``) never imports ``scipy.stats`` or ``dagster_aws``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from scipy import stats

from drift_assets.stats import ColumnSpec, fit_profile, summarize
from drift_assets.stats import summary as summary_module
from drift_assets.stats.bin_index import EdgeIndex, bin_index
from drift_assets.stats.binning import fit_numerical_binning
from drift_assets.stats.kolmogorov_distribution import MIN_N, ks_sf
from drift_assets.stats.rates import increase_pvalue

# --------------------------------------------------------------------------- bin index


def _edge_sets(rng) -> list[tuple[str, np.ndarray]]:
    """Sketch edges as the fit makes them, plus raw sorted arrays the fit never makes."""
    n = 20_000
    zero_inflated = rng.lognormal(2.0, 1.0, n)
    zero_inflated[rng.random(n) < 0.4] = 0.0
    samples = {
        "normal": rng.normal(0, 1, n),
        "lognormal": rng.lognormal(3.0, 1.5, n),
        "heavy_negative": -rng.pareto(1.1, n),
        "zero_inflated": zero_inflated,
        "integers": rng.integers(0, 300, n).astype(np.float64),
        "tiny_range": 1.0 + rng.random(n) * 1e-12,
        "huge_range": rng.normal(0, 1, n) * 1e300,
        "mixed_sign_log": np.sign(rng.normal(size=n)) * rng.lognormal(0, 4, n),
    }
    sets = [
        (name, fit_numerical_binning(v, psi_bins=10, sketch_resolution=1000, column=name).sketch_edges)
        for name, v in samples.items()
    ]
    sets.append(("duplicate_edges", np.sort(np.repeat(rng.normal(size=300), rng.integers(1, 4, 300)))))
    sets.append(("signed_zeros", np.sort(np.concatenate((rng.normal(size=200), [-0.0, 0.0, 5e-324, -5e-324])))))
    sets.append(("extreme", np.sort(np.concatenate((rng.normal(size=200), [-1.7e308, 1.7e308])))))
    sets.append(("with_inf", np.sort(np.concatenate((rng.normal(size=200), [-np.inf, np.inf])))))
    sets.append(("few_edges", np.sort(rng.normal(size=10))))
    return sets


def _probe_values(rng, edges: np.ndarray) -> np.ndarray:
    finite = edges[np.isfinite(edges)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (-1.0, 1.0)
    picks = rng.choice(edges, 3_000)
    return np.concatenate(
        (
            picks,  # ties: exactly on edges
            np.nextafter(picks, np.inf),
            np.nextafter(picks, -np.inf),
            rng.uniform(lo, hi, 5_000) if np.isfinite(hi - lo) else rng.normal(size=5_000) * 1e300,
            rng.normal(size=2_000) * np.abs(rng.choice(finite, 2_000)) * 3 if finite.size else rng.normal(size=2_000),
            [np.inf, -np.inf, np.nan, -np.nan, 0.0, -0.0, 5e-324, -5e-324, 1.7e308, -1.7e308, lo, hi],
            np.full(50, np.nan),
        )
    )


def _compare_with_importtime(args: list[str], cwd: Path) -> tuple[subprocess.CompletedProcess, set[str]]:
    """``python -X importtime -m drift_assets ARGS`` (exit 0 or 1 asserted): the process and the
    names of every module it imported."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "drift_assets", *args], cwd=cwd, capture_output=True, text=True
    )
    assert proc.returncode in (0, 1), proc.stderr[-2000:]
    modules = {line.split("|")[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}
    return proc, modules


def test_bin_index_equals_searchsorted_on_every_input_kind():
    rng = np.random.default_rng(16)
    for name, edges in _edge_sets(rng):
        values = _probe_values(rng, edges)
        rng.shuffle(values)
        expected = np.searchsorted(edges, values, side="right")
        got = bin_index(edges, values)
        assert np.array_equal(got, expected), name
        assert got.dtype == expected.dtype
        # Contiguous slices and a single value take the same path.
        assert np.array_equal(bin_index(edges, values[::3]), expected[::3]), name
        assert np.array_equal(bin_index(edges, values[:1]), expected[:1]), name
        assert bin_index(edges, values[:0]).size == 0


def test_bin_index_uses_its_table_on_sketch_edges():
    """The equality above would hold trivially if every value fell back to searchsorted."""
    rng = np.random.default_rng(5)
    for name, sample, layout in (
        ("normal", rng.normal(0, 1, 50_000), "linear"),
        ("lognormal", rng.lognormal(3.0, 1.5, 50_000), "float_bits"),
    ):
        edges = fit_numerical_binning(sample, psi_bins=10, sketch_resolution=1000, column=name).sketch_edges
        index = EdgeIndex(edges)
        assert index.layout == layout
        assert index.table is not None and index.table.fallback_share < 0.05
        window = rng.choice(sample, 20_000)
        guess = index.table.guess[index._bucket(window)]
        for _ in range(2):
            guess += index.step[guess] <= window
        resolved = np.mean((index.lower[guess] <= window) & (window < index.upper[guess]))
        assert resolved > 0.95, (name, resolved)  # the table, not the fallback, bins the window


# --------------------------------------------------------------------------- thread pool


def _window_tables(rows: int = 120_000):
    rng = np.random.default_rng(7)

    def table(shift: float) -> pa.Table:
        amounts = rng.lognormal(3 + shift, 1, rows)
        amounts[rng.random(rows) < 0.05] = np.nan
        return pa.table(
            {
                "x": rng.normal(shift, 1, rows),
                "amount": amounts,
                "count": rng.poisson(2 + shift, rows),
                "refund": np.where(rng.random(rows) < 0.4, 0.0, rng.lognormal(2, 1, rows)),
                "segment": rng.choice(["a", "b", "c", "new" if shift else "a"], rows),
                "as_text": rng.choice(["1", "2"], rows) if shift else rng.normal(size=rows),
            }
        )

    specs = [ColumnSpec(n, "numerical") for n in ("x", "amount", "count", "refund", "as_text")]
    specs.append(ColumnSpec("segment", "categorical"))
    return table(0.0), table(0.3), specs


def test_threaded_window_summary_is_bit_identical_to_the_serial_one(monkeypatch):
    reference, current, specs = _window_tables()
    profile = fit_profile(reference, specs)
    threads_seen: set[str] = set()
    count_column = summary_module._count_column

    def recording(*args, **kwargs):
        threads_seen.add(threading.current_thread().name)
        return count_column(*args, **kwargs)

    monkeypatch.setattr(summary_module, "_count_column", recording)
    results = {}
    for threads in ("1", "4"):
        monkeypatch.setenv("DRIFT_ASSETS_THREADS", threads)
        threads_seen.clear()
        results[threads] = summarize(profile, current.to_batches(max_chunksize=50_000))
        if threads == "4":
            assert len({t for t in threads_seen if t.startswith("drift-assets-count")}) >= 2
        else:
            assert threads_seen == {threading.current_thread().name}
    serial, threaded = results["1"], results["4"]
    assert serial.problems == threaded.problems and "as_text" in serial.problems  # a bad column stays a problem
    assert list(serial.columns) == list(threaded.columns)  # same order
    for name, counts in serial.columns.items():
        other = threaded.columns[name]
        for field in ("sketch_counts", "sketch_sums", "counts"):
            if hasattr(counts, field):
                assert getattr(counts, field).tobytes() == getattr(other, field).tobytes(), (name, field)
    assert serial.to_dict() == threaded.to_dict()


def test_thread_count_follows_the_machine_and_the_environment(monkeypatch):
    monkeypatch.delenv("DRIFT_ASSETS_THREADS", raising=False)
    cpus = len(os.sched_getaffinity(0))
    assert summary_module.thread_count() == max(1, min(summary_module.MAX_THREADS, cpus))
    monkeypatch.setenv("DRIFT_ASSETS_THREADS", "3")
    assert summary_module.thread_count() == 3
    monkeypatch.setenv("DRIFT_ASSETS_THREADS", "many")
    with pytest.raises(ValueError, match="DRIFT_ASSETS_THREADS"):
        summary_module.thread_count()


# --------------------------------------------------------------------------- p-values without scipy.stats


@pytest.mark.parametrize("n", [MIN_N, 500, 1_999, 2_001, 20_000, 50_000, 100_000])
def test_ks_sf_equals_scipy_kstwo_on_every_branch(n):
    root_n = np.sqrt(n)
    statistics = np.concatenate(
        (
            [0.0, 0.4 / n, 0.5 / n, 0.8 / n, 1.0 / n, 1.5 / n, (n - 1) / n, (n - 0.5) / n, 0.5, 0.7, 1.0],
            np.array([0.05, 0.1, 0.2, 0.5, 0.9, 1.2, 1.4, 1.47, 1.49, 2.0, 3.0, 5.0, 10.0, 19.0]) / root_n,
        )
    )
    for d in statistics:
        expected = float(stats.kstwo.sf(d, n))
        assert ks_sf(n, float(d)) == pytest.approx(expected, rel=1e-9, abs=1e-300), d


def test_increase_pvalue_equals_fisher_exact():
    rng = np.random.default_rng(11)
    cases = [(0, 10, 0, 10), (10, 10, 0, 10), (0, 10, 10, 10), (3, 30, 1, 100), (1, 1, 0, 1), (0, 1, 5, 5)]
    for _ in range(150):
        cur_n, ref_n = int(rng.integers(1, 300_000)), int(rng.integers(1, 300_000))
        rate = rng.random() * 0.2
        cases.append((int(rng.binomial(cur_n, rate * 1.05)), cur_n, int(rng.binomial(ref_n, rate)), ref_n))
    for hits, total, ref_hits, ref_total in cases:
        table = [[hits, total - hits], [ref_hits, ref_total - ref_hits]]
        expected = stats.fisher_exact(table, alternative="greater").pvalue
        assert increase_pvalue(hits, total, ref_hits, ref_total) == pytest.approx(expected, rel=1e-7, abs=1e-12)


# --------------------------------------------------------------------------- imports


def _imported_modules(code: str, cwd) -> set[str]:
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code], cwd=cwd, capture_output=True, text=True, check=True
    )
    return {line.split("|")[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}


def test_compare_path_imports_neither_scipy_stats_nor_dagster_aws(tmp_path):
    rng = np.random.default_rng(3)
    for name, shift in (("ref", 0.0), ("cur", 0.5)):
        rows = 5_000
        missing = rng.normal(shift, 1, rows)
        missing[rng.random(rows) < 0.1 + shift / 5] = np.nan
        pq.write_table(
            pa.table(
                {
                    "x": rng.normal(shift, 1, rows),
                    "m": missing,
                    "k": rng.choice(["a", "b", "c"], rows),
                }
            ),
            tmp_path / f"{name}.parquet",
        )
    code = (
        "import sys; from drift_assets.cli.app import main;"
        f" code = main(['compare', {str(tmp_path / 'ref.parquet')!r}, {str(tmp_path / 'cur.parquet')!r},"
        f" '--json', {str(tmp_path / 'out.json')!r}]); assert code in (0, 1), code"
    )
    modules = _imported_modules(code, tmp_path)
    assert "drift_assets.stats.compare" in modules and "numpy" in modules  # the probe works
    assert (tmp_path / "out.json").exists()
    # no part of scipy at all: the special functions are drift_assets.stats.special's own
    assert not {m for m in modules if m.split(".")[0] == "scipy"}
    # (pandas is imported by pyarrow itself on its first numpy conversion: not ours to avoid)
    assert not {m for m in modules if m.split(".")[0] in ("dagster_aws", "dagster", "evidently")}


def test_help_loads_neither_numpy_nor_the_engine(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "drift_assets", "--help"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0 and "compare" in proc.stdout
    modules = {line.split("|")[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}
    assert "drift_assets.cli.app" in modules
    assert not {m for m in modules if m.split(".")[0] in ("numpy", "pyarrow", "scipy", "dagster")}
    assert not {m for m in modules if m.startswith("drift_assets.stats")}


def test_definitions_load_without_dagster_aws_or_scipy_stats(tmp_path):
    """Local storage (the default) never imports dagster-aws; the S3 resource module does."""
    modules = _imported_modules("import drift_assets.definitions", tmp_path)
    assert "drift_assets.orchestration.resources" in modules
    assert not {m for m in modules if m.split(".")[0] in ("dagster_aws", "evidently")}
    assert not {m for m in modules if m == "scipy.stats" or m.startswith("scipy.stats.")}
    s3_modules = _imported_modules("import drift_assets.orchestration.s3_resources", tmp_path)
    assert "dagster_aws.s3" in s3_modules


# --------------------------------------------------------------------------- the reference side (issue 16)


def test_as_numpy_is_to_numpy_on_every_arrow_kind():
    """Read off the arrow buffers (no pandas import), the same values and dtype as ``to_numpy``:
    slices (offsets), chunks, empty arrays, nulls (to_numpy's own path), booleans."""
    from decimal import Decimal

    import pyarrow.compute as pc

    from drift_assets.stats.validation import as_numpy, numeric_values

    rng = np.random.default_rng(5)
    cases: list = []
    for t in (pa.float64(), pa.float32(), pa.int64(), pa.int32(), pa.int16(), pa.int8(), pa.uint64(), pa.uint8()):
        base = pa.array(rng.integers(0, 100, 50), type=t)
        cases += [base, base.slice(3, 20), base.slice(50), pa.array([], type=t), pa.chunked_array([], type=t)]
        cases += [pa.chunked_array([base.slice(1, 5), base.slice(7, 9)]), pa.array([1, None, 3], type=t)]
    flags = pa.array(rng.random(77) < 0.5)
    cases += [flags, flags.slice(5, 13), flags.slice(9), pa.array([True, None, False]), pa.array([], pa.bool_())]
    cases += [pa.array([1.5, np.nan, None, -0.0, np.inf]), pa.array([1.5, np.nan, None, -0.0]).slice(1)]
    for case in cases:
        whole = case.combine_chunks() if isinstance(case, pa.ChunkedArray) else case
        expected, got = whole.to_numpy(zero_copy_only=False), as_numpy(case)
        assert got.dtype == expected.dtype and got.tobytes() == expected.tobytes(), case
    for case in [*cases, pa.array([Decimal("1.5"), None])]:
        whole = case.combine_chunks() if isinstance(case, pa.ChunkedArray) else case
        expected = pc.cast(whole, pa.float64()).to_numpy(zero_copy_only=False)
        got = numeric_values(case, "x")
        assert got.dtype == np.float64 and got.tobytes() == expected.tobytes(), case
        if case.null_count:
            assert got.flags.writeable  # to_numpy copied here: so does numeric_values


def test_threaded_profile_fit_is_the_serial_one(monkeypatch):
    from drift_assets.stats import profile as profile_module

    reference, _, specs = _window_tables()
    fit_column, seen = profile_module._fit_column, set()

    def recording(*args, **kwargs):
        seen.add(threading.current_thread().name)
        return fit_column(*args, **kwargs)

    monkeypatch.setattr(profile_module, "_fit_column", recording)
    fits = {}
    for threads in ("1", "3"):
        monkeypatch.setenv("DRIFT_ASSETS_THREADS", threads)
        seen.clear()
        fits[threads] = fit_profile(reference, specs).to_dict()
        pooled = {t for t in seen if t.startswith("drift-assets-count")}
        assert len(pooled) >= 2 if threads == "3" else not pooled
    assert fits["1"] == fits["3"]


def test_compare_process_imports_no_pandas_and_agrees_with_in_process(tmp_path):
    """``drift-assets compare`` as its own process: pyarrow's pandas probe is deferred, so pandas
    (0.15-0.4 s) is not imported; the JSON is the in-process call's (nulls, ints, strings)."""

    from drift_assets.cli.app import main

    rng = np.random.default_rng(8)
    for name, shift in (("ref", 0.0), ("cur", 0.4)):
        rows = 6_000
        with_nulls = pa.array(rng.normal(shift, 1, rows), mask=rng.random(rows) < 0.05)
        table = pa.table(
            {
                "x": rng.normal(shift, 1, rows),
                "n": with_nulls,
                "c": rng.poisson(2 + shift, rows),
                "k": rng.choice(["a", "b", "c"], rows),
            }
        )
        pq.write_table(table, tmp_path / f"{name}.parquet")
    args = ["compare", str(tmp_path / "ref.parquet"), str(tmp_path / "cur.parquet"), "--no-cache", "--json"]
    proc, modules = _compare_with_importtime([*args, str(tmp_path / "process.json")], tmp_path)
    assert "pyarrow" in modules and "drift_assets.stats.multivariate" in modules
    # (-X importtime lists the deferred probe's failed `import pandas` too; no part of pandas loads)
    assert not {m for m in modules if m.startswith("pandas.")}
    assert main([*args, str(tmp_path / "in_process.json")]) == proc.returncode
    in_process = json.loads((tmp_path / "in_process.json").read_text())
    assert json.loads((tmp_path / "process.json").read_text()) == in_process
    assert in_process["multivariate"]["reconstruction_error"] is not None


def _joint_files(tmp_path, window_rows: int = 60_000):
    """A reference and a window with correlated features (the multivariate model has work to do),
    the window above the model's 50,000 evaluated rows, so its rows are sampled."""
    rng = np.random.default_rng(16)
    for name, rows, rho in (("ref", 4_000, 0.6), ("cur", window_rows, -0.6)):
        a = rng.normal(size=rows)
        table = pa.table(
            {
                "a": a,
                "b": rho * a + np.sqrt(1 - rho**2) * rng.normal(size=rows),
                "n": rng.poisson(3, rows),
                "k": rng.choice(["x", "y", "z"], rows),
            }
        )
        pq.write_table(table, tmp_path / f"{name}.parquet", row_group_size=5_000)
    return str(tmp_path / "ref.parquet"), str(tmp_path / "cur.parquet")


def test_model_fitted_on_its_thread_gives_the_serial_json(tmp_path, monkeypatch):
    """``compare`` fits the multivariate model on its own thread (the lane) while the window
    streams, and counts each batch's sampled rows there too, queued behind the fit: the JSON is the
    serial run's, byte for byte, when every batch queues behind a slow fit, when the queued rows hit
    their cap (the window waits), and with threads off."""
    from drift_assets.cli import app
    from drift_assets.storage import tables

    ref, cur = _joint_files(tmp_path)
    monkeypatch.setattr(tables, "BATCH_ROWS", 8_000)  # several window batches
    batches = len(list(tables.TableSource.open(cur).batches()))
    fit_model, fitted_on, counted_on, queued = app.JointCompare.fit_model, [], [], []

    def slow_fit(self, *args):
        fitted_on.append(threading.current_thread().name)
        time.sleep(0.5)  # every window batch arrives before the model
        return fit_model(self, *args)

    add_counts, count_model_rows = app.JointCompare._add_counts, app.JointCompare._count_model_rows

    def recording_add(self, *args):
        counted_on.append(threading.current_thread().name)
        return add_counts(self, *args)

    def recording_count(self, batch):
        count_model_rows(self, batch)
        queued.append(sum(not f.done() for _, f in self._queued))

    monkeypatch.setattr(app.JointCompare, "fit_model", slow_fit)
    monkeypatch.setattr(app.JointCompare, "_add_counts", recording_add)
    monkeypatch.setattr(app.JointCompare, "_count_model_rows", recording_count)
    texts = {}
    for case, threads, cap in (("serial", "1", None), ("threaded", "2", None), ("capped", "2", 9_000)):
        monkeypatch.setenv("DRIFT_ASSETS_THREADS", threads)
        if cap:
            monkeypatch.setattr(app, "MAX_WAITING_ROWS", cap)
        fitted_on.clear(), counted_on.clear(), queued.clear()
        out = tmp_path / f"{case}.json"
        assert app.main(["compare", ref, cur, "--no-cache", "--json", str(out)]) in (0, 1)
        texts[case] = out.read_text()
        on_lane = threads != "1"
        assert fitted_on and (fitted_on[0].startswith("drift-assets-model") == on_lane)
        assert len(counted_on) == batches and all(n.startswith("drift-assets-model") == on_lane for n in counted_on)
        if case == "threaded":
            assert queued[-1] == batches + 1 > 6  # every window batch queued behind the fit
        if case == "capped":
            assert 1 < max(queued) < batches  # the window waited once 9,000 sampled rows were queued
    doc = json.loads(texts["serial"])
    assert doc["multivariate"]["reconstruction_error"] is not None and doc["multivariate"]["drifted"]
    assert texts["threaded"] == texts["serial"] and texts["capped"] == texts["serial"]


def test_reference_tap_encodes_columns_as_read_and_keeps_errors_for_the_model():
    """The profile fit's column hook encodes each feature's two halves as it is read; a column the
    model cannot encode does not fail the profile fit (``add`` returns), it is raised where the
    model is fitted (then reported as the check's skip reason), the first feature's in column order;
    a feature never read whole leaves the tap empty-handed (the model streams its rows instead)."""
    from drift_assets.cli import app
    from drift_assets.stats import SchemaError
    from drift_assets.stats import multivariate as mv

    app._import_engine()
    rng = np.random.default_rng(3)
    table = pa.table({"a": rng.normal(size=2_000), "b": rng.poisson(3, 2_000), "k": rng.choice(["x", "y"], 2_000)})
    specs = [ColumnSpec("a", "numerical"), ColumnSpec("b", "numerical"), ColumnSpec("k", "categorical")]
    halves = mv.reference_halves(table.num_rows, mv.DEFAULT_MAX_HALF_ROWS, 0)
    tap = app.ReferenceSampleTap([*specs, ColumnSpec("score", "numerical", "prediction")], halves)
    for name in ("k", "score", "a", "b"):  # any order, as the pool finishes; non-features ignored
        tap.add(name, table.column(name) if name in table.column_names else table.column("a"))
    columns = tap.pop_encoded()
    assert columns is not None and sorted(columns) == ["a", "b", "k"] and tap.pop_encoded() is None
    expected = mv.fit_reconstruction(table, specs)
    assert mv.fit_reconstruction_from_encoded_columns(columns, table.num_rows, specs).to_json() == expected.to_json()

    broken = app.ReferenceSampleTap(specs, halves)
    for name, column in (("b", table.column("k")), ("a", table.column("k")), ("k", table.column("k"))):
        broken.add(name, column)  # two numerical features given strings: no exception here
    with pytest.raises(SchemaError, match="'a' should be numerical"):
        broken.pop_encoded()
    partial = app.ReferenceSampleTap(specs, halves)
    partial.add("a", table.column("a"))
    assert partial.pop_encoded() is None


def test_compare_with_the_multivariate_check_imports_no_scipy(tmp_path):
    """The whole default ``compare`` (multivariate check included) runs on ``stats.special``:
    no part of scipy is imported, nor the numpy submodules scipy's array-API layer would load."""
    ref, cur = _joint_files(tmp_path, window_rows=3_000)
    proc, modules = _compare_with_importtime(["compare", ref, cur, "--json", "-", "--no-cache"], tmp_path)
    assert "drift_assets.stats.multivariate" in modules and "drift_assets.stats.special" in modules
    assert not {m for m in modules if m.split(".")[0] == "scipy"}
    assert not modules & {"numpy.f2py", "numpy.testing", "importlib.metadata"}
    assert json.loads(proc.stdout)["multivariate"]["reconstruction_error"] is not None


def test_read_ahead_yields_the_same_batches_raises_their_errors_and_stops(monkeypatch):
    """The window's next batch is read on a thread while one is counted: the same batches in
    the same order, at most one read ahead, the reader's error raised in the caller, and a caller
    that stops early stops the reader (no thread left behind)."""
    from drift_assets.cli.app import read_ahead

    monkeypatch.setenv("DRIFT_ASSETS_THREADS", "2")
    batches = [pa.record_batch({"x": np.arange(i, i + 5)}) for i in range(0, 50, 5)]
    produced: list[int] = []

    def source(fail_at: int | None = None):
        for i, batch in enumerate(batches):
            if i == fail_at:
                raise OSError("disk gone")
            produced.append(i)
            yield batch

    out = []
    for batch in read_ahead(source()):
        time.sleep(0.01)  # the reader has time to run ahead, if it would
        out.append(batch)
        assert max(produced) <= len(out)  # never more than one batch past the caller
    assert [b.equals(e) for b, e in zip(out, batches, strict=True)] == [True] * len(batches)
    with pytest.raises(OSError, match="disk gone"):
        list(read_ahead(source(fail_at=3)))
    before = threading.active_count()
    stream = read_ahead(source())
    next(stream), next(stream)
    stream.close()
    assert threading.active_count() == before
    monkeypatch.setenv("DRIFT_ASSETS_THREADS", "1")
    produced.clear()
    assert len(list(read_ahead(source()))) == len(batches) and threading.active_count() == before
