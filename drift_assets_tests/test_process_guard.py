"""``dvc repro`` cannot outlive its run (issue 12, item 1): the process group started by
``run_dvc_repro`` (guard, "dvc", its stage) ends when the caller is killed (-9, TERM, INT), when the
run worker above a multiprocessing step dies, on timeout, and a stage left behind by a finished
"dvc" is killed too. A fake ``dvc`` (a shell script whose "stage" is ``sleep``, started in the
same group the way DVC starts stages) stands in for the real CLI; the real one is killed mid-repro
in test_retraining_hygiene.py.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from servers import wait_until

from drift_assets.retraining.dvc_runner import run_dvc_repro
from drift_assets.retraining.process_guard import identity_alive, process_identity

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux process semantics")

FAKE_DVC = """#!/bin/sh
# "dvc repro": start a long "stage" in this process group, record it, wait for it.
sleep {stage_seconds} &
echo $! > "$PWD/stage.pid"
{after}
"""

CALLER = textwrap.dedent(
    """
    import multiprocessing, sys, time
    from pathlib import Path
    from drift_assets.retraining.dvc_runner import run_dvc_repro

    def step(workdir, dvc):
        run_dvc_repro(Path(workdir), dvc_executable=dvc, timeout_s=600)

    if __name__ == "__main__":
        workdir, dvc, mode = sys.argv[1:4]
        if mode == "multiprocessing":  # this process is the "run worker"; the step is its child
            multiprocessing.set_start_method("spawn")
            p = multiprocessing.Process(target=step, args=(workdir, dvc))
            p.start()
            Path(workdir, "step.pid").write_text(str(p.pid))
            p.join()
        else:
            step(workdir, dvc)
    """
)


def _pgid_members(pgid: int) -> list[int]:
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            if os.getpgid(int(name)) == pgid:
                with open(f"/proc/{name}/stat") as fh:
                    if fh.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X"):
                        out.append(int(name))
        except (OSError, IndexError):
            continue
    return out


def _workdir(tmp_path: Path, after: str = "wait", stage_seconds: int = 300) -> tuple[Path, Path]:
    workdir = tmp_path / "work"
    workdir.mkdir()
    (workdir / "dvc.yaml").write_text("stages: {}\n")
    dvc = tmp_path / "dvc"
    dvc.write_text(FAKE_DVC.format(stage_seconds=stage_seconds, after=after))
    dvc.chmod(0o755)
    return workdir, dvc


def _start_caller(workdir: Path, dvc: Path, mode: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    script = workdir.parent / "caller.py"
    script.write_text(CALLER)
    return subprocess.Popen([sys.executable, str(script), str(workdir), str(dvc), mode], env=env)


# (how the caller ends, which process receives the signal)
CALLER_DEATHS = {
    "caller kill -9": ("direct", signal.SIGKILL, "caller"),
    "caller SIGTERM": ("direct", signal.SIGTERM, "caller"),
    "caller SIGINT (KeyboardInterrupt: a cancelled run)": ("direct", signal.SIGINT, "caller"),
    "run worker kill -9 above a multiprocessing step": ("multiprocessing", signal.SIGKILL, "caller"),
    "multiprocessing step kill -9": ("multiprocessing", signal.SIGKILL, "step"),
}


@pytest.mark.slow  # a Python subprocess per case (~4-9 s each on 2 shared cores)
@pytest.mark.parametrize(("mode", "sig", "target"), CALLER_DEATHS.values(), ids=CALLER_DEATHS.keys())
def test_the_dvc_process_group_ends_with_its_caller(tmp_path, mode, sig, target):
    workdir, dvc = _workdir(tmp_path)
    caller = _start_caller(workdir, dvc, mode)
    try:
        stage = int(
            wait_until(
                lambda: (workdir / "stage.pid").is_file() and (workdir / "stage.pid").read_text(),
                20,
                message="the stage to start",
            )
        )
        pgid = os.getpgid(stage)
        assert pgid != os.getpgid(caller.pid)  # a group of its own (the guard's)
        assert len(_pgid_members(pgid)) == 3  # guard, "dvc", "stage"
        victim = caller.pid if target == "caller" else int((workdir / "step.pid").read_text())
        os.kill(victim, sig)
        started = time.monotonic()
        wait_until(lambda: not _pgid_members(pgid), 15, message=f"process group {pgid} to end")
        assert time.monotonic() - started < 12  # the guard's poll (1 s) + grace, not the stage's 300 s
    finally:
        if caller.poll() is None:
            caller.kill()
        caller.wait(timeout=30)


def test_a_stage_left_behind_by_a_finished_dvc_is_killed(tmp_path):
    workdir, dvc = _workdir(tmp_path, after="exit 0")
    result = run_dvc_repro(workdir, dvc_executable=str(dvc), timeout_s=60)
    assert result.returncode == 0
    stage = int((workdir / "stage.pid").read_text())
    wait_until(
        lambda: not identity_alive(process_identity(stage)) or not Path(f"/proc/{stage}").exists(),
        5,
        message="the straggler to be killed",
    )


def test_timeout_ends_the_whole_group(tmp_path):
    workdir, dvc = _workdir(tmp_path)
    started = time.monotonic()
    result = run_dvc_repro(workdir, dvc_executable=str(dvc), timeout_s=2)
    assert result.timed_out and result.returncode != 0 and time.monotonic() - started < 20
    stage = int((workdir / "stage.pid").read_text())
    assert not Path(f"/proc/{stage}").exists() or not identity_alive(process_identity(stage))


def test_process_identity_survives_pid_reuse_checks():
    me = process_identity()
    assert identity_alive(me)
    pid, start = me.split(":")
    assert not identity_alive(f"{pid}:{int(start) + 1}")  # same pid, another process
    child = subprocess.Popen(["true"])
    child.wait()
    assert not identity_alive(process_identity(child.pid))
