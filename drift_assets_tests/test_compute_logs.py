"""The compute-log manager of the project's instance (orchestration/compute_logs.py): a run's stdout
and stderr, from Python, C-level writes and child processes, land in Dagster's files at Dagster's
paths (the webserver shows them) and still reach the terminal, without the ``tail`` and watcher
processes Dagster's ``LocalComputeLogManager`` starts for every run.

Each run happens in a subprocess whose stdout and stderr are real pipes read by the test (the
mirror), with its own DAGSTER_HOME."""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from servers import free_port, stop_process, wait_until

from drift_assets.orchestration.compute_logs import tee_stream_to_file

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DAGSTER_LOCAL = (
    "compute_logs:\n  module: dagster._core.storage.local_compute_log_manager\n  class: LocalComputeLogManager\n"
    "  config:\n    base_dir: {base}\n"
)
NOOP = "compute_logs:\n  module: dagster._core.storage.noop_compute_log_manager\n  class: NoOpComputeLogManager\n"
LINES_OUT = ("py-stdout-line", "fd-stdout-line", "child-stdout-line")
LINES_ERR = ("py-stderr-line", "child-stderr-line")

RUN_SCRIPT = r'''
import json, os, subprocess, sys
from dagster import DagsterEventType, DagsterInstance, in_process_executor, job, op

LINGER = float(os.environ.get("LINGER_SECONDS", "0"))


def children():
    """The commands of this process's live children (from /proc)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = open(f"/proc/{entry}/stat").read()
                cmd = open(f"/proc/{entry}/cmdline", "rb").read().split(b"\0")
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == os.getpid():
                found.append(" ".join(c.decode() for c in cmd if c))
    return found


@op
def talk():
    print("py-stdout-line", flush=True)
    print("py-stderr-line", file=sys.stderr, flush=True)
    os.write(1, b"fd-stdout-line\n")
    subprocess.run(["sh", "-c", "echo child-stdout-line; echo child-stderr-line >&2"], check=True)
    lingering = None
    if LINGER:  # a child that outlives the run, still holding the run's stdout
        lingering = subprocess.Popen(["sh", "-c", f"sleep {LINGER}; echo late-line"]).pid
    return {"children": children(), "lingering": lingering}


@job(executor_def=in_process_executor)
def talking():
    talk()


instance = DagsterInstance.get()
result = talking.execute_in_process(instance=instance)
captured = instance.all_logs(result.run_id, of_type=DagsterEventType.LOGS_CAPTURED)
manager = instance.compute_log_manager
file_key = captured[0].dagster_event.logs_captured_data.file_key if captured else None
key = manager.build_log_key_for_run(result.run_id, file_key) if file_key else None
data = manager.get_log_data(key) if key else None
answer = {
    "manager": type(manager).__name__,
    "success": result.success,
    "log_key": key,
    "complete": manager.is_capture_complete(key) if key else None,
    "stdout_file": (data.stdout or b"").decode() if data else None,
    "stderr_file": (data.stderr or b"").decode() if data else None,
    "stdout_path": manager.get_log_metadata(key).stdout_location if key else None,
    **result.output_for_node("talk"),
}
print("RESULT " + json.dumps(answer), flush=True)
'''


def _home(tmp_path: Path, extra: str = "") -> Path:
    home = tmp_path / "home"
    home.mkdir(parents=True, exist_ok=True)
    base = (PROJECT_ROOT / "dagster.yaml").read_text()
    (home / "dagster.yaml").write_text(base + "\n" + extra.format(base=home / "storage"))
    return home


def _run(home: Path, tmp_path: Path, **env: str) -> tuple[dict, str, str]:
    script = tmp_path / "talking.py"
    script.write_text(RUN_SCRIPT)
    environ = {**os.environ, "DAGSTER_HOME": str(home), "PYTHONPATH": str(PROJECT_ROOT), **env}
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=environ, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert result, proc.stdout[-2000:]
    return json.loads(result[-1][len("RESULT ") :]), proc.stdout, proc.stderr


def _is_tail_or_watcher(command: str) -> bool:
    return command.split(" ", 1)[0].endswith("tail") or "watch_orphans" in command


def test_run_output_lands_in_dagsters_files_and_on_the_terminal_without_extra_processes(tmp_path):
    answer, stdout, stderr = _run(_home(tmp_path), tmp_path)
    assert answer["manager"] == "TeeComputeLogManager" and answer["success"]
    assert answer["complete"] is True  # Dagster's marker: the UI stops polling
    for line in LINES_OUT:
        assert line in answer["stdout_file"], line
        assert line in stdout, line  # mirrored to the real stdout
    for line in LINES_ERR:
        assert line in answer["stderr_file"], line
        assert line in stderr, line
    assert "py-stderr-line" not in answer["stdout_file"] and "py-stdout-line" not in answer["stderr_file"]
    assert "RESULT" not in answer["stdout_file"]  # printed after the run: not captured
    # Dagster's layout: <base_dir>/<run id>/compute_logs/<file key>.out
    assert Path(answer["stdout_path"]).parent.parent.parent == tmp_path / "home" / "storage"
    assert not [c for c in answer["children"] if _is_tail_or_watcher(c)], answer["children"]


def test_dagsters_own_manager_writes_the_same_lines_with_tail_processes(tmp_path):
    """The control: the processes the other test finds none of, and the same captured lines."""
    answer, _, _ = _run(_home(tmp_path, DAGSTER_LOCAL), tmp_path)
    assert answer["manager"] == "LocalComputeLogManager" and answer["complete"] is True
    assert sum(_is_tail_or_watcher(c) for c in answer["children"]) == 4, answer["children"]
    for line in LINES_OUT:
        assert line in answer["stdout_file"], line
    for line in LINES_ERR:
        assert line in answer["stderr_file"], line


def test_a_compute_logs_block_in_dagster_yaml_still_wins(tmp_path):
    answer, stdout, _ = _run(_home(tmp_path, NOOP), tmp_path)
    assert answer["manager"] == "NoOpComputeLogManager" and answer["success"]
    assert "py-stdout-line" in stdout  # nothing captured, nothing lost


@pytest.mark.slow  # waits for a child that outlives its run
def test_a_child_outliving_the_run_neither_holds_it_up_nor_loses_its_output(tmp_path):
    answer, _, _ = _run(_home(tmp_path), tmp_path, LINGER_SECONDS="4")
    pid = answer["lingering"]
    try:
        assert answer["success"]
        os.kill(pid, 0)  # the run and its process ended while the child still runs (and holds stdout)
        assert "late-line" not in answer["stdout_file"]
        path = Path(answer["stdout_path"])
        wait_until(lambda: "late-line" in path.read_text(), timeout=60, message="the child's late line in the file")
    finally:
        with contextlib.suppress(ProcessLookupError):  # stopped by its pid if still there
            os.kill(pid, 9)


def test_a_stream_without_a_descriptor_is_left_alone(tmp_path):
    """pytest's capture, a StringIO: nothing to redirect, and the file still exists for the UI."""
    stream = io.StringIO()
    path = tmp_path / "logs" / "x.out"
    with tee_stream_to_file(stream, str(path)):
        stream.write("kept")
    assert stream.getvalue() == "kept" and path.exists() and path.read_text() == ""


@pytest.mark.slow  # a real webserver
def test_the_webserver_shows_the_captured_run_output(tmp_path):
    home = _home(tmp_path)
    answer, _, _ = _run(home, tmp_path)
    port = free_port()
    webserver = os.path.join(os.path.dirname(sys.executable), "dagster-webserver")
    env = {**os.environ, "DAGSTER_HOME": str(home), "PYTHONPATH": str(PROJECT_ROOT)}
    with open(tmp_path / "webserver.log", "w") as log:
        proc = subprocess.Popen(
            [webserver, "-h", "127.0.0.1", "-p", str(port), "-w", str(PROJECT_ROOT / "workspace.yaml")],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}/graphql"
    query = "query ($key: [String!]!) { capturedLogs(logKey: $key) { stdout stderr } }"
    try:

        def logs():
            try:
                r = requests.post(url, json={"query": query, "variables": {"key": answer["log_key"]}}, timeout=5)
            except requests.ConnectionError:
                return None
            return r.json().get("data", {}).get("capturedLogs") if r.ok else None

        shown = wait_until(logs, timeout=120, message="webserver to answer")
        for line in LINES_OUT:
            assert line in shown["stdout"], line
        for line in LINES_ERR:
            assert line in shown["stderr"], line
    finally:
        stop_process(proc)
