"""Subcommands beyond ``compare``: each is registered by a small function next to its options."""

from __future__ import annotations

import argparse
import datetime as dt

REGISTRY: list = []


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
    p.add_argument("--target", default=None, help="data root to write into (default: the configured data root)")
    p.add_argument("--only", choices=["fraud", "llm"], help="simulate one monitor's data only")
    p.add_argument("--rows-per-week", type=int, default=20_000, help="fraud transactions per week (default 20000)")
    p.add_argument("--weeks", type=int, default=13, help="weeks of fraud traffic (default 13)")
    p.add_argument("--drift-week", type=int, default=9, help="first drifted week, 1-based (default 9)")
    p.add_argument("--llm-days", type=int, default=16, help="days of LLM traffic (default 16)")
    p.add_argument("--seed", type=int, default=None, help="override the simulators' seeds")
    p.set_defaults(handler=run_simulate)


def run_simulate(args: argparse.Namespace) -> int:
    from drift_assets.demo import simulate_all

    simulate_all(
        target=args.target, only=args.only, rows_per_week=args.rows_per_week, weeks=args.weeks,
        drift_week=args.drift_week, llm_days=args.llm_days, seed=args.seed, echo=print,
    )
    return 0


@command
def _demo(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="simulate data and run the whole monitoring loop on the local Dagster instance",
        description="Simulate the demo data (if absent), materialise every monitor's reference assets and "
        "windows through Dagster on the instance in $DAGSTER_HOME, then print what was found.",
    )
    p.add_argument("--rows-per-week", type=int, default=20_000)
    p.add_argument("--fresh", action="store_true", help="re-simulate data and forget earlier results")
    p.add_argument("--no-html", action="store_true", help="skip the Evidently HTML reports (faster)")
    p.set_defaults(handler=run_demo)


def run_demo(args: argparse.Namespace) -> int:
    from drift_assets.demo import run_demo as demo

    return demo(rows_per_week=args.rows_per_week, fresh=args.fresh, html=not args.no_html)


def _parse_date(value: str) -> dt.date:
    return dt.date.fromisoformat(value)


def _results_store(reports_root: str | None):
    from drift_assets.metrics.results_store import ResultsStore

    if reports_root:
        return ResultsStore(reports_root)
    from drift_assets.resources import resources_for_environment

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
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--reports-root", help="results store root (default: the configured reports root)")
    p.set_defaults(handler=_run_serve)


def _run_serve(args: argparse.Namespace) -> int:
    from drift_assets.metrics.exporter import serve_metrics_forever

    return serve_metrics_forever(_results_store(args.reports_root), args.host, args.port)


@command
def _push_metrics(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "push-metrics",
        help="push the same metrics once to a Prometheus Pushgateway",
        description="For short-lived setups without a long-running exporter: push the current metrics once "
        "(e.g. after each materialisation) to a Pushgateway.",
    )
    p.add_argument("gateway", help="Pushgateway address, e.g. 127.0.0.1:9091")
    p.add_argument("--job", default="drift_assets")
    p.add_argument("--reports-root", help="results store root (default: the configured reports root)")
    p.set_defaults(handler=_run_push)


def _run_push(args: argparse.Namespace) -> int:
    from drift_assets.metrics.exporter import push_once

    push_once(_results_store(args.reports_root), args.gateway, job=args.job)
    print(f"pushed metrics to {args.gateway} (job={args.job})")
    return 0
