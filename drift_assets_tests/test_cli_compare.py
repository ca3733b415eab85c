"""`drift-assets compare`: output contract, exit codes, and bad input as one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest

CLI = os.path.join(os.path.dirname(sys.executable), "drift-assets")


def run(*args, cwd=None):
    return subprocess.run([CLI, "compare", *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=300)


def table(n, seed, shift=0.0, new_category=False):
    rng = np.random.default_rng(seed)
    cats = ["a", "b", "c"] + (["z"] if new_category else [])
    return pa.table(
        {
            "id": [f"r{i}" for i in range(n)],
            "amount": rng.lognormal(3, 1, n) * (1 + shift),
            "count": rng.poisson(2, n),
            "segment": rng.choice(cats, n),
            "score": np.clip(rng.beta(2, 8, n) + shift / 4, 0, 1),
        }
    )


@pytest.fixture
def files(tmp_path):
    pq.write_table(table(20_000, 1), tmp_path / "ref.parquet")
    pq.write_table(table(5_000, 2), tmp_path / "same.parquet")
    pq.write_table(table(5_000, 3, shift=1.0, new_category=True), tmp_path / "drifted.parquet")
    return tmp_path


ROLE_ARGS = ["--numerical", "amount,count", "--categorical", "segment", "--prediction", "score"]


def test_json_contract_and_exit_codes(files):
    same = run(files / "ref.parquet", files / "same.parquet", *ROLE_ARGS, "--json", "-")
    assert same.returncode == 0, same.stderr
    doc = json.loads(same.stdout)
    assert doc["reference_rows"] == 20_000 and doc["current_rows"] == 5_000
    assert set(doc["columns"]) == {"amount", "count", "segment", "score"}
    col = doc["columns"]["amount"]
    for key in (
        "kind",
        "role",
        "psi",
        "ks_statistic",
        "ks_pvalue",
        "chi2_pvalue",
        "jensen_shannon",
        "wasserstein_normed",
        "missing_rate",
        "reference_missing_rate",
        "unseen_share",
        "out_of_range_share",
        "drifted",
    ):
        assert key in col
    assert col["kind"] == "numerical" and col["role"] == "feature" and col["chi2_pvalue"] is None
    assert doc["columns"]["segment"]["kind"] == "categorical" and doc["columns"]["segment"]["ks_pvalue"] is None
    assert doc["columns"]["score"]["role"] == "prediction"
    assert doc["summary"]["all_passed"] is True and doc["summary"]["drifted_columns"] == 0
    for check in doc["checks"]:
        assert {"name", "column", "passed", "severity", "value", "threshold"} <= set(check)
        assert check["severity"] in ("WARN", "ERROR")

    drifted = run(files / "ref.parquet", files / "drifted.parquet", *ROLE_ARGS, "--json", files / "out.json")
    assert drifted.returncode == 1
    doc = json.loads((files / "out.json").read_text())
    assert doc["columns"]["segment"]["unseen_share"] > 0.2
    failed = {(c["name"], c["column"]) for c in doc["checks"] if not c["passed"]}
    assert ("feature_psi_below_retrain_threshold", "amount") in failed
    assert ("prediction_has_no_drift", "score") in failed
    assert "failed checks" in drifted.stdout  # readable table printed too


def test_readable_table_and_type_inference(files):
    out = run(files / "ref.parquet", files / "drifted.parquet", "--exclude", "id", "--prediction", "score")
    assert out.returncode == 1
    assert "amount" in out.stdout and "categorical" in out.stdout and "ERROR" in out.stdout


@pytest.mark.slow
def test_directory_and_csv_inputs(files, tmp_path):
    d = tmp_path / "dir"
    d.mkdir()
    t = pq.read_table(files / "same.parquet")
    pq.write_table(t.slice(0, 2500), d / "part-0.parquet")
    pq.write_table(t.slice(2500), d / "part-1.parquet")
    pa_csv.write_csv(t, tmp_path / "same.csv")
    a = json.loads(run(files / "ref.parquet", d, *ROLE_ARGS, "--json", "-").stdout)
    b = json.loads(run(files / "ref.parquet", tmp_path / "same.csv", *ROLE_ARGS, "--json", "-").stdout)
    c = json.loads(run(files / "ref.parquet", files / "same.parquet", *ROLE_ARGS, "--json", "-").stdout)
    assert a["current_rows"] == b["current_rows"] == 5_000
    assert a["columns"]["amount"]["psi"] == pytest.approx(c["columns"]["amount"]["psi"], rel=1e-9)
    assert b["columns"]["count"]["psi"] == pytest.approx(c["columns"]["count"]["psi"], rel=1e-9)


@pytest.mark.slow
def test_html_report(files):
    out = run(files / "ref.parquet", files / "drifted.parquet", *ROLE_ARGS, "--html", files / "r.html")
    assert out.returncode == 1
    assert (files / "r.html").stat().st_size > 10_000


@pytest.mark.parametrize("case", ["corrupt", "empty", "missing_column", "strings", "unknown_option", "no_file"])
def test_bad_input_exits_2_with_one_line_naming_file_and_column(files, case):
    ref = files / "ref.parquet"
    cur = files / f"{case}.parquet"
    args = ROLE_ARGS
    expect = [cur.name]
    if case == "corrupt":
        cur.write_bytes(b"PAR1 not really PAR1")
    elif case == "empty":
        pq.write_table(table(10, 4).slice(0, 0), cur)
        expect = [cur.name, "no rows"]
    elif case == "missing_column":
        pq.write_table(table(100, 4).drop_columns(["count"]), cur)
        expect = [cur.name, "count"]
    elif case == "strings":
        t = table(100, 4)
        pq.write_table(t.set_column(1, "amount", pa.array([str(v) for v in t.column("amount").to_pylist()])), cur)
        expect = [cur.name, "amount", "string"]
    elif case == "unknown_option":
        cur = files / "same.parquet"
        args = ["--numerical", "amount,nope"]
        expect = ["nope"]
    elif case == "no_file":
        expect = [cur.name]
    out = run(ref, cur, *args)
    assert out.returncode == 2, out.stdout + out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in out.stderr
    for fragment in expect:
        assert fragment in lines[0]


def test_monitor_option_takes_columns_from_monitors_file(fraud_data):
    ref = fraud_data / "fraud" / "reference" / "reference.parquet"
    week = fraud_data / "fraud" / "log" / "date=2026-08-18"
    out = run(ref, week, "--monitor", "fraud", "--json", "-")
    doc = json.loads(out.stdout)
    assert out.returncode == 1  # a drifted day
    assert doc["columns"]["fraud_score"]["role"] == "prediction"
    assert "is_fraud" not in doc["columns"] and "transaction_id" not in doc["columns"]
    assert doc["columns"]["txn_count_1h"]["drifted"] is True


def test_a_feature_entirely_missing_exits_1_naming_the_column(files):
    window = table(2_000, 4)
    window = window.set_column(1, "amount", pa.array([None] * 2_000, pa.float64()))
    pq.write_table(window, files / "null_amount.parquet")
    out = run(files / "ref.parquet", files / "null_amount.parquet", *ROLE_ARGS, "--json", "-")
    assert out.returncode == 1, out.stderr
    doc = json.loads(out.stdout)
    [error] = [c for c in doc["checks"] if not c["passed"] and c["severity"] == "ERROR"]
    assert error["name"] == "columns_not_entirely_missing" and error["column"] == "amount"
    assert error["value_kind"] == "share" and error["value"] == 1.0
    assert "'amount'" in doc["columns"]["amount"]["problem"]
