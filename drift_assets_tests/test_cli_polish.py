"""Issue 15 item 5: CLI and demo polish (help everywhere, --version, progress, role inference,
models list wording, the notifier's one log line, the demo's hourly range note)."""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import subprocess
import sys
from importlib.metadata import version

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from drift_assets.cli.app import build_parser, main
from drift_assets.cli.progress import Phases, Progress, duration

CLI = os.path.join(os.path.dirname(sys.executable), "drift-assets")


def _walk(parser: argparse.ArgumentParser, path: str):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help for a in action._choices_actions}
            for name, sub in action.choices.items():
                yield f"{path} {name}", "(the command itself)", helps.get(name)
                yield from _walk(sub, f"{path} {name}")
        elif not isinstance(action, argparse._HelpAction):
            yield path, "/".join(action.option_strings) or action.dest, action.help


def test_every_command_and_option_has_help():
    seen = list(_walk(build_parser(), "drift-assets"))
    missing = [f"{where}: {option}" for where, option, text in seen if not text or not str(text).strip()]
    assert not missing, missing
    # The walk reached the nested commands and their options (it would pass vacuously otherwise).
    where = {w for w, _, _ in seen}
    assert {"drift-assets compare", "drift-assets models promote", "drift-assets backfill"} <= where
    assert len(seen) > 60


def test_version():
    out = subprocess.run([CLI, "--version"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0
    assert out.stdout.strip() == f"drift-assets {version('drift_assets')}"


def test_progress_lines_done_total_elapsed_eta():
    now = [100.0]
    lines: list[str] = []
    progress = Progress("backfill", 4, echo=lines.append, every_seconds=0, clock=lambda: now[0])
    for _ in range(4):
        now[0] += 10.0
        progress.step()
    assert lines[0] == "backfill: 1/4 windows (25%), elapsed 10.0s, ETA 30.0s"
    assert lines[1] == "backfill: 2/4 windows (50%), elapsed 20.0s, ETA 20.0s"
    assert lines[-1] == "backfill: 4/4 windows (100%), elapsed 40.0s"  # no ETA once done
    # Throttled: a line every 15 s of 1-s steps, plus the last one.
    now[0], lines[:] = 0.0, []
    throttled = Progress("demo", 40, echo=lines.append, every_seconds=15, clock=lambda: now[0])
    for _ in range(40):
        now[0] += 1.0
        throttled.step()
    assert [line.split(":")[1].split()[0] for line in lines] == ["15/40", "30/40", "40/40"]
    assert duration(75) == "1m15s" and duration(3725) == "1h02m"


def test_phases_report_elapsed_per_phase():
    now = [0.0]
    lines: list[str] = []
    phases = Phases(echo=lines.append, clock=lambda: now[0])
    phases.start("simulate")
    now[0] = 12.0
    phases.start("fraud windows")
    now[0] = 42.5
    assert phases.summary() == "Elapsed: 42.5s in all (simulate 12.0s, fraud windows 30.5s)"
    assert lines == ["   (simulate: 12.0s)", "   (fraud windows: 30.5s)"]


def test_simulators_report_progress_to_the_last_step(tmp_path):
    from drift_assets.simulate import simulate_llm

    calls: list[tuple[int, int]] = []
    simulate_llm(
        str(tmp_path / "llm"),
        days=3,
        refusal_spike_day=2,
        version_change_day=3,
        progress=lambda d, t: calls.append((d, t)),
    )
    assert calls == [(1, 4), (2, 4), (3, 4), (4, 4)]


def _demo_like(path, n, seed, with_label=True, shift=0.0):
    rng = np.random.default_rng(seed)
    amount = rng.lognormal(3, 1, n) * (1 + shift)
    cols = {
        "transaction_id": [f"tx-{seed}-{i}" for i in range(n)],
        "timestamp": pa.array(np.arange(n, dtype="int64") * 1_000_000, type=pa.timestamp("us", tz="UTC")),
        "created_at": np.arange(n, dtype="int64"),  # epoch seconds: a time, not a feature
        "txn_amount": amount,
        "merchant_risk_score": rng.uniform(0, 1, n),
        "channel": rng.choice(["web", "pos", "app"], n),
        "fraud_score": 1 / (1 + np.exp(-(amount - 30) / 10)),
    }
    if with_label:
        cols["is_fraud"] = pa.array((rng.uniform(0, 1, n) < 0.05).astype("int8"))
    else:
        cols["model_version"] = ["v0001"] * n
    pq.write_table(pa.table(cols), path)


def test_compare_infers_roles_and_says_so_in_one_line(tmp_path, capsys):
    _demo_like(tmp_path / "ref.parquet", 3000, 1)
    _demo_like(tmp_path / "cur.parquet", 2000, 2, with_label=False, shift=0.5)
    code = main(
        ["compare", str(tmp_path / "ref.parquet"), str(tmp_path / "cur.parquet"), "--json", str(tmp_path / "r.json")]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1  # txn_amount shifted by 50%: an ERROR check fails; not 2 (bad input)
    [line] = [x for x in err if x.startswith("compare: inferred roles")]
    assert "prediction fraud_score" in line  # shares "fraud" with the target, unlike merchant_risk_score
    assert "target is_fraud (absent from CURRENT: not compared)" in line
    assert "transaction_id (id-like name)" in line and "timestamp (timestamp)" in line
    assert "created_at (timestamp-like name)" in line and "only in CURRENT, ignored: model_version" in line
    roles = {k: c["role"] for k, c in json.loads((tmp_path / "r.json").read_text())["columns"].items()}
    assert roles == {
        "txn_amount": "feature",
        "merchant_risk_score": "feature",
        "channel": "feature",
        "fraud_score": "prediction",
    }


def test_free_text_and_ambiguous_scores_are_named(tmp_path, capsys):
    rng = np.random.default_rng(3)
    n = 2500
    t = pa.table(
        {
            "prompt": [f"question {i} {rng.integers(1e9)}" for i in range(n)],
            "a_score": rng.uniform(0, 1, n),
            "b_score": rng.uniform(0, 1, n),
            "latency_ms": rng.gamma(2, 100, n),
        }
    )
    pq.write_table(t, tmp_path / "t.parquet")
    code = main(["compare", str(tmp_path / "t.parquet"), str(tmp_path / "t.parquet")])
    line = next(x for x in capsys.readouterr().err.splitlines() if x.startswith("compare: inferred roles"))
    assert code == 0
    assert "prompt (2,500 distinct values: an identifier or free text)" in line
    assert "no prediction (several score-like columns: a_score, b_score)" in line


def test_models_list_says_which_data_each_auc_is_on():
    from drift_assets.cli.commands import auc_data

    assert auc_data({"challenger_auc": 0.887, "holdout_rows": 12000}, {}) == "gate holdout (12,000 labelled rows)"
    assert auc_data({}, {"auc_reference": 0.894}) == "its reference sample (out-of-sample)"
    assert auc_data({}, {}) == "-"


def test_unconfigured_notifier_is_stopped_and_said_once(caplog, monkeypatch):
    from dagster import DefaultSensorStatus

    from drift_assets.monitoring.config import load_monitors
    from drift_assets.orchestration import notifications

    monkeypatch.setattr(notifications, "_told_unconfigured", False)
    monitors = list(load_monitors())
    with caplog.at_level(logging.WARNING, logger=notifications.__name__):
        first = notifications.notification_sensors(monitors, webhook_configured=False)[0]
        notifications.notification_sensors(monitors, webhook_configured=False)
    said = [r.getMessage() for r in caplog.records if "no webhook configured" in r.getMessage()]
    assert len(said) == 1 and "DRIFT_ASSETS_WEBHOOK_URL" in said[0]
    assert first.default_status == DefaultSensorStatus.STOPPED
    configured = notifications.notification_sensors(monitors, webhook_configured=True)[0]
    assert configured.default_status == DefaultSensorStatus.RUNNING


def test_definitions_stop_the_notifier_without_a_webhook(monkeypatch):
    from dagster import DefaultSensorStatus

    from drift_assets.definitions import build_definitions

    monkeypatch.delenv("DRIFT_ASSETS_WEBHOOK_URL", raising=False)
    assert (
        build_definitions().resolve_sensor_def("check_failure_notifier").default_status == DefaultSensorStatus.STOPPED
    )
    monkeypatch.setenv("DRIFT_ASSETS_WEBHOOK_URL", "http://127.0.0.1:9/hook")
    assert (
        build_definitions().resolve_sensor_def("check_failure_notifier").default_status == DefaultSensorStatus.RUNNING
    )


def test_demo_explains_the_hourly_partial_range():
    from types import SimpleNamespace

    from drift_assets.cli.demo import HOURLY_DEMO_DAYS, hourly_range_note

    keys = [f"2026-10-{5 + h // 24:02d}-{h % 24:02d}:00" for h in range(16 * 24)]
    note = hourly_range_note(SimpleNamespace(name="llm"), keys, keys[-HOURLY_DEMO_DAYS * 24 :])
    assert f"evaluates the last {HOURLY_DEMO_DAYS * 24}" in note and "~56% filled" in note
    assert "trailing baseline" in note
    assert f"--from {keys[0]} --to {keys[-HOURLY_DEMO_DAYS * 24 - 1]}" in note


@pytest.mark.slow
def test_compare_works_on_the_demos_own_files_without_monitor(tmp_path):
    sim = subprocess.run(
        [
            CLI,
            "simulate",
            "--target",
            str(tmp_path),
            "--only",
            "fraud",
            "--rows-per-week",
            "700",
            "--weeks",
            "2",
            "--drift-week",
            "2",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "DRIFT_ASSETS_PROGRESS_SECONDS": "0"},
    )
    assert sim.returncode == 0, sim.stderr
    assert "simulating fraud: 15/15 steps" in sim.stdout and "ETA" in sim.stdout
    out = subprocess.run(
        [CLI, "compare", "reference/reference.parquet", "log/date=2026-08-10", "--json", "-"],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path / "fraud",
    )
    assert out.returncode in (0, 1), out.stderr
    [line] = out.stderr.strip().splitlines()
    assert "prediction fraud_score" in line and "target is_fraud" in line and "transaction_id" in line
    doc = json.loads(out.stdout)
    assert doc["columns"]["fraud_score"]["role"] == "prediction" and "is_fraud" not in doc["columns"]


def test_compare_table_defines_its_columns_and_prints_numbers_one_way(tmp_path, capsys):
    """The table says what psi, p-value, effect and missing are, and every number has 3 decimals;
    a value too small for them is `<0.001` (never 3.5e-04 next to 0.000)."""
    from drift_assets.cli.app import _fmt

    assert [_fmt(v) for v in (3.5e-4, 0.0, 0.0123, 1.23456, None, -2e-5, 0.0006)] == [
        "<0.001",
        "0.000",
        "0.012",
        "1.235",
        "-",
        "-<0.001",
        "0.001",
    ]
    rng = np.random.default_rng(15)
    for name, shift in (("ref", 0.0), ("cur", 0.3)):
        n = 100_000
        pq.write_table(
            pa.table(
                {
                    "same": rng.normal(0, 1, n),  # stationary: PSI ~1e-4, shown as <0.001
                    "moved": rng.normal(shift, 1, n),
                    "kind": rng.choice(["a", "b", "c"], n),
                }
            ),
            tmp_path / f"{name}.parquet",
        )
    code = main(
        ["compare", str(tmp_path / "ref.parquet"), str(tmp_path / "cur.parquet"), "--numerical", "same,moved"]
        + ["--categorical", "kind", "--no-cache", "--no-multivariate"]
    )
    out = capsys.readouterr().out
    assert code == 1
    lines = out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("column"))
    assert header + 2 + 3 <= len(lines)
    rows = {line.split()[0]: line.split() for line in lines[header + 2 : header + 5]}
    assert set(rows) == {"same", "moved", "kind"}
    for cells in rows.values():
        psi, pvalue, effect, missing = cells[3], cells[5], cells[6], cells[7]
        for cell in (psi, pvalue, effect, missing):
            assert cell == "-" or cell == "<0.001" or re.fullmatch(r"\d+\.\d{3}", cell), cells
    assert rows["same"][3] == "<0.001" and "e-" not in out
    legend = " ".join(" ".join(lines[header + 5 :]).split()).split("failed checks")[0]
    assert "effect: Wasserstein distance / reference sd (numerical)" in legend
    assert "largest change in a category's share (categorical)" in legend
    assert "p-value: KS (numerical) or chi-square (categorical)" in legend and "missing:" in legend


def test_identifier_column_error_names_options_compare_has(tmp_path, capsys):
    """An id column given as categorical: one line naming the column and options `compare` really
    has (--exclude, --numerical, --max-categories), exit 2; --max-categories lets it through."""
    rng = np.random.default_rng(16)
    for name in ("ref", "cur"):
        n = 3_000
        table = pa.table({"user_id": [f"u{i}" for i in rng.permutation(n)], "x": rng.normal(size=n)})
        pq.write_table(table, tmp_path / f"{name}.parquet")
    args = ["compare", str(tmp_path / "ref.parquet"), str(tmp_path / "cur.parquet"), "--numerical", "x"]
    args += ["--categorical", "user_id", "--no-cache"]
    assert main(args) == 2
    captured = capsys.readouterr()
    [line] = captured.err.strip().splitlines()
    assert "ref.parquet: column 'user_id' has 3000 distinct values, more than --max-categories 1000" in line
    assert "--exclude user_id" in line and "--numerical" in line and "raise --max-categories" in line
    assert "raise max_categories" not in line
    assert any("--max-categories" in a.option_strings for a in _compare_actions())  # a real option
    assert main([*args, "--max-categories", "5000", "--json", str(tmp_path / "r.json")]) in (0, 1)
    assert json.loads((tmp_path / "r.json").read_text())["columns"]["user_id"]["kind"] == "categorical"
    assert main([*args, "--max-categories", "0"]) == 2
    assert "--max-categories 0: expected at least 1" in capsys.readouterr().err


def _compare_actions():
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices["compare"]._actions
