"""The demo's 216 LLM hours with 1 and with 2 hour processes (cli/hours.py), interleaved.

Each run is ``python -m drift_assets.cli.demo llm`` (what the demo's second process runs: the llm
reference run, then the 216 hours) on a fresh instance, assets and reports root of its own over the
same simulated 16 days (``bench_dagster_week.code_env``); wall and CPU from the process, the hours
phase as the demo prints it, the load average before and after. The printed rows of every run are
compared with the first one-process run's (timing and worker lines aside).

    .venv/bin/python benchmarks/bench_demo_hours.py --repeat 2      # ~8 min
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_dagster_week import PROJECT, code_env  # noqa: E402

VARYING = re.compile(r"elapsed|hour worker|Dagster backfills|\(llm [a-z]+: |^Elapsed")


def run(env: dict[str, str]) -> tuple[float, float, str]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "drift_assets.cli.demo", "llm"], capture_output=True, text=True, env=env
    )
    wall = time.monotonic() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise RuntimeError(proc.stdout[-2000:] + proc.stderr[-2000:])
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, proc.stdout


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeat", type=int, default=2)
    args = p.parse_args()
    from drift_assets.simulate import simulate_llm

    root = Path(tempfile.mkdtemp(prefix="bench-demo-hours-"))
    simulate_llm(str(root / "data" / "llm"), days=16)
    try:
        reference = None
        print("| workers | round | wall s | CPU s | hours phase | load before -> after |\n|---|---|---|---|---|---|")
        for i in range(args.repeat):
            for workers in (1, 2):
                env = code_env(root, f"w{workers}_{i}", PROJECT, monitors=PROJECT / "monitors.yaml", html=True)
                env["DRIFT_ASSETS_DEMO_HOUR_WORKERS"] = str(workers)
                load = os.getloadavg()[0]
                wall, cpu, out = run(env)
                phase = re.search(r"\(llm windows: ([^)]+)\)", out)
                rows = [line for line in out.splitlines() if not VARYING.search(line)]
                reference = reference or rows
                same = "" if rows == reference else " (printed rows DIFFER)"
                print(
                    f"| {workers} | {i + 1} | {wall:.1f} | {cpu:.1f} | {phase.group(1) if phase else '?'}{same} "
                    f"| {load:.2f} -> {os.getloadavg()[0]:.2f} |",
                    flush=True,
                )

    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
