"""The ``drift-assets`` command line (also ``python -m drift_assets``)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

import pyarrow as pa

from drift_assets.stats import (
    ColumnSpec,
    DecisionRules,
    DriftInputError,
    DriftResult,
    compare,
    fit_profile,
    infer_column_specs,
    summarize,
)
from drift_assets.stats.validation import DEFAULT_MIN_REFERENCE_ROWS, require_reference_rows
from drift_assets.storage.tables import TableSource

EXIT_OK, EXIT_ERROR_CHECK_FAILED, EXIT_BAD_INPUT = 0, 1, 2


def _split(value: str | None) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()] if value else []


def column_specs_from_args(
    args: argparse.Namespace, reference: TableSource
) -> tuple[list[ColumnSpec], set[str] | None]:
    """Roles from --monitor, or from explicit lists, or inferred from the reference's types."""
    schema = reference.schema()
    if args.monitor:
        from drift_assets.monitoring.config import load_monitors

        monitor = load_monitors(args.monitors_file).get(args.monitor)
        return monitor.column_specs(), set(monitor.top_features)
    numerical, categorical = _split(args.numerical), _split(args.categorical)
    named = numerical + categorical + [c for c in (args.prediction, args.target) if c] + _split(args.exclude)
    unknown = [c for c in named if c not in schema.names]
    if unknown:
        raise DriftInputError(
            f"{reference.display}: unknown column(s) in the options: {', '.join(map(repr, unknown))}"
            f" (columns: {', '.join(schema.names)})"
        )
    if numerical or categorical:
        specs = [ColumnSpec(n, "numerical") for n in numerical] + [ColumnSpec(c, "categorical") for c in categorical]
        for role, name in (("prediction", args.prediction), ("target", args.target)):
            if name:
                inferred = infer_column_specs(pa.schema([schema.field(name)]))
                kind = inferred[0].kind if inferred else "numerical"
                specs.append(ColumnSpec(name, kind, role))  # type: ignore[arg-type]
    else:
        specs = infer_column_specs(schema, prediction=args.prediction, target=args.target, exclude=_split(args.exclude))
    top = set(_split(args.top)) or None
    return specs, top


def run_compare(args: argparse.Namespace) -> int:
    reference = TableSource.open(args.reference)
    current = TableSource.open(args.current)
    specs, top = column_specs_from_args(args, reference)
    if not specs:
        raise DriftInputError(f"{reference.display}: no columns to compare")
    names = [s.name for s in specs]
    current_schema = current.schema()
    missing = [n for n in names if n not in current_schema.names]
    if missing:
        raise DriftInputError(f"{current.display}: missing column(s) {', '.join(map(repr, missing))}")
    rules = DecisionRules()
    min_rows = args.min_reference_rows
    if args.monitor:
        from drift_assets.monitoring.config import load_monitors

        monitor = load_monitors(args.monitors_file).get(args.monitor)
        rules = monitor.rules
        min_rows = monitor.min_reference_rows if min_rows is None else min_rows
    reference_table = reference.read(names)
    require_reference_rows(
        reference_table.num_rows, DEFAULT_MIN_REFERENCE_ROWS if min_rows is None else min_rows, reference.display
    )
    profile = fit_profile(reference_table, specs, psi_bins=args.bins)
    window = summarize(profile, current.batches(names), table_name=current.display)
    if window.problems:
        raise DriftInputError("; ".join(window.problems.values()))
    result = compare(profile, window, rules, top_features=top, table_name=current.display)
    if args.html:
        from drift_assets.monitoring.reports import (
            sample_source,
            write_evidently_report,
        )

        write_evidently_report(sample_source(reference, names), sample_source(current, names, seed=1), specs, args.html)
    if args.json:
        text = json.dumps(result.to_dict(), indent=2, default=float)
        if args.json == "-":
            print(text)
        else:
            with open(args.json, "w") as fh:
                fh.write(text + "\n")
    if not args.json or args.json != "-":
        print(format_result(result))
        if args.html:
            print(f"Evidently report: {args.html}")
    return EXIT_ERROR_CHECK_FAILED if result.failed_checks("ERROR") else EXIT_OK


def _fmt(value: float | None, digits: int = 3) -> str:
    if value is None:
        return "-"
    if value != 0 and abs(value) < 10 ** (-digits):
        return f"{value:.1e}"
    return f"{value:.{digits}f}"


def format_result(result: DriftResult) -> str:
    header = (
        f"{'column':<24} {'kind':<11} {'role':<10} {'psi':>7} {'bins':>4} {'p-value':>8} {'effect':>7} "
        f"{'missing':>7}  drifted"
    )
    lines = [
        f"reference rows: {result.reference_rows:,}   current rows: {result.current_rows:,}",
        header,
        "-" * len(header),
    ]
    for c in result.columns.values():
        effect = c.wasserstein_normed if c.kind == "numerical" else c.max_category_share_change
        lines.append(
            f"{c.name:<24} {c.kind:<11} {c.role:<10} {_fmt(c.psi):>7} {c.psi_bins or '-':>4} "
            f"{_fmt(c.test_pvalue):>8} {_fmt(effect):>7} {_fmt(c.missing_rate):>7}  {'YES' if c.drifted else 'no'}"
        )
    failed = result.failed_checks()
    lines.append("")
    if failed:
        lines.append("failed checks:")
        for chk in sorted(failed, key=lambda x: (x.severity != "ERROR", x.name)):
            where = f"[{chk.column}]" if chk.column else ""
            lines.append(
                f"  {chk.severity:<5} {chk.name}{where}: value {_fmt(chk.value)} vs threshold {_fmt(chk.threshold)}"
            )
    else:
        lines.append("all checks passed")
    s = result.summary()
    lines.append(f"drifted features: {s['drifted_columns']} (share {s['share_drifted']:.2f})")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="drift-assets",
        description="Model monitoring: drift, data quality and performance per window, on Dagster.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "compare",
        help="compare a current table with a reference table",
        description="Compare CURRENT with REFERENCE (parquet file, directory of parquet files, or CSV; "
        "local path or s3:// URI). Exit code 0: no ERROR check failed; 1: one did; 2: bad input.",
    )
    p.add_argument("reference")
    p.add_argument("current")
    p.add_argument("--numerical", help="comma-separated numerical feature columns")
    p.add_argument("--categorical", help="comma-separated categorical feature columns")
    p.add_argument("--prediction", help="the model's prediction column")
    p.add_argument("--target", help="the label column")
    p.add_argument("--exclude", help="columns to ignore when inferring roles (ids, timestamps)")
    p.add_argument("--top", help="top features the PSI checks apply to (default: all features)")
    p.add_argument("--monitor", help="take columns and thresholds from this monitor in the monitors file")
    p.add_argument(
        "--monitors-file", default=None, help="monitors file (default: $DRIFT_ASSETS_MONITORS or ./monitors.yaml)"
    )
    p.add_argument("--bins", type=int, default=10, help="PSI bins fitted on the reference (default 10)")
    p.add_argument(
        "--min-reference-rows",
        type=int,
        default=None,
        help="refuse a smaller reference (default: the monitor's min_reference_rows, else 100)",
    )
    p.add_argument("--json", metavar="PATH", help="write the result as JSON to PATH ('-' for stdout)")
    p.add_argument("--html", metavar="PATH", help="write an Evidently HTML report to PATH")
    p.set_defaults(handler=run_compare)

    for register in _extra_commands():
        register(sub)
    return parser


def _extra_commands():
    """Subcommands living next to what they drive (simulation, models, metrics)."""
    from drift_assets.cli import commands

    return commands.REGISTRY


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except DriftInputError as exc:
        print(f"drift-assets: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except (ValueError, KeyError) as exc:
        # Config errors (monitors file) are ValueErrors with the entry and field in the message.
        print(f"drift-assets: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
