"""docs/detection.md and its PNG plots from the benchmark's results JSON (``run.py`` calls this).

python benchmarks/detection/report.py [--mode full|quick]   # re-render without re-running
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from families import FAMILIES, SHIFTS, column_name  # noqa: E402

DETECTORS = ("ours", "naive", "evidently")
LABEL = {
    "ours": "drift_assets (any WARN/ERROR)",
    "naive": "KS / chi-square p<0.05, uncorrected",
    "evidently": "Evidently DataDriftPreset",
}
COLOR = {"ours": "tab:blue", "naive": "tab:orange", "evidently": "tab:green"}
POWER_GOAL = 0.8


def load(mode: str, here: Path = HERE) -> dict:
    merged: dict = {"counts": {}, "windows": {}, "evidently_windows": {}, "seconds": {}}
    for path in sorted(here.glob(f"results-{mode}-*.json")):
        data = json.loads(path.read_text())
        for detector, by_n in data["counts"].items():
            merged["counts"].setdefault(detector, {}).update(by_n)
        if set(data["detectors"]) - {"evidently"}:
            merged["windows"] = data["windows"]
        if data.get("stationary_windows"):
            merged["stationary_windows"] = data["stationary_windows"]
        if "evidently" in data["detectors"]:
            merged["evidently_windows"] = data["evidently_windows"]
        merged["seconds"][",".join(data["detectors"])] = data["total_seconds"]
        merged["reference_rows"] = data["reference_rows"]
    return merged


def rate(results: dict, detector: str, n: str, column: str) -> tuple[int, int] | None:
    cell = results["counts"].get(detector, {}).get(n, {}).get(column)
    return tuple(cell) if cell else None  # type: ignore[return-value]


def fmt(cell: tuple[int, int] | None, *, flag_above: float | None = None) -> str:
    if not cell or not cell[1]:
        return "–"
    k, total = cell
    text = (f"{k / total:.1%}" if k / total < 0.1 else f"{k / total:.0%}") if k else "0"
    if flag_above is not None and k / total > flag_above:
        text = f"**{text}**"
    return f"{text} ({k}/{total})"


def sizes_of(results: dict) -> list[str]:
    return sorted(results["windows"], key=int)


def budget(n: str) -> float:
    return 0.02 if int(n) < 300 else 0.01


def false_alarm_table(results: dict, detector: str) -> list[str]:
    sizes = sizes_of(results)
    lines = ["| family | " + " | ".join(f"{int(n):,}" for n in sizes) + " |", "|---" * (len(sizes) + 1) + "|"]
    for column in [f.name for f in FAMILIES] + ["(window)"]:
        flag = None if column == "(window)" else 0.0
        cells = [
            fmt(rate(results, detector, n, column), flag_above=budget(n) if flag is not None else None) for n in sizes
        ]
        lines.append(f"| {column} | " + " | ".join(cells) + " |")
    return lines


def stationary_table(results: dict) -> list[str]:
    """The large stationary-only run: window-level rate, per family, and which checks fired."""
    by_n = results["counts"].get("ours_stationary", {})
    checks = results["counts"].get("ours_stationary_checks", {})
    sizes = sorted(by_n, key=int)
    if not sizes:
        return ["(not run)"]
    fired = sorted({name for n in sizes for name, c in checks.get(n, {}).items() if c[0]})
    lines = [
        "| | " + " | ".join(f"{int(n):,}" for n in sizes) + " |",
        "|---" * (len(sizes) + 1) + "|",
        "| **(window): any WARN/ERROR** | "
        + " | ".join(fmt(tuple(by_n[n]["(window)"]), flag_above=budget(n)) for n in sizes)
        + " |",
    ]
    for name in fired:
        lines.append(f"| check `{name}` | " + " | ".join(fmt(tuple(checks[n][name])) for n in sizes) + " |")
    for family in FAMILIES:
        lines.append(
            f"| family {family.name} | "
            + " | ".join(fmt(tuple(by_n[n][family.name]), flag_above=budget(n)) for n in sizes)
            + " |"
        )
    return lines


def power_table(results: dict, detector: str) -> list[str]:
    sizes = sizes_of(results)
    lines = [
        "| shift (magnitude) | " + " | ".join(f"{int(n):,}" for n in sizes) + " |",
        "|---" * (len(sizes) + 1) + "|",
    ]
    for shift in SHIFTS:
        for m in shift.magnitudes:
            cells = [fmt(rate(results, detector, n, column_name(shift, m))) for n in sizes]
            lines.append(f"| {shift.name} {m:g} ({shift.unit}) | " + " | ".join(cells) + " |")
    return lines


def minimum_detectable(results: dict, detector: str, n: str) -> dict[str, str]:
    out = {}
    for shift in SHIFTS:
        found = "not measured"
        for m in shift.magnitudes:
            cell = rate(results, detector, n, column_name(shift, m))
            if cell is None:
                break
            found = f"> {shift.magnitudes[-1]:g}"
            if cell[0] / cell[1] >= POWER_GOAL:
                found = f"{m:g}"
                break
        out[shift.name] = found
    return out


def mde_table(results: dict) -> list[str]:
    header = ["| shift | unit |"]
    cols = [(d, n) for n in ("1000", "10000") for d in DETECTORS]
    header[0] += "".join(f" {d} @ {int(n):,} |" for d, n in cols)
    lines = [header[0], "|---|---|" + "---|" * len(cols)]
    mdes = {(d, n): minimum_detectable(results, d, n) for d, n in cols}
    for shift in SHIFTS:
        lines.append(f"| {shift.name} | {shift.unit} |" + "".join(f" {mdes[c][shift.name]} |" for c in cols))
    return lines


def agreement(results: dict) -> str:
    by_n = results["counts"].get("evidently_report_agrees", {})
    agree = sum(c[0] for cells in by_n.values() for c in cells.values())
    total = sum(c[1] for cells in by_n.values() for c in cells.values())
    if not total:
        return "not checked in this run"
    sizes = ", ".join(f"{int(n):,}" for n in sorted(by_n, key=int))
    return f"{agree} of {total} column verdicts agree (windows at {sizes} rows)"


def plot_false_alarms(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(16, 4.8), sharey=True)
    for ax, detector in zip(axes, DETECTORS, strict=True):
        for family in FAMILIES:
            points = [
                (int(n), c[0] / c[1]) for n in sizes_of(results) if (c := rate(results, detector, n, family.name))
            ]
            if points:
                ax.plot(*zip(*points, strict=True), marker="o", ms=3, label=family.name)
        ax.plot([30, 300, 300, 1_000_000], [0.02, 0.02, 0.01, 0.01], "k--", lw=1, label="target")
        ax.set(xscale="log", title=LABEL[detector], xlabel="window rows")
        ax.set_yscale("symlog", linthresh=0.01)
    axes[0].set_ylabel("share of stationary windows with an alarm on the column")
    axes[-1].legend(fontsize=7, loc="upper right")
    fig.suptitle("False alarms on stationary windows (always-alarm = 1, never-alarm = 0)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def plot_power(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(3, 3, figsize=(15, 11), sharex=True, sharey=True)
    for ax, shift in zip(axes.flat, SHIFTS, strict=True):
        for detector in DETECTORS:
            for m, style in zip(shift.magnitudes, (":", "--", "-"), strict=True):
                points = [
                    (int(n), c[0] / c[1])
                    for n in sizes_of(results)
                    if (c := rate(results, detector, n, column_name(shift, m)))
                ]
                if points:
                    ax.plot(
                        *zip(*points, strict=True), style, color=COLOR[detector], marker=".", label=f"{detector} {m:g}"
                    )
        ax.set(xscale="log", title=f"{shift.name} ({shift.unit})", ylim=(-0.03, 1.03))
        ax.legend(fontsize=6, loc="lower right")
    for ax in axes[-1]:
        ax.set_xlabel("window rows")
    for ax in axes[:, 0]:
        ax.set_ylabel("power")
    fig.suptitle("Power: share of shifted windows where the shifted column alarms (always-alarm = 1)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def write_report(mode: str, here: Path, docs: Path, name: str = "detection.md") -> Path:
    """Render the results of ``mode`` into ``docs/name``; the hand-written notes go into detection.md only."""
    results = load(mode, here)
    if not results["counts"]:
        raise SystemExit(f"no results-{mode}-*.json in {here}")
    images = docs / "detection"
    images.mkdir(parents=True, exist_ok=True)
    plot_false_alarms(results, images / f"false_alarms-{mode}.png")
    plot_power(results, images / f"power-{mode}.png")
    from text import render

    path = docs / name
    path.write_text(render(results, mode, sys.modules[__name__], with_notes=name == "detection.md"))
    print(f"wrote {path}")
    return path


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", default="full", choices=("full", "quick"))
    parser.add_argument("--name", default="detection.md", help="file name under docs/")
    args = parser.parse_args()
    write_report(args.mode, HERE, HERE.parent.parent / "docs", args.name)
