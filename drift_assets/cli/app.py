"""The ``drift-assets`` command line (also ``python -m drift_assets``)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

import numpy as np
import pyarrow as pa

from drift_assets.monitoring.joint import combined_multivariate_outcome, multivariate_section
from drift_assets.stats import (
    CheckOutcome,
    ColumnSpec,
    DecisionRules,
    DriftInputError,
    DriftResult,
    ProfileError,
    compare,
    fit_profile,
    infer_column_specs,
    summarize,
)
from drift_assets.stats import domain_classifier as dc
from drift_assets.stats import multivariate as mv
from drift_assets.stats import segments as sg
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
    if args.monitor:
        from drift_assets.monitoring.config import load_monitors

        rules = load_monitors(args.monitors_file).get(args.monitor).rules
    segments = _split(args.segments)
    joint = JointCompare(args, specs, reference, current, segments)
    reference_table = reference.read(names + [c for c in segments if c not in names])
    profile = fit_profile(reference_table.select(names), specs, psi_bins=args.bins)
    joint.fit(reference_table, profile)
    window = summarize(profile, joint.observe(current.batches(names + joint.extra_columns)), table_name=current.display)
    if window.problems:
        raise DriftInputError("; ".join(window.problems.values()))
    result = compare(profile, window, rules, top_features=top, table_name=current.display)
    extra_checks, sections = joint.finish(rules, lambda: reference.batches(names))
    if args.html:
        from drift_assets.monitoring.reports import (
            sample_source,
            write_evidently_report,
        )

        write_evidently_report(sample_source(reference, names), sample_source(current, names, seed=1), specs, args.html)
    if args.json:
        text = json.dumps(_with_joint(result.to_dict(), extra_checks, sections), indent=2, default=float)
        if args.json == "-":
            print(text)
        else:
            with open(args.json, "w") as fh:
                fh.write(text + "\n")
    if not args.json or args.json != "-":
        print(format_result(result))
        print(format_joint(extra_checks, sections))
        if args.html:
            print(f"Evidently report: {args.html}")
    failed_error = result.failed_checks("ERROR") or [c for c in extra_checks if not c.passed and c.severity == "ERROR"]
    return EXIT_ERROR_CHECK_FAILED if failed_error else EXIT_OK


class JointCompare:
    """``compare``'s multivariate and segment checks, fed from the same pass over CURRENT."""

    def __init__(self, args, specs: list[ColumnSpec], reference: TableSource, current: TableSource, segments):
        self.specs, self.current, self.segments = specs, current, segments
        features = [s.name for s in specs if s.role == "feature"]
        self.multivariate = not args.no_multivariate
        self.skip = mv.skip_reason(specs) if self.multivariate else "multivariate check disabled (--no-multivariate)"
        self.classifier = args.domain_classifier and self.skip is None
        for where, schema in ((reference.display, reference.schema()), (current.display, current.schema())):
            missing = [c for c in segments if c not in schema.names]
            if missing:
                raise DriftInputError(f"{where}: segment column(s) {', '.join(map(repr, missing))} not in the table")
        self.extra_columns = [c for c in segments if c not in [s.name for s in specs]]
        self.model: mv.ReconstructionModel | None = None
        self.segment_profiles: sg.SegmentProfiles | None = None
        self.counts: mv.ReconstructionCounts | None = None
        self.segmented = sg.SegmentedSummary()
        self.sample = dc.StreamingSample(features, dc.DEFAULT_MAX_ROWS, seed=1) if self.classifier else None
        self.rate = mv.sample_rate_for(current.num_rows())
        self._rng = np.random.default_rng(0)

    def fit(self, reference: pa.Table, profile) -> None:
        self.profile = profile
        if self.skip is None:
            try:
                self.model = mv.fit_reconstruction(reference, self.specs)
            except ProfileError as exc:  # e.g. a reference too small for the model: skipped, with why
                self.skip = f"multivariate check skipped: {exc}"
                return self.fit_segments(reference, profile)
            self.counts = mv.ReconstructionCounts.empty(self.model)
        self.fit_segments(reference, profile)

    def fit_segments(self, reference: pa.Table, profile) -> None:
        if self.segments:
            self.segment_profiles = sg.fit_segment_profiles(profile, reference, self.segments)

    def observe(self, batches):
        name = self.current.display
        for batch in batches:
            if self.model is not None and self.counts is not None:
                self.counts = self.counts + mv.count_batch(
                    self.model, batch, sample_rate=self.rate, rng=self._rng, table_name=name
                )
            if self.sample is not None:
                self.sample.add(batch)
            if self.segment_profiles is not None:
                values = self.segment_profiles.values_by_column
                self.segmented = self.segmented + sg.summarize_segments_batch(self.profile, batch, values, name)
            yield batch

    def finish(self, rules: DecisionRules, reference_batches) -> tuple[list[CheckOutcome], dict]:
        checks: list[CheckOutcome] = []
        recon = clf = None
        if self.model is not None and self.counts is not None:
            recon = mv.evaluate_reconstruction(self.model, self.counts)
            if self.sample is not None:
                ref = dc.seeded_sample(reference_batches(), self.sample.columns, dc.DEFAULT_MAX_ROWS, seed=0)
                clf = dc.evaluate_domain_classifier(ref, self.sample.table(), self.specs)
        outcome = combined_multivariate_outcome(recon, clf)
        skipped = self.skip or (recon.skipped if recon else None)
        section = multivariate_section(recon, clf, skipped)
        sections: dict = {"multivariate": {k: section[k] for k in MULTIVARIATE_KEYS}}
        if outcome is not None:
            checks.append(outcome)
        if self.segment_profiles is not None:
            seg = sg.evaluate_segments(self.segment_profiles, self.segmented, rules)
            sections["segments"] = seg.to_dict()["segments"]
            sections["segments_skipped"] = seg.skipped
            seg_outcome = sg.segment_check(seg)
            if seg_outcome is not None:
                checks.append(seg_outcome)
        return checks, sections


MULTIVARIATE_KEYS = ("reconstruction_error", "threshold", "domain_classifier_auc", "drifted", "explained_by", "skipped")


def _with_joint(doc: dict, checks: list[CheckOutcome], sections: dict) -> dict:
    """The core's JSON plus ``multivariate`` / ``segments`` and their checks in ``checks``."""
    doc["checks"] += [c.to_dict() for c in checks]
    failed = [c for c in checks if not c.passed]
    summary = doc["summary"]
    summary["all_passed"] = summary["all_passed"] and not failed
    summary["drift_detected"] = summary["drift_detected"] or any(c.severity == "ERROR" for c in failed)
    summary["failed_checks"] = sorted(set(summary["failed_checks"]) | {c.name for c in failed})
    return {**doc, **sections}


def format_joint(checks: list[CheckOutcome], sections: dict) -> str:
    m = sections["multivariate"]
    if m["skipped"]:
        lines = [f"multivariate: {m['skipped']}"]
    else:
        auc = f", domain classifier AUC {_fmt(m['domain_classifier_auc'])}" if m["domain_classifier_auc"] else ""
        verdict = "DRIFTED, explained by " + ", ".join(m["explained_by"]) if m["drifted"] else "no drift"
        lines = [
            f"multivariate: reconstruction error {_fmt(m['reconstruction_error'])} vs threshold"
            f" {_fmt(m['threshold'])}{auc}: {verdict}"
        ]
    if "segments" in sections:
        lines.append(f"segments evaluated: {len(sections['segments'])}, skipped: {len(sections['segments_skipped'])}")
        for key, reason in sections["segments_skipped"].items():
            lines.append(f"  skipped {key}: {reason}")
    for chk in checks:
        if not chk.passed:
            where = f"[{chk.column}]" if chk.column else ""
            segment = chk.details.get("segment")
            where += f" in {segment}" if segment else ""
            lines.append(
                f"  {chk.severity:<5} {chk.name}{where}: value {_fmt(chk.value)} vs threshold {_fmt(chk.threshold)}"
            )
    return "\n".join(lines)


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
    p.add_argument("--json", metavar="PATH", help="write the result as JSON to PATH ('-' for stdout)")
    p.add_argument("--html", metavar="PATH", help="write an Evidently HTML report to PATH")
    p.add_argument(
        "--no-multivariate",
        action="store_true",
        help="skip the multivariate (PCA reconstruction error) check, on by default with 2+ features",
    )
    p.add_argument(
        "--domain-classifier",
        action="store_true",
        help="also fit the sampled domain classifier (<= 50,000 rows of each side; seconds)",
    )
    p.add_argument("--segments", help="comma-separated categorical columns whose values are compared as segments")
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
