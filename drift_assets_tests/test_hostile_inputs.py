"""Hostile input to the command line, as a user would give it (issue 12, items 3, 4 and 8).

The contract: exit 0 = no ERROR check failed, 1 = one did, 2 = anything else went wrong, said in
ONE line on stderr naming the file (and column), never a traceback. Valid input that used to be
refused (a reference folder mixing int64/float64 or dictionary/plain strings, a CSV column empty for
its first 300k rows, ``.csv.gz``/``.csv.zst``, ``;``-separated CSV) gives the same result as the
plain equivalent. Most cases run ``main()`` in-process (fast); the ones about the process itself
(stdout on /dev/full, permissions, tracebacks) run the installed command.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest

from drift_assets.cli.app import TRACEBACK_ENV, main

CLI = os.path.join(os.path.dirname(sys.executable), "drift-assets")
ROLES = ["--numerical", "amount,count", "--categorical", "segment"]


def cli(capsys, *args) -> tuple[int, str, str]:
    """``drift-assets ARGS`` in this process: (exit code, stdout, stderr)."""
    try:
        code = main([str(a) for a in args])
    except SystemExit as exc:  # argparse usage errors
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


def run(*args, prefix=(), env=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*prefix, CLI, *map(str, args)], capture_output=True, text=True, timeout=300, env=env, stdin=subprocess.DEVNULL
    )


def assert_one_line_error(code: int, err: str, *fragments: str) -> None:
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err and TRACEBACK_ENV not in err, err  # handled, not the catch-all
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def frame(n: int, seed: int, shift: float = 0.0) -> pa.Table:
    rng = np.random.default_rng(seed)
    return pa.table(
        {
            "amount": rng.lognormal(3, 1, n) * (1 + shift),
            "count": rng.poisson(2, n).astype(np.int64),
            "segment": rng.choice(["a", "b", "c"], n),
            "ts": pa.array(np.arange(n).astype("datetime64[s]")),
        }
    )


@pytest.fixture
def d(tmp_path) -> Path:
    pq.write_table(frame(3000, 1), tmp_path / "ref.parquet")
    pq.write_table(frame(1000, 2), tmp_path / "cur.parquet")
    return tmp_path


def _json(out: str) -> dict:
    def refuse(constant):
        raise AssertionError(f"invalid JSON constant {constant}")

    return json.loads(out, parse_constant=refuse)


# --------------------------------------------------------------------------- exit code 2, one line
def _header_only(d: Path) -> list:
    (d / "header.csv").write_text("amount,count,segment\n")
    return [d / "header.csv", d / "cur.parquet", *ROLES]


def _header_only_current(d: Path) -> list:
    (d / "header.csv").write_text("amount,count,segment\n")
    return [d / "ref.parquet", d / "header.csv", *ROLES]


def _empty_csv(d: Path) -> list:
    (d / "empty.csv").write_text("")
    return [d / "empty.csv", d / "cur.parquet"]


def _duplicate_header(d: Path) -> list:
    (d / "dup.csv").write_text("amount,count,amount\n1,2,3\n")
    return [d / "dup.csv", d / "cur.parquet"]


def _semicolon_read_as_comma(d: Path) -> list:
    pa_csv.write_csv(frame(500, 1).drop_columns(["ts"]), d / "c.csv", pa_csv.WriteOptions(delimiter=";"))
    return [d / "c.csv", d / "c.csv", "--csv-delimiter", ","]


def _json_missing_folder(d: Path) -> list:
    return [d / "ref.parquet", d / "cur.parquet", *ROLES, "--json", d / "no" / "such" / "out.json"]


def _html_missing_folder(d: Path) -> list:
    return [d / "ref.parquet", d / "cur.parquet", *ROLES, "--html", d / "no" / "such" / "r.html"]


def _json_dev_full(d: Path) -> list:
    return [d / "ref.parquet", d / "cur.parquet", *ROLES, "--json", "/dev/full"]


def _json_is_directory(d: Path) -> list:
    return [d / "ref.parquet", d / "cur.parquet", *ROLES, "--json", d]


def _both_kinds(d: Path) -> list:
    return [d / "ref.parquet", d / "cur.parquet", "--numerical", "amount,segment", "--categorical", "segment"]


def _timestamp_as_numerical(d: Path) -> list:
    return [d / "ref.parquet", d / "cur.parquet", "--numerical", "amount,ts"]


def _mixed_current_folder(d: Path) -> list:
    (d / "mixed").mkdir()
    pq.write_table(frame(500, 3).drop_columns(["ts"]), d / "mixed" / "part-0.parquet")
    bad = frame(500, 4).drop_columns(["ts"])
    bad = bad.set_column(0, "amount", pa.array([f"x{i}" for i in range(500)]))
    pq.write_table(bad, d / "mixed" / "part-1.parquet")
    return [d / "ref.parquet", d / "mixed", *ROLES]


def _mixed_reference_folder(d: Path) -> list:
    args = _mixed_current_folder(d)
    return [args[1], d / "cur.parquet", *ROLES]


def _one_bin(d: Path) -> list:
    return [d / "ref.parquet", d / "cur.parquet", *ROLES, "--bins", "1"]


def _bad_delimiter(d: Path) -> list:
    return [d / "ref.parquet", d / "cur.parquet", "--csv-delimiter", ";;"]


def _unknown_option(d: Path) -> list:
    return [d / "ref.parquet", d / "cur.parquet", "--colour", "blue"]


def _corrupt_csv_gz(d: Path) -> list:
    (d / "broken.csv.gz").write_bytes(b"\x1f\x8b\x08\x00 definitely not gzip")
    return [d / "broken.csv.gz", d / "cur.parquet"]


def _csv_text_in_declared_numerical(d: Path) -> list:
    (d / "t.csv").write_text("amount,count,segment\n1.5,2,a\nabc,3,b\n")
    return [d / "ref.parquet", d / "t.csv", *ROLES]


COMPARE_CASES = {
    "header-only CSV reference": (_header_only, ["header.csv", "no rows"]),
    "header-only CSV current": (_header_only_current, ["header.csv", "no rows"]),
    "empty CSV": (_empty_csv, ["empty.csv", "empty CSV file"]),
    "duplicate CSV header": (_duplicate_header, ["dup.csv", "'amount'", "twice"]),
    "';' CSV read with ','": (_semicolon_read_as_comma, ["c.csv", "--csv-delimiter"]),
    "--json into a missing folder": (_json_missing_folder, ["--json", "does not exist", "not created"]),
    "--html into a missing folder": (_html_missing_folder, ["--html", "does not exist", "not created"]),
    "--json /dev/full": (_json_dev_full, ["--json /dev/full", "No space left"]),
    "--json names a directory": (_json_is_directory, ["--json", "is a directory"]),
    "column both numerical and categorical": (_both_kinds, ["'segment'", "--numerical and --categorical"]),
    "timestamp named numerical": (_timestamp_as_numerical, ["ref.parquet", "'ts'", "timestamp"]),
    "mixed schemas in the current folder": (_mixed_current_folder, ["part-1.parquet", "'amount'", "part-0.parquet"]),
    "mixed schemas in the reference folder": (_mixed_reference_folder, ["part-1.parquet", "'amount'"]),
    "--bins 1": (_one_bin, ["psi_bins"]),
    "--csv-delimiter of two characters": (_bad_delimiter, ["--csv-delimiter", "one character"]),
    "unknown option": (_unknown_option, ["--colour"]),
    "corrupt .csv.gz": (_corrupt_csv_gz, ["broken.csv.gz"]),
    "text in a declared numerical CSV column": (_csv_text_in_declared_numerical, ["t.csv", "abc"]),
}


@pytest.mark.parametrize("case", list(COMPARE_CASES))
def test_compare_bad_input_is_one_line_exit_2(d, capsys, case):
    build, fragments = COMPARE_CASES[case]
    code, _, err = cli(capsys, "compare", *build(d))
    assert_one_line_error(code, err, *fragments)
    assert not (d / "no").exists()  # outputs never create folders
    assert "looks like an identifier" not in err


def test_stdout_on_dev_full_and_tracebacks_are_never_shown(d):
    with open("/dev/full", "w") as full:
        out = subprocess.run(
            [CLI, "compare", d / "ref.parquet", d / "cur.parquet", *ROLES, "--json", "-"],
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            timeout=300,
        )
    assert_one_line_error(out.returncode, out.stderr, "standard output", "No space left")
    (d / "header.csv").write_text("amount,count,segment\n")
    header_only = run("compare", d / "header.csv", d / "cur.parquet")
    assert_one_line_error(header_only.returncode, header_only.stderr, "header.csv")


def _without_dac_override() -> list[str]:
    """As root, permission bits do not apply; dropping the DAC capabilities makes them apply."""
    if os.geteuid() != 0:
        return []
    if not shutil.which("setpriv"):
        pytest.skip("running as root without setpriv (util-linux): permissions cannot be exercised")
    return ["setpriv", "--bounding-set=-dac_override,-dac_read_search"]


def test_permission_denied_folder_and_unwritable_outputs(d):
    prefix = _without_dac_override()
    denied = d / "denied"
    denied.mkdir()
    pq.write_table(frame(100, 5), denied / "part-0.parquet")
    locked = d / "locked"
    locked.mkdir()
    denied.chmod(0)
    locked.chmod(0o555)
    try:
        reading = run("compare", denied, d / "cur.parquet", prefix=prefix)
        assert_one_line_error(reading.returncode, reading.stderr, "denied", "ermission denied")
        html = run("compare", d / "ref.parquet", d / "cur.parquet", *ROLES, "--html", locked / "r.html", prefix=prefix)
        assert_one_line_error(html.returncode, html.stderr, "--html", "not writable")
        js = run("compare", d / "ref.parquet", d / "cur.parquet", *ROLES, "--json", denied / "x.json", prefix=prefix)
        assert_one_line_error(js.returncode, js.stderr, "--json", "denied")
    finally:
        denied.chmod(0o755)
        locked.chmod(0o755)
    assert not (locked / "r.html").exists()


# --------------------------------------------------------------------------- valid JSON
def test_values_near_the_float_limit_give_valid_json_with_the_reason(tmp_path, capsys):
    n = 400
    big = pa.table({"amount": np.tile([1e308, -1e308, 1.7e308, 5.0], n // 4), "segment": ["a", "b"] * (n // 2)})
    pq.write_table(big, tmp_path / "big.parquet")
    code, out, err = cli(
        capsys, "compare", tmp_path / "big.parquet", tmp_path / "big.parquet", "--numerical", "amount", "--json", "-"
    )
    assert code in (0, 1) and err == "", err  # numpy's overflow warnings do not leak to stderr
    doc = _json(out)  # strict: NaN/Infinity would be refused
    assert doc["non_finite"]["values"], doc.get("non_finite")
    for where, reason in doc["non_finite"]["values"].items():
        assert reason in ("nan", "+inf", "-inf")
        value = doc
        for part in where.replace("[", ".[").split("."):
            value = value[int(part[1:-1])] if part.startswith("[") else value[part]
        assert value is None, where
    code, _, _ = cli(
        capsys, "compare", tmp_path / "big.parquet", tmp_path / "big.parquet", "--json", tmp_path / "o.json"
    )
    _json((tmp_path / "o.json").read_text())


# --------------------------------------------------------------------------- accept what is valid
def _result(capsys, ref, cur, *extra) -> dict:
    code, out, err = cli(capsys, "compare", ref, cur, *ROLES, *extra, "--json", "-")
    assert code in (0, 1), err
    return _json(out)


def _same_numbers(a: dict, b: dict) -> None:
    assert a["reference_rows"] == b["reference_rows"] and a["current_rows"] == b["current_rows"]
    for name in ("amount", "count", "segment"):
        for key in ("psi", "ks_statistic", "chi2_pvalue", "wasserstein_normed", "missing_rate"):
            x, y = a["columns"][name][key], b["columns"][name][key]
            assert (x is None and y is None) or x == pytest.approx(y, rel=1e-9, abs=1e-12), (name, key, x, y)


def test_reference_folder_files_are_unified_like_current_ones(d, capsys):
    ref = frame(3000, 1).drop_columns(["ts"])
    folder = d / "refdir"
    folder.mkdir()
    first, second = ref.slice(0, 1000), ref.slice(1000)
    # part 0: count as float64, segment dictionary-encoded; part 1: count int64, plain strings,
    # and an extra nullable column that part 0 lacks.
    first = first.set_column(1, "count", pa.compute.cast(first.column("count"), pa.float64()))
    first = first.set_column(2, "segment", first.column("segment").dictionary_encode())
    second = second.append_column("note", pa.nulls(second.num_rows, pa.string()))
    pq.write_table(first, folder / "part-0.parquet")
    pq.write_table(second, folder / "part-1.parquet")
    pq.write_table(ref, d / "ref_one.parquet")
    _same_numbers(_result(capsys, folder, d / "cur.parquet"), _result(capsys, d / "ref_one.parquet", d / "cur.parquet"))
    # the same folder as the current side, and with role inference (no --numerical)
    code, out, err = cli(capsys, "compare", d / "ref_one.parquet", folder, "--json", "-")
    assert code in (0, 1), err
    assert _json(out)["current_rows"] == 3000


def test_csv_whole_file_inference_compression_and_separator(d, capsys):
    base = frame(1000, 2).drop_columns(["ts"])
    pa_csv.write_csv(base, d / "cur.csv")
    plain = _result(capsys, d / "ref.parquet", d / "cur.csv")
    _same_numbers(plain, _result(capsys, d / "ref.parquet", d / "cur.parquet"))
    text = (d / "cur.csv").read_bytes()
    with gzip.open(d / "cur.csv.gz", "wb") as fh:
        fh.write(text)
    pa_csv.write_csv(base, d / "semi.csv", pa_csv.WriteOptions(delimiter=";"))
    pa_csv.write_csv(base, d / "tab.tsv.csv", pa_csv.WriteOptions(delimiter="\t"))
    import pyarrow as _pa

    with _pa.CompressedOutputStream(str(d / "cur.csv.zst"), "zstd") as out:
        out.write(text)
    for variant in ("cur.csv.gz", "cur.csv.zst", "semi.csv", "tab.tsv.csv"):
        _same_numbers(plain, _result(capsys, d / "ref.parquet", d / variant))
    _same_numbers(plain, _result(capsys, d / "ref.parquet", d / "semi.csv", "--csv-delimiter", ";"))
    # a folder of compressed CSVs is a table too
    (d / "csvdir").mkdir()
    shutil.copy(d / "cur.csv.gz", d / "csvdir" / "a.csv.gz")
    assert _result(capsys, d / "ref.parquet", d / "csvdir")["current_rows"] == 1000


def test_csv_column_empty_for_its_first_rows_is_read(tmp_path, capsys):
    """pyarrow types a CSV column from its first block; this one is empty for 300k rows."""
    n = 300_000
    rng = np.random.default_rng(7)
    late = np.full(n + 2000, "", dtype=object)
    late[n:] = [f"{v:.4f}" for v in rng.normal(size=2000)]
    lines = ["amount,late"] + [f"{a:.3f},{b}" for a, b in zip(rng.normal(size=n + 2000), late, strict=True)]
    (tmp_path / "late.csv").write_text("\n".join(lines) + "\n")
    code, out, err = cli(
        capsys, "compare", tmp_path / "late.csv", tmp_path / "late.csv", "--numerical", "amount,late", "--json", "-"
    )
    assert code == 0, err
    doc = _json(out)
    assert doc["reference_rows"] == n + 2000
    assert doc["columns"]["late"]["missing_rate"] == pytest.approx(n / (n + 2000))
    # and inferred (no --numerical): the late column is numerical, not null
    code, out, err = cli(capsys, "compare", tmp_path / "late.csv", tmp_path / "late.csv", "--json", "-")
    assert code == 0, err
    assert _json(out)["columns"]["late"]["kind"] == "numerical"


# --------------------------------------------------------------------------- serve-metrics
def test_serve_metrics_on_a_busy_or_invalid_port_or_host(tmp_path, capsys):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code, _, err = cli(capsys, "serve-metrics", "--port", port, "--reports-root", tmp_path)
        assert_one_line_error(code, err, f"127.0.0.1:{port}", "in use")
    for args, fragment in (
        (["--port", "70000"], "0-65535"),
        (["--port", "http"], "port number"),
        (["--port", "-1"], "0-65535"),
        (["--host", "999.1.1.1", "--port", "0"], "999.1.1.1"),
        (["--host", "192.0.2.1", "--port", "0"], "192.0.2.1"),  # TEST-NET: not an address of this machine
    ):
        code, _, err = cli(capsys, "serve-metrics", *args, "--reports-root", tmp_path)
        assert_one_line_error(code, err, fragment)


def test_push_metrics_to_an_unreachable_gateway(tmp_path, capsys):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code, _, err = cli(capsys, "push-metrics", f"127.0.0.1:{port}", "--reports-root", tmp_path)
    assert_one_line_error(code, err, "Pushgateway", f"127.0.0.1:{port}")


# --------------------------------------------------------------------------- unreachable S3
@pytest.mark.slow
def test_commands_against_a_stopped_s3_endpoint_fail_in_one_line(tmp_path):
    """moto's S3 server on loopback: `models list` works against it; once it is stopped, `models
    list`, `simulate`, `push-metrics` and `compare` end with exit 2 and one line naming the bucket
    (never the secret), in bounded time."""
    import logging
    import time

    import boto3
    from moto.server import ThreadedMotoServer
    from servers import free_port

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    port, bucket, secret = free_port(), "hostile-inputs", "dummy-secret-never-shown"
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": "AKIATESTDUMMYKEYID00",
        "AWS_SECRET_ACCESS_KEY": secret,
        "AWS_REGION": "eu-west-1",
        "AWS_DEFAULT_REGION": "eu-west-1",
        "S3_ENDPOINT_URL": endpoint,
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_EC2_METADATA_DISABLED": "true",
        "DRIFT_ASSETS_ENV": "s3",
        "DRIFT_ASSETS_S3_BUCKET": bucket,
        "DRIFT_ASSETS_S3_PREFIX": "p",
    }
    try:
        client = boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name="eu-west-1",
            aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=secret,
        )
        client.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
        up = run("models", "list", env=env)
        assert up.returncode == 0 and "0 committed version(s)" in up.stdout, up.stderr
    finally:
        server.stop()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        gateway = f"127.0.0.1:{s.getsockname()[1]}"
    for args in (
        ["models", "list"],
        ["simulate", "--only", "fraud", "--rows-per-week", "100", "--weeks", "2", "--drift-week", "2"],
        ["push-metrics", gateway],
        ["compare", f"s3://{bucket}/p/a.parquet", f"s3://{bucket}/p/b.parquet"],
    ):
        started = time.monotonic()
        down = run(*args, env=env)
        lines = down.stderr.strip().splitlines()
        assert down.returncode == 2, (args, down.stderr)
        assert "Traceback" not in down.stderr and secret not in down.stderr, down.stderr
        assert lines and "drift-assets: error:" in lines[-1], down.stderr
        assert bucket in lines[-1] or gateway in lines[-1], lines[-1]
        # push-metrics also logs that the store is unreadable (it still pushes ml_results_store_up 0)
        assert len(lines) <= 2 if args[0] == "push-metrics" else len(lines) == 1, down.stderr
        assert time.monotonic() - started < 90, args


# --------------------------------------------------------------------------- bounded memory
def test_reference_fitted_one_column_at_a_time_equals_the_table_fit(tmp_path):
    """fit_profile over a TableSource streams one column at a time from the files (many row groups,
    two files, mixed int/float); the profile is the same, to the fingerprint, as from the table."""
    from drift_assets.stats import ColumnSpec, fit_profile
    from drift_assets.storage.tables import TableSource

    table = frame(6000, 11).drop_columns(["ts"])
    folder = tmp_path / "ref"
    folder.mkdir()
    pq.write_table(table.slice(0, 2500), folder / "a.parquet", row_group_size=700)
    second = table.slice(2500)
    pq.write_table(
        second.set_column(1, "count", pa.compute.cast(second.column("count"), pa.float64())),
        folder / "b.parquet",
        row_group_size=900,
    )
    specs = [ColumnSpec("amount", "numerical"), ColumnSpec("count", "numerical"), ColumnSpec("segment", "categorical")]
    source = TableSource.open(str(folder))
    streamed = fit_profile(source, specs)
    whole = fit_profile(table, specs)
    assert streamed.reference_rows == 6000
    assert streamed.fingerprint() == whole.fingerprint()
    assert len(source.column("amount").chunks) == 2  # read file by file, not as one table


def test_local_prometheus_is_started_without_the_lifecycle_api():
    """`--web.enable-lifecycle` lets anyone reaching the port stop Prometheus (POST /-/quit)."""
    script = (Path(__file__).resolve().parent.parent / "deploy" / "start-local.sh").read_text()
    flags = [line.strip() for line in script.splitlines() if line.strip().startswith("--")]
    assert "--web.enable-lifecycle \\" not in flags and "--config.file" in script
