"""Subcommands beyond ``compare``: each is registered by a small function next to its options."""

from __future__ import annotations

import argparse
import sys

REGISTRY: list = []


def port_number(value: str) -> int:
    """A TCP port for argparse: 0 (any free port) to 65535."""
    try:
        port = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number (0-65535), got {value!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port number (0-65535), got {port}")
    return port


def command(func):
    REGISTRY.append(func)
    return func


@command
def _simulate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "simulate",
        help="write the seeded demo data (fraud model, LLM responses)",
        description="Write deterministic, seeded demo data: a fraud model's training reference, weekly "
        "production log with an injected drift, delayed labels and champion model; and an LLM response "
        "log with two incidents. TARGET is a local directory or s3://bucket/prefix.",
    )
    p.add_argument(
        "--target",
        default=None,
        help="data root to write into (default: the configured data root); or postgresql://user@host/db: "
        "the files go to the configured data root and each monitor's log and reference are also loaded "
        "into tables <monitor>_log and <monitor>_reference of that database",
    )
    p.add_argument("--only", choices=["fraud", "llm"], help="simulate one monitor's data only")
    p.add_argument("--rows-per-week", type=int, default=20_000, help="fraud transactions per week (default 20000)")
    p.add_argument("--weeks", type=int, default=13, help="weeks of fraud traffic (default 13)")
    p.add_argument("--drift-week", type=int, default=9, help="first drifted week, 1-based (default 9)")
    p.add_argument(
        "--story",
        default="card_testing",
        choices=["card_testing", "covariate_harmful", "covariate_benign", "concept"],
        help="what the fraud drift does (default card_testing; see the README's performance estimation section)",
    )
    p.add_argument("--llm-days", type=int, default=16, help="days of LLM traffic (default 16)")
    p.add_argument("--seed", type=int, default=None, help="override the simulators' seeds")
    p.set_defaults(handler=run_simulate)


def run_simulate(args: argparse.Namespace) -> int:
    from drift_assets.cli.demo import simulate_all
    from drift_assets.cli.sql_demo import check_connection, is_database_target, load_demo_tables

    database = args.target if is_database_target(args.target) else None
    if database:
        check_connection(database)
    simulated = simulate_all(
        target=None if database else args.target,
        only=args.only,
        rows_per_week=args.rows_per_week,
        weeks=args.weeks,
        drift_week=args.drift_week,
        llm_days=args.llm_days,
        seed=args.seed,
        echo=print,
        story=args.story,
    )
    if database:
        from drift_assets.cli.demo import _data_root

        load_demo_tables(database, _data_root(None), list(simulated), echo=print)
    return 0


@command
def _cluster(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "cluster",
        help="run Postgres, Redis, Dask, the Dagster webserver/daemon and Celery workers on 127.0.0.1",
        description="Start the distributed stack on this machine (deploy/dagster/dagster.postgres-celery.yaml): "
        "PostgreSQL initialised in DIR, Redis, a Dask scheduler and workers, the Dagster webserver and daemon "
        "and Celery workers, all on 127.0.0.1 and free ports; print the addresses and write DIR/env.sh; run "
        "until Ctrl-C or SIGTERM, then stop every process by its id. Needs the 'cluster' extra "
        "(dagster-postgres, dagster-celery[redis]), PostgreSQL 15 binaries and redis-server.",
    )
    p.add_argument("--dir", default=".cluster", help="state directory (Postgres data, logs, env.sh; default .cluster)")
    p.add_argument("--dask-workers", type=int, default=2, help="Dask worker processes to start (default 2)")
    p.add_argument("--celery-workers", type=int, default=2, help="Celery worker processes to start (default 2)")
    p.set_defaults(handler=run_cluster)


def run_cluster(args: argparse.Namespace) -> int:
    from drift_assets.cli.cluster import run_cluster as run

    return run(args)


@command
def _demo(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="simulate data and run the whole monitoring loop on the local Dagster instance",
        description="Simulate the demo data (if absent), materialise every monitor's reference assets and "
        "windows through Dagster on the instance in $DAGSTER_HOME, then print what was found.",
    )
    p.add_argument(
        "--rows-per-week", type=int, default=20_000, help="fraud transactions per simulated week (default 20000)"
    )
    p.add_argument("--fresh", action="store_true", help="re-simulate data and forget earlier results")
    p.add_argument("--no-html", action="store_true", help="skip the Evidently HTML reports (faster)")
    p.add_argument(
        "--one-at-a-time",
        action="store_true",
        help="run the monitors in sequence (default: the first here, the others in a second process alongside)",
    )
    p.add_argument(
        "--hour-workers",
        type=_positive_int,
        default=None,
        help="processes running the hourly windows at once (default $DRIFT_ASSETS_DEMO_HOUR_WORKERS, else 2 "
        "on a multi-core machine, 1 with --one-at-a-time)",
    )
    p.add_argument(
        "--story",
        default="card_testing",
        choices=["card_testing", "covariate_harmful", "covariate_benign", "concept"],
        help="what the fraud drift does (default card_testing; covariate_harmful: the estimated AUC drops "
        "before any label arrives); data simulated with another story are re-simulated",
    )
    p.set_defaults(handler=run_demo)


def run_demo(args: argparse.Namespace) -> int:
    from drift_assets.cli.demo import run_demo as demo

    return demo(
        rows_per_week=args.rows_per_week,
        fresh=args.fresh,
        html=not args.no_html,
        story=args.story,
        one_at_a_time=args.one_at_a_time,
        hour_workers=args.hour_workers,
    )


def _results_store(reports_root: str | None):
    from drift_assets.monitoring.results_store import ResultsStore

    if reports_root:
        return ResultsStore(reports_root)
    from drift_assets.orchestration.environment import resources_for_environment

    root = resources_for_environment()["storage"].storage().reports
    return ResultsStore(root.path, filesystem=root.filesystem)


@command
def _serve_metrics(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve-metrics",
        help="serve /metrics for Prometheus from the results store",
        description="Serve Prometheus metrics (ml_feature_psi, ml_drift_detected, ...) for the latest evaluated "
        "window of every monitor, read from the results store on each scrape.",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=port_number, default=8000, help="TCP port (default 8000; 0 picks a free one)")
    p.add_argument("--reports-root", help="results store root (default: the configured reports root)")
    p.set_defaults(handler=_run_serve)


def _run_serve(args: argparse.Namespace) -> int:
    from drift_assets.alerting.exporter import serve_metrics_forever
    from drift_assets.stats.errors import DriftInputError

    store = _results_store(args.reports_root)
    try:
        return serve_metrics_forever(store, args.host, args.port)
    except (OSError, OverflowError) as exc:  # busy port, unknown host, address not on this machine
        reason = getattr(exc, "strerror", None) or str(exc)
        raise DriftInputError(f"serve-metrics: cannot listen on {args.host}:{args.port}: {reason}") from exc


@command
def _export_history(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export-history",
        help="write every window's metrics as OpenMetrics with the window's own timestamps",
        description="Write the results store's windows as an OpenMetrics file (the exporter's metric names and "
        "labels, one sample per window at its window_end) for `promtool tsdb create-blocks-from openmetrics FILE "
        "DIR`, so Prometheus and Grafana see every window, not only the latest.",
    )
    p.add_argument("--out", required=True, help="the OpenMetrics file to write (ends with # EOF)")
    p.add_argument("--reports-root", help="results store root (default: the configured reports root)")
    p.set_defaults(handler=_run_export_history)


def _run_export_history(args: argparse.Namespace) -> int:
    from drift_assets.alerting.history import collect_history, windows_by_model

    history = collect_history(_results_store(args.reports_root))
    with open(args.out, "w", encoding="utf-8") as out:
        out.write(history.openmetrics())
    for error in history.errors:
        print(f"export-history: skipped {error}", file=sys.stderr)
    windows = ", ".join(f"{model}: {n}" for model, n in windows_by_model(history).items()) or "none"
    print(f"wrote {history.sample_count} samples to {args.out} (windows per monitor: {windows})")
    return 0


@command
def _push_metrics(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "push-metrics",
        help="push the same metrics once to a Prometheus Pushgateway",
        description="For short-lived setups without a long-running exporter: push the current metrics once "
        "(e.g. after each materialisation) to a Pushgateway.",
    )
    p.add_argument("gateway", help="Pushgateway address, e.g. 127.0.0.1:9091")
    p.add_argument("--job", default="drift_assets", help="Pushgateway job label (default drift_assets)")
    p.add_argument("--reports-root", help="results store root (default: the configured reports root)")
    p.set_defaults(handler=_run_push)


def _run_push(args: argparse.Namespace) -> int:
    from drift_assets.alerting.exporter import push_once
    from drift_assets.stats.errors import DriftInputError

    store = _results_store(args.reports_root)
    try:
        push_once(store, args.gateway, job=args.job)
    except OSError as exc:  # urllib's URLError: refused, unknown host, timeout; HTTPError: rejected
        reason = getattr(exc, "reason", None) or exc
        raise DriftInputError(f"push-metrics: cannot push to the Pushgateway at {args.gateway}: {reason}") from exc
    print(f"pushed metrics to {args.gateway} (job={args.job})")
    return 0


@command
def _models(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "models",
        help="list a monitor's model versions, or promote one (rollback / roll forward)",
        description="The model registry of each monitor: committed versions with their retraining "
        "decision, AUCs and trigger; `promote` moves the champion pointer to a committed version.",
    )
    msub = p.add_subparsers(dest="models_command", required=True, metavar="ACTION")
    ls = msub.add_parser("list", help="versions with status, AUCs and trigger; * marks the champion")
    ls.add_argument("--monitor", help="only this monitor (default: every monitor with a registry)")
    ls.add_argument(
        "--monitors-file", default=None, help="monitors file (default: $DRIFT_ASSETS_MONITORS or ./monitors.yaml)"
    )
    ls.set_defaults(handler=run_models_list)
    pr = msub.add_parser("promote", help="make a committed version the champion (atomic pointer rewrite)")
    pr.add_argument("--monitor", required=True, help="the monitor whose registry to change")
    pr.add_argument("--version", required=True, help="version number or name (2 or v0002)")
    pr.add_argument("--reason", default=None, help="recorded in champion.json")
    pr.add_argument(
        "--monitors-file", default=None, help="monitors file (default: $DRIFT_ASSETS_MONITORS or ./monitors.yaml)"
    )
    pr.set_defaults(handler=run_models_promote)


def _registries(monitors_file: str | None, only: str | None):
    from drift_assets.monitoring.config import load_monitors
    from drift_assets.monitoring.registry import ModelRegistry
    from drift_assets.orchestration.environment import resources_for_environment

    monitors = load_monitors(monitors_file)
    chosen = [monitors.get(only)] if only else [m for m in monitors if m.model_registry]
    data = resources_for_environment()["storage"].storage().data
    out = []
    for monitor in chosen:
        if not monitor.model_registry:
            raise ValueError(f"monitor {monitor.name!r} has no model registry (model.registry in the monitors file)")
        out.append((monitor, ModelRegistry(data, monitor.model_registry)))
    return out


def auc_data(metrics: dict, meta: dict) -> str:
    """Which data a version's AUC was measured on (the column 'AUC on' of ``models list``)."""
    if metrics.get("challenger_auc") is not None:
        rows = metrics.get("holdout_rows")
        return f"gate holdout ({rows:,} labelled rows)" if isinstance(rows, int) else "gate holdout"
    if meta.get("auc_reference") is not None:
        return "its reference sample (out-of-sample)"
    return "-"


def run_models_list(args: argparse.Namespace) -> int:
    from drift_assets.monitoring.registry import version_name

    def auc(value) -> str:
        return "-" if value is None else f"{value:.4f}"

    for monitor, registry in _registries(args.monitors_file, args.monitor):
        pointer = registry.champion_pointer() or {}
        versions, corrupt = registry.scan()
        print(
            f"{monitor.name}: {registry.root.uri_of(registry.base)} ({len(versions)} committed version(s), "
            f"champion {pointer.get('name', '(none)')})"
            + (f", {len(corrupt)} corrupt version(s) skipped" if corrupt else "")
        )
        # AUC: the version's own held-out AUC (a challenger's on the gate's holdout; the initial
        # model's on its reference). vs parent: the parent champion's AUC on the same holdout.
        print(
            "  AUC = ROC AUC of the version's model on the data in 'AUC on'; 'parent AUC' = its parent "
            "champion on that same holdout (the promotion gate compares these two). AUCs on different data "
            "are not comparable."
        )
        print(
            f"  {'':1} {'version':<8} {'decision':<9} {'created':<20} {'parent':<7} {'AUC':>7} {'parent AUC':>10} "
            f" {'AUC on':<34} trigger"
        )
        for v in versions:
            meta = v.metadata
            metrics = meta.get("metrics") or {}
            trigger = meta.get("trigger") or {}
            parent = meta.get("parent")
            star = "*" if v.number == pointer.get("version") else ""
            trig = f"{trigger.get('partition')} {trigger.get('check')}" if trigger else "-"
            challenger = metrics.get("challenger_auc", meta.get("auc_reference"))
            print(
                f"  {star:1} {v.name:<8} {meta.get('status', '-'):<9} {str(meta.get('created_at', '-'))[:19]:<20} "
                f"{version_name(parent) if isinstance(parent, int) else '-':<7} {auc(challenger):>7} "
                f"{auc(metrics.get('champion_auc')):>10}  {auc_data(metrics, meta):<34} {trig}"
            )
            if meta.get("reason"):
                print(f"    {meta['reason']}")
        for c in corrupt:  # listed, never served; the other versions work as usual
            star = "*" if c.number == pointer.get("version") else ""
            print(f"  {star:1} {c.name:<8} {'CORRUPT':<9} {c.reason}")
    return 0


def run_models_promote(args: argparse.Namespace) -> int:
    import sys

    from drift_assets.monitoring.registry import RegistryError, version_name

    [(monitor, registry)] = _registries(args.monitors_file, args.monitor)
    raw = str(args.version).lstrip("v")
    if not raw.isdigit():
        raise ValueError(f"--version: expected a number or vNNNN, got {args.version!r}")
    number = int(raw)
    before = registry.champion_pointer() or {}
    if before.get("version") == number:
        print(f"{monitor.name}: {version_name(number)} is already the champion")
        return 0
    try:
        pointer = registry.promote(
            number,
            reason=args.reason
            or f"manual promotion via `drift-assets models promote` (was {before.get('name', '(none)')})",
        )
    except RegistryError as exc:
        print(
            f"drift-assets: error: {exc} (only committed, complete versions whose model matches its recorded "
            "sha256 can be promoted)",
            file=sys.stderr,
        )
        return 2
    print(f"{monitor.name}: champion {before.get('name', '(none)')} -> {pointer['name']}")
    print(
        "The retraining sensor re-materialises the reference assets on its next tick "
        f"(or run the `{monitor.name}_reference_job`)."
    )
    return 0


@command
def _backfill(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "backfill",
        help="evaluate a range of past windows of one monitor through Dagster",
        description="Run the monitor's window job for every partition from FROM to TO (inclusive) on the "
        "Dagster instance in $DAGSTER_HOME, one run per window: a failing window does not stop the others. "
        "The runs are a Dagster backfill of the window job (and one of the drift_alert verdicts), tied to the "
        "code location of workspace.yaml, executed in this process: the UI's Backfills, Jobs and Overview show "
        "them, no daemon needed. The same backfill can be launched from the UI (asset -> Materialize -> partitions).",
    )
    p.add_argument("--monitor", required=True, help="the monitor whose windows to evaluate (see monitors.yaml)")
    p.add_argument(
        "--from", dest="first", required=True, help="first partition key, e.g. 2026-08-03 or 2026-10-13-14:00"
    )
    p.add_argument("--to", dest="last", required=True, help="last partition key (inclusive)")
    p.set_defaults(handler=_run_backfill)


def _run_backfill(args: argparse.Namespace) -> int:
    from drift_assets.cli.demo import QUIET, backfill_line, local_instance, monitor_runs, run_alert
    from drift_assets.cli.progress import Progress, duration
    from drift_assets.definitions import build_definitions

    defs = build_definitions()
    keys = defs.resolve_job_def(f"{args.monitor}_window_job").partitions_def.get_partition_keys()
    for key in (args.first, args.last):
        if key not in keys:
            raise ValueError(f"{key!r} is not a partition of monitor {args.monitor!r} ({keys[0]} .. {keys[-1]})")
    selected = keys[keys.index(args.first) : keys.index(args.last) + 1]
    failed = 0
    progress = Progress("backfill", len(selected), every_seconds=0)  # a line per window: done/total, ETA
    with local_instance() as dagster_instance:
        runs = monitor_runs(defs, dagster_instance, args.monitor, launched_by="drift-assets backfill")
        title = f"drift-assets backfill: {args.monitor} {args.first} .. {args.last}"
        with runs.backfill(selected, title=title) as batch:
            print(backfill_line(batch))
            for key in selected:
                result = batch.run("window", key, run_config=QUIET)
                checks = [e for e in result.get_asset_check_evaluations() if not e.passed]
                status = "ok" if result.success else "FAILED"
                failed += not result.success
                if result.success and not run_alert(defs, args.monitor, key, dagster_instance, batch):
                    status += " (drift_alert failed: an ERROR check failed)"
                print(
                    f"{key}: run {result.run_id[:8]} {status}; failed checks: "
                    + (", ".join(f"{e.check_name}/{e.severity.value}" for e in checks) or "none")
                )
                progress.step()
    print(f"{len(selected)} window(s), {failed} failed run(s) in {duration(progress.elapsed)}")
    return 1 if failed else 0


def _positive_int(text: str) -> int:
    """argparse type: an integer >= 1 (argparse turns the ValueError into one usage line, exit 2)."""
    value = int(text)
    if value < 1:
        raise ValueError(text)
    return value
