"""Cost of the multivariate checks (issue 14), on the suite's column mix.

    python benchmarks/bench_multivariate.py               # both parts (~1-2 min on 2 idle cores)
    python benchmarks/bench_multivariate.py --part reconstruction
    python benchmarks/bench_multivariate.py --part classifier

1. reconstruction: a 1,000,000-row window (4 record batches of 250,000 rows, 20 numerical + 5
   categorical columns) against a 100,000-row reference. ``summarize`` alone vs the reconstruction
   counts of the same batches (seeded sample of ~50,000 rows, ``sample_rate_for``) plus
   ``evaluate_reconstruction``; median of ``--repeats`` runs, and the same without sampling.
2. classifier: ``evaluate_domain_classifier`` on 50,000 reference + 50,000 window sample rows, once
   on a stationary window (no importance pass) and once on a correlation flip (the check fires, so
   the permutation-importance pass runs too). Wall and CPU seconds are printed: the classifier runs
   on one OpenMP thread by default, so its CPU seconds are its wall time on an idle core.

Data generation is excluded from every time. The load average is printed with the figures: the
machine is shared, and a busy neighbour doubles any of them.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import pyarrow as pa

from drift_assets.simulate.synthetic import AMOUNTS, CATEGORIES, COUNTS, NORMALS, NUMERICAL, ZERO_INFLATED
from drift_assets.stats import ColumnSpec, fit_profile, summarize
from drift_assets.stats import domain_classifier as dc
from drift_assets.stats import multivariate as mv

SPECS = [ColumnSpec(n, "numerical") for n in NUMERICAL] + [ColumnSpec(c, "categorical") for c in CATEGORIES]


def generate(rng: np.random.Generator, n: int, rho: float = 0.6) -> pa.Table:
    """The suite's generator, with normal_0 / normal_1 a bivariate normal pair of correlation rho."""
    columns: dict[str, pa.Array] = {}
    a = rng.normal(size=n)
    pair = {"normal_0": a, "normal_1": rho * a + np.sqrt(1 - rho**2) * rng.normal(size=n)}
    for name, (mean, sd) in NORMALS.items():
        columns[name] = pa.array(mean + sd * pair.get(name, rng.normal(size=n)))
    for name, (mu, sigma) in AMOUNTS.items():
        columns[name] = pa.array(rng.lognormal(mu, sigma, n))
    for name, lam in COUNTS.items():
        columns[name] = pa.array(rng.poisson(lam, n))
    refunds = rng.lognormal(2.0, 1.0, n)
    refunds[rng.random(n) < 0.4] = 0.0
    columns[ZERO_INFLATED] = pa.array(refunds)
    for name, p in CATEGORIES.items():
        codes = rng.choice(len(p), size=n, p=p).astype(np.int32)
        vocabulary = pa.array([f"{name}_{k}" for k in range(len(p))])
        columns[name] = pa.DictionaryArray.from_arrays(pa.array(codes), vocabulary)
    return pa.table(columns)


def load() -> str:
    return "load average " + " ".join(os.getloadavg().__repr__().strip("()").split(", "))


def bench_reconstruction(repeats: int) -> None:
    reference = generate(np.random.default_rng(0), 100_000)
    profile, model = fit_profile(reference, SPECS), mv.fit_reconstruction(reference, SPECS)
    rng = np.random.default_rng(1)
    batches = [generate(rng, 250_000) for _ in range(4)]
    rate = mv.sample_rate_for(1_000_000)
    summarize_s, sampled_s, full_s = [], [], []
    for _ in range(repeats):
        t = time.perf_counter()
        summarize(profile, batches)
        summarize_s.append(time.perf_counter() - t)
        t = time.perf_counter()
        counts = mv.reconstruction_counts(model, batches, sample_rate=rate)
        mv.evaluate_reconstruction(model, counts)
        sampled_s.append(time.perf_counter() - t)
    for _ in range(max(1, repeats // 2)):
        t = time.perf_counter()
        mv.evaluate_reconstruction(model, mv.reconstruction_counts(model, batches))
        full_s.append(time.perf_counter() - t)
    s, r, f = np.median(summarize_s), np.median(sampled_s), np.median(full_s)
    print(f"reconstruction, 1,000,000-row window ({load()}):")
    print(f"  summarize                    {s:6.3f} s (median of {repeats}: {np.round(summarize_s, 3).tolist()})")
    print(
        f"  + reconstruction, {counts.rows:,} rows {r:6.3f} s = {r / s:5.1%} of summarize "
        f"({np.round(sampled_s, 3).tolist()})"
    )
    print(f"  + reconstruction, every row  {f:6.3f} s = {f / s:5.1%} of summarize")


def bench_classifier() -> None:
    reference = generate(np.random.default_rng(2), 50_000)
    for label, rho in (("stationary", 0.6), ("correlation flip", -0.6)):
        window = generate(np.random.default_rng(3), 50_000, rho)
        t, cpu = time.perf_counter(), time.process_time()
        result = dc.evaluate_domain_classifier(reference, window, SPECS)
        seconds, cpu = time.perf_counter() - t, time.process_time() - cpu
        # One OpenMP thread: CPU seconds are what the wall time is on an idle core.
        print(
            f"domain classifier, 50,000 + 50,000 rows, {label} ({load()}): {seconds:.1f} s wall, {cpu:.1f} s CPU,"
            f" AUC {result.auc:.3f}, drifted {result.drifted}, explained by {result.explained_by}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=["reconstruction", "classifier", "both"], default="both")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    if args.part in ("reconstruction", "both"):
        bench_reconstruction(args.repeats)
    if args.part in ("classifier", "both"):
        bench_classifier()


if __name__ == "__main__":
    main()
