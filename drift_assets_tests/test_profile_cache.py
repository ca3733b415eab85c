"""The fitted-profile cache: keyed by the reference's bytes, roles and settings; never stale."""

from __future__ import annotations

import json
import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from drift_assets.monitoring.profile_cache import CACHE_DIR_ENV, cache_path, fit_profile_cached
from drift_assets.stats import ColumnSpec, fit_profile
from drift_assets.storage.tables import TableSource

SPECS = [ColumnSpec("x", "numerical"), ColumnSpec("segment", "categorical")]


def _write(path, seed, n=3000):
    rng = np.random.default_rng(seed)
    table = pa.table({"x": rng.normal(size=n), "segment": np.array(["a", "b"])[rng.integers(0, 2, n)]})
    pq.write_table(table, path)
    return table


def test_second_call_reads_the_cached_profile(tmp_path):
    ref = tmp_path / "ref.parquet"
    table = _write(ref, 1)
    first, miss = fit_profile_cached(TableSource.open(str(ref)), SPECS, psi_bins=10)
    assert not miss.hit and miss.path is not None and os.path.exists(miss.path)
    assert miss.path.startswith(str(tmp_path / ".drift_assets" / "profiles"))
    second, hit = fit_profile_cached(TableSource.open(str(ref)), SPECS, psi_bins=10)
    assert hit.hit and hit.key == miss.key and hit.fit_seconds == 0.0
    assert second.fingerprint() == first.fingerprint() == fit_profile(table, SPECS).fingerprint()


def test_a_changed_file_never_reuses_a_stale_profile(tmp_path):
    """One value changed, same size, mtime put back: the key (content hash) still changes."""
    ref = tmp_path / "ref.parquet"
    table = _write(ref, 1)
    before, _ = fit_profile_cached(TableSource.open(str(ref)), SPECS, psi_bins=10)
    stat = ref.stat()
    x = table.column("x").to_numpy().copy()
    x[0] = 1e6  # a far outlier: the maximum (and so the sketch edges) move
    pq.write_table(table.set_column(0, "x", pa.array(x)), ref)
    os.utime(ref, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert ref.stat().st_mtime_ns == stat.st_mtime_ns
    after, outcome = fit_profile_cached(TableSource.open(str(ref)), SPECS, psi_bins=10)
    assert not outcome.hit
    assert after.fingerprint() != before.fingerprint()
    assert after.columns["x"].binning.reference_max == 1e6


def test_roles_and_settings_are_part_of_the_key(tmp_path):
    ref = tmp_path / "ref.parquet"
    _write(ref, 2)
    source = TableSource.open(str(ref))
    _, base = fit_profile_cached(source, SPECS, psi_bins=10)
    for specs, bins in (
        (SPECS, 5),
        ([ColumnSpec("x", "numerical", "prediction"), SPECS[1]], 10),
        (SPECS[:1], 10),
    ):
        profile, outcome = fit_profile_cached(TableSource.open(str(ref)), specs, psi_bins=bins)
        assert not outcome.hit and outcome.key != base.key
        assert profile.psi_bins == bins and profile.specs == specs


def test_no_cache_neither_reads_nor_writes(tmp_path):
    ref = tmp_path / "ref.parquet"
    _write(ref, 3)
    _, outcome = fit_profile_cached(TableSource.open(str(ref)), SPECS, psi_bins=10, use_cache=False)
    assert not outcome.hit and outcome.path is None and outcome.key is None
    assert not (tmp_path / ".drift_assets").exists()


def test_a_corrupt_cached_profile_is_refitted_and_replaced(tmp_path):
    ref = tmp_path / "ref.parquet"
    table = _write(ref, 4)
    _, first = fit_profile_cached(TableSource.open(str(ref)), SPECS, psi_bins=10)
    assert first.path is not None
    with open(first.path, "w") as fh:
        fh.write('{"cache_key": "trunc')
    profile, again = fit_profile_cached(TableSource.open(str(ref)), SPECS, psi_bins=10)
    assert not again.hit and profile.fingerprint() == fit_profile(table, SPECS).fingerprint()
    _, third = fit_profile_cached(TableSource.open(str(ref)), SPECS, psi_bins=10)
    assert third.hit


def test_directory_reference_and_project_cache_dir(tmp_path, monkeypatch):
    """A reference directory is hashed file by file (a file added changes the key); a reference
    on a filesystem other than the local one goes to the project's cache dir."""
    folder = tmp_path / "ref"
    folder.mkdir()
    _write(folder / "a.parquet", 5)
    _, first = fit_profile_cached(TableSource.open(str(folder)), SPECS, psi_bins=10)
    assert first.path is not None and os.path.basename(first.path).startswith("ref.")
    _write(folder / "b.parquet", 6)
    _, second = fit_profile_cached(TableSource.open(str(folder)), SPECS, psi_bins=10)
    assert not second.hit and second.key != first.key
    monkeypatch.setenv(CACHE_DIR_ENV, str(tmp_path / "cache"))
    from pyarrow import fs as pafs

    sub = pafs.SubTreeFileSystem(str(tmp_path), pafs.LocalFileSystem())
    source = TableSource(sub, "ref", "s3-like://ref")
    assert str(cache_path(source, "k" * 64)).startswith(str(tmp_path / "cache" / "profiles"))


@pytest.mark.slow
def test_compare_uses_the_cache_unless_told_not_to(tmp_path):
    """`compare --no-cache` writes nothing; `compare` stores the profile and, beside it under the
    same key, the multivariate model; the next call reads both (neither file is rewritten) with the
    same result, the multivariate section included."""
    import subprocess
    import sys

    ref, cur = tmp_path / "ref.parquet", tmp_path / "cur.parquet"
    _write(ref, 7)
    _write(cur, 8)
    env = {**os.environ, CACHE_DIR_ENV: str(tmp_path / "c")}

    def compare(*extra):
        args = [sys.executable, "-m", "drift_assets", "compare", str(ref), str(cur), "--json", "-", *extra]
        done = subprocess.run(args, capture_output=True, text=True, env=env)
        assert done.returncode in (0, 1), done.stderr
        return done.stdout

    profiles = tmp_path / ".drift_assets" / "profiles"
    uncached = compare("--no-cache")
    assert not (tmp_path / ".drift_assets").exists() and not (tmp_path / "c").exists()
    first = compare()
    (model,) = profiles.glob("*.multivariate.json")
    (stored,) = set(profiles.glob("*.json")) - {model}
    assert model.name == stored.name.removesuffix(".json") + ".multivariate.json"
    written = stored.stat().st_mtime_ns, model.stat().st_mtime_ns
    assert json.loads(first)["multivariate"]["reconstruction_error"] is not None
    assert compare() == first == uncached
    assert (stored.stat().st_mtime_ns, model.stat().st_mtime_ns) == written
    # Profile cached, model gone: its rows are streamed from REFERENCE (the path a reference fitted
    # streamed takes too), the same model is fitted and stored again.
    model.unlink()
    assert compare() == first and model.exists()


@pytest.mark.slow
def test_dagster_reference_profile_reuses_the_cache_until_the_reference_changes(project):
    """fraud_reference_job twice: the second reference_profile is read from the cache (the stored
    reference has the same bytes); after the reference file changes, it is fitted again."""
    from dagster import AssetKey, instance_for_test

    from drift_assets.definitions import build_definitions

    quiet = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}
    key = AssetKey(["fraud", "reference_profile"])

    def run(instance):
        job = build_definitions().resolve_job_def("fraud_reference_job")
        assert job.execute_in_process(instance=instance, run_config=quiet).success
        event = instance.get_latest_materialization_event(key)
        meta = event.asset_materialization.metadata
        return meta["profile_cache"].value, meta["fingerprint"].value

    with instance_for_test() as instance:
        first = run(instance)
        second = run(instance)
        assert first[0] == "fitted" and second == ("hit", first[1])
        reference = project / "data" / "fraud" / "reference" / "reference.parquet"
        table = pq.read_table(reference)
        pq.write_table(table.slice(0, table.num_rows - 1), reference)
        third = run(instance)
        assert third[0] == "fitted" and third[1] != first[1]


def _forge_pointer(ref) -> None:
    """What a filesystem with coarse timestamps could give: the changed file's stat recorded as
    the stat of the bytes the cached profile was fitted on."""
    from drift_assets.monitoring import profile_cache as pcache

    source = TableSource.open(str(ref))
    settings = {"psi_bins": 10, "sketch_resolution": 1000, "max_categories": 1000}
    settings |= {"max_in_memory_rows": 2_000_000, "metadata": {}}
    pointer = pcache._pointer_path(source)
    assert pointer is not None and pointer.exists()
    doc = json.loads(pointer.read_text())
    doc["stat"] = pcache._stat_key(source, pcache._pointer_header(source, SPECS, settings))
    pointer.write_text(json.dumps(doc))


def test_speculative_hit_is_checked_against_the_content_hash(tmp_path):
    """``speculative=True``: the profile the reference's stat points at comes back at once, its
    content hash computing on a thread; ``confirmed()`` is True for the same bytes. Changed bytes
    under a recorded stat (forged pointer) are caught: ``confirmed()`` is False; a changed stat
    is no speculative hit at all."""
    ref = tmp_path / "ref.parquet"
    table = _write(ref, 1)
    first, miss = fit_profile_cached(TableSource.open(str(ref)), SPECS, psi_bins=10)
    assert not miss.hit and (tmp_path / ".drift_assets" / "profiles" / "ref.parquet.latest").exists()
    again, hit = fit_profile_cached(TableSource.open(str(ref)), SPECS, psi_bins=10, speculative=True)
    assert hit.hit and hit.pending is not None and hit.key == miss.key
    assert hit.confirmed() and again.fingerprint() == first.fingerprint()
    x = table.column("x").to_numpy().copy()
    x[0] = 1e6
    pq.write_table(table.set_column(0, "x", pa.array(x)), ref)
    fresh, outcome = fit_profile_cached(TableSource.open(str(ref)), SPECS, psi_bins=10, speculative=True)
    assert outcome.pending is None and not outcome.hit  # new stat: hashed and fitted as before
    assert fresh.columns["x"].binning.reference_max == 1e6
    pq.write_table(table, ref)  # the first bytes again, then the new ones under a forged stat
    fit_profile_cached(TableSource.open(str(ref)), SPECS, psi_bins=10)
    pq.write_table(table.set_column(0, "x", pa.array(x)), ref)
    _forge_pointer(ref)
    stale, suspect = fit_profile_cached(TableSource.open(str(ref)), SPECS, psi_bins=10, speculative=True)
    assert suspect.pending is not None and stale.fingerprint() == first.fingerprint()
    assert not suspect.confirmed()


@pytest.mark.slow
def test_compare_redoes_everything_when_the_speculative_profile_is_stale(tmp_path):
    """``compare`` with a forged stat pointer to the old bytes' profile: the JSON is the one
    ``--no-cache`` gives for the new bytes, and the old key's model is not overwritten."""
    import subprocess
    import sys

    ref, cur = tmp_path / "ref.parquet", tmp_path / "cur.parquet"
    table = _write(ref, 7)
    _write(cur, 8)

    def compare(*extra):
        args = [sys.executable, "-m", "drift_assets", "compare", str(ref), str(cur), "--json", "-", *extra]
        done = subprocess.run(args, capture_output=True, text=True)
        assert done.returncode in (0, 1), done.stderr
        return done.stdout

    old = compare()
    assert compare() == old  # the speculative hit, confirmed
    (model,) = (tmp_path / ".drift_assets" / "profiles").glob("*.multivariate.json")
    model_text = model.read_text()
    x = table.column("x").to_numpy().copy()
    x[:500] += 3.0
    pq.write_table(table.set_column(0, "x", pa.array(x)), ref)
    _forge_pointer(ref)
    new = compare()
    assert new == compare("--no-cache") != old
    assert model.read_text() == model_text
