"""The ``drift-assets`` command line (also ``python -m drift_assets``)."""

from __future__ import annotations

import argparse
import math
import os
import queue
import sys
import textwrap
import threading
import traceback
import warnings
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported for real by _import_engine(), on the first command that needs them
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
        infer_column_specs,
        summarize,
    )
    from drift_assets.stats import domain_classifier as dc
    from drift_assets.stats import multivariate as mv
    from drift_assets.stats import segments as sg
    from drift_assets.stats.errors import TooManyCategoriesError
    from drift_assets.stats.validation import DEFAULT_MIN_REFERENCE_ROWS, require_reference_rows
    from drift_assets.storage.tables import TableSource


def _import_engine() -> None:
    """numpy, pyarrow and the statistics engine, imported when a command runs, not at import:
    ``drift-assets --help`` (and every usage error) answers without loading them (~0.5-1 s)."""
    global np, pa, combined_multivariate_outcome, multivariate_section, CheckOutcome, ColumnSpec
    global DecisionRules, DriftInputError, DriftResult, ProfileError, compare
    global infer_column_specs, summarize, dc, mv, sg, DEFAULT_MIN_REFERENCE_ROWS, require_reference_rows
    global TableSource, TooManyCategoriesError
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
        infer_column_specs,
        summarize,
    )
    from drift_assets.stats import domain_classifier as dc
    from drift_assets.stats import multivariate as mv
    from drift_assets.stats import segments as sg
    from drift_assets.stats.errors import TooManyCategoriesError
    from drift_assets.stats.validation import DEFAULT_MIN_REFERENCE_ROWS, require_reference_rows
    from drift_assets.storage.tables import TableSource


if TYPE_CHECKING:  # imported where used: compare without --prediction never loads the estimator
    from drift_assets.stats.performance_estimation import PerformanceEstimator
    from drift_assets.stats.summary import WindowSummary

EXIT_OK, EXIT_ERROR_CHECK_FAILED, EXIT_BAD_INPUT = 0, 1, 2
# Set to print the traceback after the one-line error (for bug reports).
TRACEBACK_ENV = "DRIFT_ASSETS_TRACEBACK"


def _split(value: str | None) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()] if value else []


def column_specs_from_args(
    args: argparse.Namespace, reference: TableSource, current: TableSource | None = None
) -> tuple[list[ColumnSpec], set[str] | None]:
    """Roles from --monitor, or from explicit lists, or inferred (``cli.infer``: ids, timestamps and
    the label set aside, said in one line on stderr; the inferred prediction/target go into ``args``)."""
    schema = reference.schema()
    if args.monitor:
        from drift_assets.monitoring.config import load_monitors

        monitor = load_monitors(args.monitors_file).get(args.monitor)
        return monitor.column_specs(), set(monitor.top_features)
    numerical, categorical = _split(args.numerical), _split(args.categorical)
    both = [c for c in numerical if c in categorical]
    if both:
        raise DriftInputError(
            f"--numerical and --categorical both name {', '.join(map(repr, both))}: a column has one kind"
        )
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
        from drift_assets.cli.infer import infer_roles

        current_names = current.schema().names if current is not None else []
        roles = infer_roles(
            reference, current_names, prediction=args.prediction, target=args.target, exclude=_split(args.exclude)
        )
        specs = roles.specs
        args.prediction, args.target = roles.prediction, roles.target
        if specs:  # with nothing to compare the one error line says so, and nothing else is printed
            print(roles.describe(current_has_target=roles.target in current_names), file=sys.stderr)
    top = set(_split(args.top)) or None
    return specs, top


def check_output_path(option: str, path: str) -> None:
    """Fail before any work when an output cannot be written; never create folders: a typo in a
    folder name must not silently make a new tree."""
    try:
        _check_output_path(option, Path(path))
    except OSError as exc:
        raise DriftInputError(f"{option} {path}: {exc.strerror or exc}") from exc


def _check_output_path(option: str, target: Path) -> None:
    path, parent = str(target), target.parent
    if target.is_dir():
        raise DriftInputError(f"{option} {path}: is a directory")
    if not parent.is_dir():
        raise DriftInputError(f"{option} {path}: folder {str(parent)!r} does not exist (it is not created)")
    if target.exists() and not os.access(target, os.W_OK):
        raise DriftInputError(f"{option} {path}: file is not writable")
    if not target.exists() and not os.access(parent, os.W_OK | os.X_OK):
        raise DriftInputError(f"{option} {path}: folder {str(parent)!r} is not writable")


def finite_json(doc: dict) -> str:
    """Strict JSON of a result: a non-finite number (an overflow near 1e308, a 0/0) becomes null and
    its path is listed with the reason under ``non_finite``, so the output is always valid JSON."""
    reasons: dict[str, str] = {}

    def walk(value: object, where: str) -> object:
        if isinstance(value, float) and not math.isfinite(value):
            reasons[where] = "nan" if value != value else ("+inf" if value > 0 else "-inf")
            return None
        if isinstance(value, dict):
            return {k: walk(v, f"{where}.{k}" if where else str(k)) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [walk(v, f"{where}[{i}]") for i, v in enumerate(value)]
        return value

    from drift_assets.storage.root import json_dumps

    cleaned = walk(json_loads_plain(doc), "")
    assert isinstance(cleaned, dict)
    if reasons:
        cleaned["non_finite"] = {
            "note": "these values were not finite numbers (overflow or undefined) and are written as null",
            "values": reasons,
        }
    return json_dumps(cleaned).rstrip("\n")


def json_loads_plain(doc: dict) -> object:
    """Numpy scalars and arrays as Python values (the walk above only sees floats and containers)."""
    import json

    from drift_assets.storage.root import _json_default

    return json.loads(json.dumps(doc, default=_json_default))


def _write_text(option: str, path: str, text: str) -> None:
    try:
        with open(path, "w") as fh:
            fh.write(text)
    except OSError as exc:
        raise DriftInputError(f"{option} {path}: cannot write: {exc.strerror or exc}") from exc


def _check_compare_options(args: argparse.Namespace) -> None:
    for option, path in (("--json", args.json), ("--html", args.html)):
        if path and path != "-":
            check_output_path(option, path)
    if args.max_categories < 1:
        raise DriftInputError(f"--max-categories {args.max_categories}: expected at least 1")
    if getattr(args, "own_process", False) and not args.html and not args.dask:
        from drift_assets.storage.pandas_probe import defer_pandas_probe

        defer_pandas_probe()  # compare's inputs are never pandas objects (0.15-0.4 s of import)


def run_compare(args: argparse.Namespace, speculative: bool = True) -> int:
    """``speculative``: a cached profile may be found by the reference's file stat, its content
    hash checked on a thread while CURRENT is read; if the bytes turn out changed, all again."""
    _check_compare_options(args)
    reference = TableSource.open(args.reference, csv_delimiter=args.csv_delimiter)
    current = TableSource.open(args.current, csv_delimiter=args.csv_delimiter)
    specs, top = column_specs_from_args(args, reference, current)
    if not specs:
        raise DriftInputError(f"{reference.display}: no columns to compare")
    declared = {s.name: pa.float64() if s.kind == "numerical" else pa.string() for s in specs}
    if args.monitor or args.numerical or args.categorical:
        # Declared kinds are the CSV types (a parquet file carries its own).
        reference = TableSource.open(args.reference, csv_delimiter=args.csv_delimiter, csv_types=declared)
        current = TableSource.open(args.current, csv_delimiter=args.csv_delimiter, csv_types=declared)
    names = [s.name for s in specs]
    current_schema = current.schema()
    # The current table may not have its labels yet: then the target is not compared (nor realized).
    specs = [s for s in specs if s.role != "target" or s.name in current_schema.names]
    names = [s.name for s in specs]
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
    reference_rows = reference.num_rows()
    if reference_rows is None:  # CSV: no footer to count from
        reference_rows = reference.read(names[:1]).num_rows
    require_reference_rows(
        reference_rows, DEFAULT_MIN_REFERENCE_ROWS if min_rows is None else min_rows, reference.display
    )
    segments = _split(args.segments)
    joint = JointCompare(args, specs, reference, current, segments)
    # The multivariate model's rows are taken from the profile fit's own column reads (one read).
    tap = joint.sample_tap(reference_rows)
    profile, cached = _fit_reference(args, reference, specs, tap, speculative)
    if joint.segments:  # segment profiles need the whole reference (and fit the model from it too)
        joint.fit(reference.read(names + joint.extra_columns), profile)
    elif joint.skip is None:  # fitted while CURRENT streams by
        joint.start_model(reference, reference_rows, tap, cached)
    # The performance estimate's score counts come from the same pass over CURRENT as the drift counts.
    estimator, estimator_error = fit_compare_estimator(args, reference)
    scored = [c for c in (args.prediction, args.target) if estimator and c in current_schema.names and c not in names]
    if args.dask:
        types = {n: current_schema.field(n).type for n in names + scored}
        window = summarize_on_dask(args.dask, profile, current, types, estimator)
    else:
        batches = joint.observe(read_ahead(current.batches(names + joint.extra_columns + scored)))
        window = summarize(profile, batches, table_name=current.display, estimator=estimator)
    if window.problems:
        raise DriftInputError("; ".join(window.problems.values()))
    result = compare(profile, window, rules, top_features=top, table_name=current.display)
    performance = None
    if args.prediction and args.target:
        performance = compare_performance(estimator, estimator_error, window, rules)
    extra_checks, sections = joint.finish(rules, lambda: reference.batches(names))
    if not cached.confirmed():  # REFERENCE's bytes are not the cached profile's: from its bytes
        return run_compare(args, speculative=False)
    if args.html:
        decision = _with_joint(result.to_dict(), extra_checks, sections)
        _write_html(args.html, reference, current, names, specs, decision)
    return _report(args, result, performance, extra_checks, sections)


def read_ahead(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """``batches``, the next one read (parquet decoding releases the GIL) on a thread while the
    caller counts the one it has: the same batches in the same order, at most two alive at once
    (the producer reads the next only once the caller has taken the last). Its errors are raised
    here; a caller that stops early stops the thread. Serial when threads are off."""
    from drift_assets.stats.threads import thread_count

    if thread_count() <= 1:
        yield from batches
        return
    handoff: queue.Queue = queue.Queue(maxsize=1)
    stop = threading.Event()

    def produce() -> None:
        try:
            for batch in batches:
                handoff.put((batch, None))
                handoff.join()  # the caller has taken it: read the next one meanwhile
                if stop.is_set():
                    return
            handoff.put((None, None))
        except BaseException as exc:  # noqa: BLE001 - raised in the caller's thread
            handoff.put((None, exc))

    reader = threading.Thread(target=produce, name="drift-assets-read", daemon=True)
    reader.start()
    try:
        while True:
            batch, error = handoff.get()
            handoff.task_done()
            if error is not None:
                raise error
            if batch is None:
                return
            yield batch
    finally:
        stop.set()
        while reader.is_alive():  # let a producer blocked on its next put see the stop
            try:
                handoff.get(timeout=0.05)
                handoff.task_done()
            except queue.Empty:
                pass


def _fit_reference(
    args: argparse.Namespace, reference: TableSource, specs: list[ColumnSpec], tap, speculative: bool = False
):
    """The reference profile (cached unless --no-cache), the tap seeing each column it reads."""
    from drift_assets.monitoring.profile_cache import fit_profile_cached

    try:
        return fit_profile_cached(
            reference,
            specs,
            psi_bins=args.bins,
            max_categories=args.max_categories,
            table_name=reference.display,
            use_cache=not args.no_cache,
            column_hook=tap.add if tap else None,
            speculative=speculative,
        )
    except TooManyCategoriesError as exc:
        raise DriftInputError(
            f"{exc.table}: column {exc.column!r} has {exc.distinct} distinct values, more than --max-categories"
            f" {exc.limit}: it looks like an identifier. Leave it out (--exclude {exc.column} when roles are"
            " inferred, else drop it from --categorical), declare it --numerical, or raise --max-categories"
        ) from exc


def _write_html(
    path: str, reference: TableSource, current: TableSource, names: list[str], specs, decision: dict | None = None
) -> None:
    from drift_assets.monitoring.reports import (
        sample_source,
        write_evidently_report,
    )

    try:
        write_evidently_report(
            sample_source(reference, names),
            sample_source(current, names, seed=1),
            specs,
            path,
            decision=decision,
            title=f"{current.display} vs {reference.display}",
        )
    except OSError as exc:
        raise DriftInputError(f"--html {path}: cannot write: {exc.strerror or exc}") from exc


def _report(args, result: DriftResult, performance: dict | None, extra_checks: list, sections: dict) -> int:
    """JSON and/or the table printout; the exit code (1 when an ERROR check failed)."""
    if args.json:
        doc = _with_joint(result.to_dict(), extra_checks, sections)
        if performance is not None:
            doc["performance"] = performance
        text = finite_json(doc)
        if args.json == "-":
            _print_stdout(text)
        else:
            _write_text("--json", args.json, text + "\n")
    if not args.json or args.json != "-":
        print(format_result(result))
        print(format_joint(extra_checks, sections))
        if performance is not None:
            print(format_performance(performance))
        if args.html:
            print(f"Evidently report: {args.html}")
    performance_failed = performance is not None and not (performance.get("check") or {}).get("passed", True)
    failed_error = result.failed_checks("ERROR") or [c for c in extra_checks if not c.passed and c.severity == "ERROR"]
    return EXIT_ERROR_CHECK_FAILED if failed_error or performance_failed else EXIT_OK


def fit_compare_estimator(
    args: argparse.Namespace, reference: TableSource
) -> tuple[PerformanceEstimator | None, str | None]:
    """With --prediction and --target: the performance estimator fitted on the labelled reference,
    or the one-line reason it cannot be (the drift comparison runs either way)."""
    if not (args.prediction and args.target):
        return None, None
    from drift_assets.stats.performance_estimation import fit_performance_estimator

    try:
        table = reference.read([args.prediction, args.target])
        estimator = fit_performance_estimator(
            table, score_column=args.prediction, target_column=args.target, threshold=args.threshold
        )
    except DriftInputError as exc:
        return None, str(exc)
    return estimator, None


def compare_performance(
    estimator: PerformanceEstimator | None, estimator_error: str | None, window: WindowSummary, rules: DecisionRules
) -> dict:
    """The ``performance`` object: metrics estimated from the current scores (calibrated on the
    labelled reference) with their bands, and realized ones when the current table has the target,
    both from the score counts of the drift pass. Input the estimator cannot use gives ``error``
    (one line naming the column); drift still runs."""
    from drift_assets.stats.checks import estimated_auc_check
    from drift_assets.stats.performance_estimation import estimate_performance, realized_performance

    counts = window.performance
    if estimator is None or counts is None:
        error = estimator_error or window.performance_problem or "the current table's scores were not counted"
        return {"estimated": None, "realized": None, "error": error}
    try:
        estimate = estimate_performance(estimator, counts)
    except DriftInputError as exc:
        return {"estimated": None, "realized": None, "error": str(exc)}
    realized = realized_performance(estimator, counts)
    check = estimated_auc_check(estimate, estimator.champion_auc, rules)
    return {
        "estimated": estimate.to_dict(),
        "realized": realized.to_dict() if realized else None,
        "reference_roc_auc": estimator.champion_auc,
        "check": check.to_dict(),
    }


def format_performance(performance: dict) -> str:
    if performance.get("error"):
        return f"performance: not estimated: {performance['error']}"
    est, real = performance["estimated"], performance["realized"]
    band = f"[{_fmt(est['lower'])}, {_fmt(est['upper'])}]"
    lines = [
        "",
        f"performance (threshold {est['threshold']:g}; reference AUC {_fmt(performance['reference_roc_auc'])}):",
        f"  {'metric':<10} {'estimated':>9} {'band':>16} {'realized':>9}",
    ]
    for name in ("roc_auc", "precision", "recall", "f1", "accuracy"):
        b = est["bands"][name]
        interval = band if name == "roc_auc" else f"[{_fmt(b['lower'])}, {_fmt(b['upper'])}]"
        actual = _fmt(real.get(name)) if real else "(no target)"
        lines.append(f"  {name:<10} {_fmt(b['value']):>9} {interval:>16} {actual:>9}")
    check = performance["check"]
    verdict = "passed" if check["passed"] else "FAILED (ERROR)"
    lines.append(
        f"  {check['name']}: {verdict}: upper bound {_fmt(check['value'])} vs threshold {_fmt(check['threshold'])}"
    )
    return "\n".join(lines)


def summarize_on_dask(
    address: str,
    profile,
    current: TableSource,
    types: dict[str, pa.DataType],
    estimator: PerformanceEstimator | None = None,
):
    """CURRENT's counts on the Dask scheduler at ``address``: one task per parquet row group, the
    profile (and the performance estimator) scattered once, the parts added here. Workers open the
    files themselves (local paths must exist on every worker; s3:// URIs are read with each
    worker's own AWS environment)."""
    from drift_assets.monitoring.dask_compute import WindowRead, summarize_window_on_dask
    from drift_assets.storage.s3 import display_path

    locations = [display_path(current.filesystem, f) for f in current.files()]
    locations = [f if f.startswith("s3://") else os.path.abspath(f) for f in locations]  # workers' cwd differs
    not_parquet = [f for f in locations if not f.endswith((".parquet", ".pq"))]
    if not_parquet:
        raise DriftInputError(f"{not_parquet[0]}: --dask reads parquet files only (split in row groups)")
    try:
        read = WindowRead.for_table(types, current.display)
        return summarize_window_on_dask(address, profile, locations, read, estimator=estimator)
    except ConnectionError as exc:
        raise DriftInputError(f"--dask {address}: {exc}") from exc


class JointCompare:
    """``compare``'s multivariate and segment checks, fed from the same pass over CURRENT."""

    def __init__(self, args, specs: list[ColumnSpec], reference: TableSource, current: TableSource, segments):
        self.specs, self.current, self.segments = specs, current, segments
        features = [s.name for s in specs if s.role == "feature"]
        self.multivariate = not args.no_multivariate
        self.skip = mv.skip_reason(specs) if self.multivariate else "multivariate check disabled (--no-multivariate)"
        if args.dask:
            # The cluster returns counts, not rows: the PCA counts and segment splits are not (yet)
            # computed there, so say so rather than pass.
            if segments:
                raise DriftInputError("--segments cannot be combined with --dask (segments are counted in process)")
            if self.skip is None:
                self.skip = "multivariate check skipped: --dask counts CURRENT on the cluster"
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
        self.features = features
        # The model's lane (``start_model``): the fit, then the window batches' counts, in order.
        self._lane: ThreadPoolExecutor | None = None
        self._queued: list[tuple[int, Future]] = []  # (sampled rows, its task), collected by _model_ready

    def sample_tap(self, reference_rows: int) -> ReferenceSampleTap | None:
        """Encodes the model's reference rows while the profile is fitted (None: no model wanted)."""
        if self.skip is not None or self.segments:
            return None
        return ReferenceSampleTap(self.specs, mv.reference_halves(reference_rows, mv.DEFAULT_MAX_HALF_ROWS, 0))

    def fit_model(self, reference: TableSource, rows: int, tap: ReferenceSampleTap | None, cached) -> None:
        """The reconstruction model: from the profile cache (same key), else fitted on the tapped
        rows (or the same rows streamed from REFERENCE when the profile came from the cache or was
        fitted streamed), then stored beside the cached profile."""
        from drift_assets.monitoring.profile_cache import read_companion, write_companion

        stored = read_companion(cached.path, cached.key, "multivariate", mv.MODEL_VERSION)
        if stored is not None:
            try:
                self.model = mv.ReconstructionModel.from_dict(stored)
            except (ProfileError, KeyError, TypeError, ValueError):
                self.model = None  # unreadable: refitted below
        if self.model is None:
            try:
                self.model = self._fitted_model(reference, rows, tap)
            except ProfileError as exc:  # e.g. a reference too small for the model: skipped, with why
                self.skip = f"multivariate check skipped: {exc}"
                return
            if cached.confirmed():  # never stored under a key whose bytes were not these
                write_companion(cached.path, cached.key, "multivariate", mv.MODEL_VERSION, self.model.to_dict())
        self.counts = mv.ReconstructionCounts.empty(self.model)

    def _fitted_model(
        self, reference: TableSource, rows: int, tap: ReferenceSampleTap | None
    ) -> mv.ReconstructionModel:
        encoded = tap.pop_encoded() if tap is not None else None
        if encoded is not None:
            return mv.fit_reconstruction_from_encoded_columns(encoded, rows, self.specs)
        sample = mv.take_rows(reference.batches(self.features), mv.fit_sample_rows(rows))
        if sample is None:
            raise ProfileError(f"{reference.display}: no rows")
        return mv.fit_reconstruction_from_sample(sample, rows, self.specs)

    def start_model(self, reference: TableSource, rows: int, tap: ReferenceSampleTap | None, cached) -> None:
        """``fit_model`` on a thread of its own, the model's lane (the second core), while the window
        streams: each window batch's rows for the model are sampled as it passes and counted on the
        lane too, behind the fit and in the window's order, so the counts are the serial ones (test).
        Serial when threads are off."""
        from drift_assets.stats.threads import thread_count

        if thread_count() <= 1:
            return self.fit_model(reference, rows, tap, cached)
        self._lane = ThreadPoolExecutor(max_workers=1, thread_name_prefix="drift-assets-model")
        self._queued.append((0, self._lane.submit(self.fit_model, reference, rows, tap, cached)))

    def _count_model_rows(self, batch) -> None:
        """The batch's rows for the model: sampled now (the seeded draw, in the window's order) and
        counted on the lane, or now when serial. At most ``MAX_WAITING_ROWS`` sampled rows wait on
        the lane: beyond that, the window waits for it."""
        if self._lane is None:
            if self.model is not None and self.counts is not None:
                self._add_counts(batch.num_rows, mv.sample_batch(batch, self.features, self.rate, self._rng))
            return
        rows = mv.sample_batch(batch, self.features, self.rate, self._rng)
        self._queued.append((rows.num_rows, self._lane.submit(self._add_counts, batch.num_rows, rows)))
        while sum(n for n, f in self._queued if not f.done()) >= MAX_WAITING_ROWS:
            next(f for _, f in self._queued if not f.done()).result()

    def _add_counts(self, rows_seen: int, rows) -> None:
        if self.model is None or self.counts is None:
            return  # skipped (the reason is in self.skip)
        self.counts = self.counts + mv.count_batch(
            self.model, rows, table_name=self.current.display, rows_seen=rows_seen
        )

    def _model_ready(self) -> None:
        """Wait for the model's lane: the fit and every batch queued behind it (their exceptions
        are raised here, the fit's first)."""
        queued, self._queued = self._queued, []
        for _, future in queued:
            future.result()
        if self._lane is not None:
            self._lane.shutdown()
            self._lane = None

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
            self._count_model_rows(batch)
            if self.sample is not None:
                self.sample.add(batch)
            if self.segment_profiles is not None:
                values = self.segment_profiles.values_by_column
                self.segmented = self.segmented + sg.summarize_segments_batch(self.profile, batch, values, name)
            yield batch

    def finish(self, rules: DecisionRules, reference_batches) -> tuple[list[CheckOutcome], dict]:
        self._model_ready()
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


def _take_sorted(chunks: list[pa.Array], rows: np.ndarray, type_: pa.DataType) -> pa.Array:
    """``rows`` (sorted) of the column in ``chunks``, taken chunk by chunk: arrow's take over a
    chunked array, or joining the chunks first, costs up to ~10-30x that (strings most)."""
    taken, offset = [], 0
    for chunk in chunks:
        lo, hi = np.searchsorted(rows, [offset, offset + len(chunk)])
        if hi > lo:
            taken.append(chunk.take(pa.array(rows[lo:hi] - offset)))
        offset += len(chunk)
    return pa.concat_arrays(taken) if taken else pa.array([], type=type_)


# Sampled window rows waiting on the model's lane, at most (then compare waits for it).
MAX_WAITING_ROWS = 200_000


class ReferenceSampleTap:
    """``fit_profile``'s column hook: each feature column read is cut into the model's two
    reference halves (``rows``, sorted) and encoded there and then, on the profile's threads
    (``mv.encode_reference_column``), so that only the covariance is left for the model's thread."""

    def __init__(self, specs: list[ColumnSpec], halves: tuple[np.ndarray, np.ndarray]):
        self.specs = {s.name: s for s in specs if s.role == "feature"}
        self.halves = halves
        self.columns: dict[str, mv.EncodedColumn] = {}
        # A column the model cannot encode must not fail the profile fit: raised by pop_encoded.
        self.errors: dict[str, Exception] = {}

    def add(self, name: str, column) -> None:
        spec = self.specs.get(name)
        if spec is None:
            return
        chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
        fitting, held_out = (_take_sorted(chunks, rows, column.type) for rows in self.halves)
        try:
            self.columns[name] = mv.encode_reference_column(spec, fitting, held_out)
        except Exception as exc:  # noqa: BLE001 - raised where the model is fitted, as unencoded
            self.errors[name] = exc

    def pop_encoded(self) -> dict[str, mv.EncodedColumn] | None:
        """Every feature's encoded halves (the tap lets go of them), or None when some column was
        not read whole; the first feature's error in column order, if one failed."""
        columns, errors, self.columns, self.errors = self.columns, self.errors, {}, {}
        for name in self.specs:
            if name in errors:
                raise errors[name]
        if any(name not in columns for name in self.specs):
            return None
        return columns


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
    """One format for every number in the table: ``digits`` decimals; a value too small to show
    in them is ``<0.001`` (``-<0.001`` below zero), never switched to exponent notation (the JSON
    keeps the exact values)."""
    if value is None:
        return "-"
    if value != 0 and abs(value) < 0.5 * 10 ** (-digits):
        return ("-<" if value < 0 else "<") + f"{10 ** (-digits):.{digits}f}"
    return f"{value:.{digits}f}"


MAX_CATEGORIES_HELP = (
    "a categorical reference column with more distinct values is refused as an identifier (default 1000)"
)
TABLE_LEGEND = (
    "psi: population stability index over `bins` bins (reference quantiles, or the categories); p-value: KS"
    " (numerical) or chi-square (categorical), before the Holm correction the decision uses;"
    " effect: Wasserstein distance / reference sd (numerical), largest change in a category's share"
    " (categorical); missing: share of missing values in the current table"
)


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
    lines += [*textwrap.wrap(TABLE_LEGEND, width=len(header), initial_indent="", subsequent_indent="  "), ""]
    failed = result.failed_checks()
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


def package_version() -> str:
    """The installed distribution's version (pyproject.toml's ``version``)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("drift_assets")
    except PackageNotFoundError:  # running from a source tree that is not installed
        return "unknown (not installed)"


class _VersionAction(argparse.Action):
    """``--version``, the distribution looked up only when asked (importlib.metadata and the
    lookup cost every other command ~50-80 ms)."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, help=None):
        super().__init__(option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        parser._print_message(f"drift-assets {package_version()}\n", sys.stdout)  # as argparse's own
        parser.exit()


def _delimiter(value: str) -> str:
    value = {"tab": "\t", "\\t": "\t"}.get(value, value)
    if len(value) != 1 or value in '\n\r"':
        raise argparse.ArgumentTypeError(f"expected one character (or 'tab'), got {value!r}")
    return value


class OneLineParser(argparse.ArgumentParser):
    """Usage errors are one line too (``drift-assets compare: error: ...``), exit 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="drift-assets",
        description="Model monitoring: drift, data quality and performance per window, on Dagster.",
    )
    parser.add_argument("--version", action=_VersionAction, help="show the program's version number and exit")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=OneLineParser)

    p = sub.add_parser(
        "compare",
        help="compare a current table with a reference table",
        description="Compare CURRENT with REFERENCE (parquet file, directory of parquet files, or CSV; "
        "local path or s3:// URI). Exit code 0: no ERROR check failed; 1: one did; 2: bad input.",
    )
    p.add_argument("reference", help="the reference table: what normal looks like (e.g. the training sample)")
    p.add_argument("current", help="the table to check against the reference (e.g. one week of the production log)")
    p.add_argument("--numerical", help="comma-separated numerical feature columns")
    p.add_argument("--categorical", help="comma-separated categorical feature columns")
    p.add_argument("--prediction", help="the model's prediction column")
    p.add_argument("--target", help="the label column")
    p.add_argument(
        "--threshold",
        type=float,
        default=0.5,
        help="decision threshold for precision/recall/F1/accuracy when --prediction is a probability (default 0.5)",
    )
    p.add_argument("--exclude", help="columns to ignore when inferring roles (ids, timestamps)")
    p.add_argument("--top", help="top features the PSI checks apply to (default: all features)")
    p.add_argument("--monitor", help="take columns and thresholds from this monitor in the monitors file")
    p.add_argument(
        "--monitors-file", default=None, help="monitors file (default: $DRIFT_ASSETS_MONITORS or ./monitors.yaml)"
    )
    p.add_argument("--bins", type=int, default=10, help="PSI bins fitted on the reference (default 10)")
    p.add_argument("--max-categories", type=int, default=1000, metavar="N", help=MAX_CATEGORIES_HELP)
    p.add_argument(
        "--min-reference-rows",
        type=int,
        default=None,
        help="refuse a smaller reference (default: the monitor's min_reference_rows, else 100)",
    )
    p.add_argument("--json", metavar="PATH", help="write the result as JSON to PATH ('-' for stdout)")
    p.add_argument("--html", metavar="PATH", help="write an Evidently HTML report to PATH")
    p.add_argument(
        "--no-cache",
        action="store_true",
        help="fit the reference profile afresh and do not store it (default: reuse the profile cached for "
        "the same reference bytes, columns and bins, in .drift_assets/profiles next to the reference)",
    )
    p.add_argument(
        "--csv-delimiter",
        metavar="CHAR",
        type=_delimiter,
        help="separator of CSV inputs (default: detected from the header: one of , ; tab |)",
    )
    p.add_argument(
        "--dask",
        metavar="ADDRESS",
        help="count CURRENT on the Dask scheduler at ADDRESS (tcp://host:port; local or local:N starts a"
        " LocalCluster of N worker processes on 127.0.0.1 for this call), one task per parquet row group",
    )
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


def describe_error(exc: BaseException) -> str:
    """One line saying what failed, naming the file (or object) when the error knows it."""
    if isinstance(exc, OSError):
        # S3 errors name s3://bucket/key and the error code; local ones the file and the reason.
        text = f"{exc.filename}: {exc.strerror}" if exc.filename is not None and exc.strerror else str(exc)
    elif isinstance(exc, ValueError):  # DriftInputError is a ValueError
        text = str(exc)
    elif isinstance(exc, KeyError):
        text = f"unknown key {exc}"
    else:
        text = f"{type(exc).__name__}: {exc} (set {TRACEBACK_ENV}=1 for the traceback)"
    return " ".join(text.split())


def _stdout_failed(exc: OSError) -> DriftInputError:
    # Nothing more can go to this stdout; point it at /dev/null so exiting does not fail again.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    return DriftInputError(f"standard output: cannot write: {exc.strerror or exc}")


def _print_stdout(text: str) -> None:
    try:
        print(text, flush=True)
    except OSError as exc:
        raise _stdout_failed(exc) from exc


def _flush_stdout() -> None:
    """Output that could not be written (a full disk, a closed pipe) is an error like any other."""
    try:
        sys.stdout.flush()
    except OSError as exc:
        raise _stdout_failed(exc) from exc


def main(argv: Sequence[str] | None = None) -> int:
    """Exit codes: 0 ok, 1 an ERROR check failed, 2 anything else went wrong (bad input, an
    unreachable store, an unwritable output), always as one line on stderr, never a traceback."""
    parser = build_parser()
    args = parser.parse_args(argv)
    # A process started as the CLI (argv from the command line): the pandas probe may be deferred;
    # a caller passing argv (tests, other Python code) keeps its process as it was.
    args.own_process = argv is None
    try:
        _import_engine()
        # Overflow near 1e308 and the like are reported in the result (non-finite values), not as
        # numpy's multi-line RuntimeWarnings on stderr.
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore", RuntimeWarning)
            code = int(args.handler(args) or 0)
        _flush_stdout()
        return code
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # noqa: BLE001 - the contract: every error is one line and exit 2
        print(f"drift-assets: error: {describe_error(exc)}", file=sys.stderr)
        if os.environ.get(TRACEBACK_ENV):
            traceback.print_exc()
        return EXIT_BAD_INPUT


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
