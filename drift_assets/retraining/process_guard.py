"""Run a command so that it cannot outlive the process that started it (stdlib only, Linux-first).

``python -I process_guard.py --parent PID [--watch PID:START ...] -- CMD ...`` is what
``dvc_runner.run_dvc_repro`` starts instead of ``dvc repro`` itself. The guard is the leader of a
process group of its own (the runner starts it with ``start_new_session=True``) and starts CMD in
that group, so ``dvc`` and every stage it runs (``python src/train.py``: DVC starts stages in its
own group) are one group. The guard ends the whole group (SIGTERM, then SIGKILL after
``--grace`` seconds) when:

* its parent dies, even by ``kill -9``: ``prctl(PR_SET_PDEATHSIG, SIGTERM)`` on Linux. The guard
  sets it on itself right after it starts (not in a ``preexec_fn``, which is unsafe in a threaded
  parent such as a Dagster run worker; the setting is inherited across ``exec`` either way), then
  checks that ``--parent`` is still its parent, closing the race of a parent dying before that;
  note that Linux sends the signal when the parent *thread* that started the guard exits;
* a watched process is gone (polled every ``--poll`` seconds; ``PID:START`` with START the
  process start time from ``/proc/PID/stat``, so a reused pid does not count as alive): the
  runner adds the run worker when the step runs in a multiprocessing child of it;
* it receives SIGTERM, SIGINT or SIGHUP (a cancelled run, Ctrl-C, a timeout).

Otherwise it exits with CMD's exit status. On systems without ``prctl`` (macOS) only the polling
covers a dead parent.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import ctypes.util
import os
import signal
import subprocess
import sys

PR_SET_PDEATHSIG = 1
ENDED_EXIT = 143  # 128 + SIGTERM: the group was ended on purpose


def process_start_time(pid: int) -> str | None:
    """Start time of ``pid`` (clock ticks since boot, field 22 of /proc/PID/stat); None if no such
    process or no /proc. Together with the pid it names one process, even after pid reuse."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read().decode("ascii", "replace")
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may contain spaces: split after it.
    fields = stat[stat.rindex(")") + 2 :].split()
    return fields[19] if len(fields) > 19 else None


def process_started_at(pid: int) -> float | None:
    """When ``pid`` started, in seconds since the epoch (boot time + its start ticks); None if no
    such process (a zombie counts as gone) or no /proc."""
    ticks = process_start_time(pid)
    if ticks is None or _is_zombie(pid):
        return None
    try:
        with open("/proc/stat", "rb") as fh:
            boot = next(int(line.split()[1]) for line in fh if line.startswith(b"btime "))
    except (OSError, StopIteration, ValueError):
        return None
    return boot + int(ticks) / os.sysconf("SC_CLK_TCK")


def process_identity(pid: int | None = None) -> str:
    """``PID:START`` of ``pid`` (default: this process)."""
    pid = os.getpid() if pid is None else pid
    return f"{pid}:{process_start_time(pid) or ''}"


def worker_identity() -> str:
    """``HOST:PID:START`` of the run worker running this code: this process, or its
    multiprocessing parent when this is a step process of a multiprocess executor."""
    import multiprocessing
    import socket

    parent = multiprocessing.parent_process()
    pid = parent.pid if parent is not None and parent.pid else os.getpid()
    return f"{socket.gethostname()}:{process_identity(pid)}"


def worker_alive(identity: str) -> bool | None:
    """Whether the worker named by ``worker_identity`` runs; None when this host cannot tell
    (another host, or a malformed value)."""
    import socket

    parts = identity.rsplit(":", 2)
    if len(parts) != 3 or not parts[1].isdigit() or parts[0] != socket.gethostname():
        return None
    return identity_alive(f"{parts[1]}:{parts[2]}")


def identity_alive(identity: str) -> bool:
    """Whether the process named by ``process_identity`` still runs (a zombie counts as gone)."""
    pid_text, _, start = identity.partition(":")
    pid = int(pid_text)
    now = process_start_time(pid)
    if now is not None:
        return (not start or now == start) and not _is_zombie(pid)
    if os.path.isdir("/proc"):
        return False
    try:  # no /proc: fall back to signal 0 (cannot tell a reused pid)
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _is_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read().decode("ascii", "replace")
    except OSError:
        return True
    return stat[stat.rindex(")") + 2 :].split()[0] in ("Z", "X")


def set_parent_death_signal(sig: int = signal.SIGTERM) -> bool:
    """``prctl(PR_SET_PDEATHSIG, sig)`` for this process; False where unavailable."""
    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    return libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0


def _say(message: str) -> None:
    with contextlib.suppress(OSError):
        print(message, file=sys.stderr, flush=True)


def _kill_stragglers() -> None:
    """SIGKILL what is left of this group but the guard (CMD exited; a stage it left must not live on)."""
    me, group = os.getpid(), os.getpgid(0)
    try:
        pids = [int(name) for name in os.listdir("/proc") if name.isdigit()]
    except OSError:
        return
    for pid in pids:
        try:
            if pid != me and os.getpgid(pid) == group:
                os.kill(pid, signal.SIGKILL)
        except OSError:
            continue


class _Guard:
    def __init__(self, child: subprocess.Popen, grace: float):
        self.child, self.grace, self.reason = child, grace, None

    def on_signal(self, signum, _frame) -> None:
        self.reason = self.reason or f"signal {signal.Signals(signum).name}"

    def end_group(self) -> None:
        """SIGTERM the group, wait for CMD up to ``grace``, then SIGKILL the group (this guard too)."""
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)
        try:
            os.killpg(0, signal.SIGTERM)
            # The reader of stderr may be the dead parent: a broken pipe must not stop the ending.
            _say(f"process_guard: {self.reason}: ending process group {os.getpgid(0)}")
            self.child.wait(timeout=self.grace)
        except BaseException:  # noqa: BLE001, S110 - whatever happens, the group dies below
            pass
        finally:
            os.killpg(0, signal.SIGKILL)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="process_guard")
    parser.add_argument("--parent", type=int, required=True, help="pid expected as this guard's parent")
    parser.add_argument("--watch", action="append", default=[], help="PID:START of a process to outlive not")
    parser.add_argument("--poll", type=float, default=1.0)
    parser.add_argument("--grace", type=float, default=10.0)
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command")
    set_parent_death_signal(signal.SIGTERM)
    watched = [f"{args.parent}:{process_start_time(args.parent) or ''}", *args.watch]
    if os.getppid() != args.parent:  # the parent died before the death signal was armed
        _say(f"process_guard: parent {args.parent} is gone; not starting {command[0]}")
        return ENDED_EXIT
    child = subprocess.Popen(command)  # same process group as this guard
    guard = _Guard(child, args.grace)
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, guard.on_signal)
    while guard.reason is None:
        try:
            code = child.wait(timeout=args.poll)
        except subprocess.TimeoutExpired:
            pass
        else:
            _kill_stragglers()
            return code if code >= 0 else 128 - code
        gone = [w for w in watched if not identity_alive(w)]
        if gone and guard.reason is None:
            guard.reason = f"watched process {gone[0].split(':')[0]} is gone"
    guard.end_group()
    return ENDED_EXIT  # not reached: SIGKILL of the group ends this process too


if __name__ == "__main__":
    sys.exit(main())
