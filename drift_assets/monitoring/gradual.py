"""Slow drift from the stored window results: a CUSUM per column, no rescan of rows.

Reads each window's ``current_mean``, ``reference_mean``, ``reference_std`` and ``current_valid``
from the drift documents of the results store (in window order) and runs ``stats.sequential.cusum``
on the standardised mean shifts. Windows where the column has no value or a problem count as z = 0.

``evaluate_gradual_drift`` is the ``no_gradual_drift`` check of one window: the CUSUM over the
stored documents of the monitor's previous windows (up to ``LOOKBACK_WINDOWS``, back to the last
change of reference for the column) and the window being evaluated; it fails when the CUSUM alarms
at this window.
"""

from __future__ import annotations

import datetime as dt
import math
import posixpath
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from drift_assets.monitoring.results_store import ResultsStore
from drift_assets.monitoring.windows import CADENCE_LENGTH, Window, partition_key
from drift_assets.stats import sequential
from drift_assets.storage.root import Root

# How far back the CUSUM is rebuilt from the stored documents. Under no drift the sums return to 0
# within a few windows (allowance 0.5), so starting 200 windows back gives the statistic of a run
# started at the very first window, at a bounded cost (200 small JSON reads per window).
LOOKBACK_WINDOWS = 200
# A persistent mean offset below this many reference standard deviations does not accumulate:
# each window's allowance is max(k, MIN_SHIFT_SD * sqrt(valid)). Without it a weekly window of
# 20,000 rows would flag a 0.01-sd offset (z = 1.4 every week), the large-n problem the per-window
# checks solve with a minimum effect. A larger allowance only lengthens the run length under no
# drift, so the calibration (ARL0 >= 200) still holds.
MIN_SHIFT_SD = 0.02


@dataclass(frozen=True)
class GradualDrift:
    column: str
    partitions: tuple[str, ...]
    z: tuple[float, ...]
    cusum: sequential.Cusum

    @property
    def first_alarm_partition(self) -> str | None:
        first = self.cusum.first_alarm
        return None if first is None else self.partitions[first]

    @property
    def alarmed_last(self) -> bool:
        """The CUSUM alarmed at the last window (the one being evaluated)."""
        return bool(self.cusum.alarms) and self.cusum.alarms[-1] == len(self.z) - 1


def _column(doc: Mapping, column: str) -> Mapping:
    return (doc.get("columns") or {}).get(column) or {}


def window_z(doc: Mapping, column: str) -> float:
    col = _column(doc, column)
    needed = ("current_mean", "reference_mean", "reference_std", "current_valid")
    if any(col.get(k) is None for k in needed):
        return 0.0
    return sequential.standardised_mean_shift(
        float(col["current_mean"]), float(col["reference_mean"]), float(col["reference_std"]), int(col["current_valid"])
    )


def window_allowance(doc: Mapping, column: str, allowance: float, min_shift_sd: float) -> float:
    valid = _column(doc, column).get("current_valid") or 0
    return max(allowance, min_shift_sd * math.sqrt(max(int(valid), 0)))


def gradual_drift(
    records: Sequence[Mapping],
    column: str,
    *,
    allowance: float = sequential.DEFAULT_ALLOWANCE,
    threshold: float = sequential.DEFAULT_THRESHOLD,
    min_shift_sd: float = 0.0,
) -> GradualDrift:
    """CUSUM over ``records`` (drift documents, oldest first) for one numerical column.

    ``min_shift_sd`` > 0 raises each window's allowance to ``min_shift_sd * sqrt(valid)`` where that
    is larger (see ``MIN_SHIFT_SD``); 0 keeps the constant allowance the calibration used."""
    z = [window_z(doc, column) for doc in records]
    allowances = [window_allowance(doc, column, allowance, min_shift_sd) for doc in records]
    partitions = tuple(str(doc.get("partition", i)) for i, doc in enumerate(records))
    return GradualDrift(column, partitions, tuple(z), sequential.cusum(z, allowance=allowances, threshold=threshold))


def _same_reference(a: Mapping, b: Mapping) -> bool:
    """Two column entries (or stored states) measured against the same reference."""
    return a.get("reference_mean") == b.get("reference_mean") and a.get("reference_std") == b.get("reference_std")


def trailing_documents(
    read: Callable[[str], Mapping | None],
    start: dt.datetime,
    length: dt.timedelta,
    key_of: Callable[[dt.datetime], str],
    lookback: int = LOOKBACK_WINDOWS,
) -> list[Mapping]:
    """The stored documents of the ``lookback`` windows before ``start``, oldest first.

    ``read(key)`` returns a window's stored drift document or None (not evaluated yet: skipped)."""
    docs = []
    for i in range(lookback, 0, -1):
        doc = read(key_of(start - i * length))
        if doc is not None:
            docs.append(doc)
    return docs


@dataclass(frozen=True)
class GradualOutcome:
    column: str
    passed: bool
    statistic: float  # max(S+, S-) at this window, before an alarm's reset: what crossed the threshold
    threshold: float
    windows: int  # windows the CUSUM ran over since it was last rebuilt, this one included
    upper: float  # S+ and S- carried to the next window (0 after an alarm)
    lower: float
    z: float
    allowance: float
    reference_mean: float
    reference_std: float

    def details(self) -> dict:
        """What the stored document keeps: the next window continues the CUSUM from it."""
        return {
            "z": self.z,
            "cusum_upper": self.upper,
            "cusum_lower": self.lower,
            "allowance": self.allowance,
            "windows": self.windows,
            "reference_mean": self.reference_mean,
            "reference_std": self.reference_std,
        }


def _outcome(
    column: str, col: Mapping, drift: GradualDrift, threshold: float, windows: int, allowance: float
) -> GradualOutcome:
    c = drift.cusum
    alarmed = drift.alarmed_last
    return GradualOutcome(
        column,
        not alarmed,
        float(max(c.upper[-1], c.lower[-1])),
        threshold,
        windows,
        0.0 if alarmed else float(c.upper[-1]),
        0.0 if alarmed else float(c.lower[-1]),
        float(drift.z[-1]),
        allowance,
        float(col["reference_mean"]),
        float(col["reference_std"]),
    )


def evaluate_gradual_drift(
    previous: Sequence[Mapping],
    current: Mapping,
    columns: Sequence[str],
    *,
    allowance: float = sequential.DEFAULT_ALLOWANCE,
    threshold: float = sequential.DEFAULT_THRESHOLD,
    min_shift_sd: float = MIN_SHIFT_SD,
    state: Mapping[str, Mapping] | None = None,
) -> list[GradualOutcome]:
    """One outcome per numerical column of ``current`` (a drift document of this window).

    With ``state`` (column -> the previous window's stored outcome details), the CUSUM continues from
    its sums when they were measured against the same reference; otherwise it is rebuilt over
    ``previous`` (documents of earlier windows, oldest first) back to the last change of reference."""
    out = []
    for column in columns:
        col = _column(current, column)
        if col.get("reference_std") is None or col.get("reference_mean") is None:
            continue  # categorical, or not measured in this window
        k = window_allowance(current, column, allowance, min_shift_sd)
        z = window_z(current, column)
        carried = (state or {}).get(column)
        if carried is not None and _same_reference(carried, col):
            upper = max(0.0, float(carried["cusum_upper"]) + z - k)
            lower = max(0.0, float(carried["cusum_lower"]) - z - k)
            alarmed = upper > threshold or lower > threshold
            windows = int(carried.get("windows", 0)) + 1
            out.append(
                GradualOutcome(
                    column,
                    not alarmed,
                    max(upper, lower),
                    threshold,
                    windows,
                    0.0 if alarmed else upper,
                    0.0 if alarmed else lower,
                    z,
                    k,
                    float(col["reference_mean"]),
                    float(col["reference_std"]),
                )
            )
            continue
        chain: list[Mapping] = []
        for doc in reversed(previous):  # back to the last change of reference
            if not _same_reference(_column(doc, column), col):
                break
            chain.append(doc)
        records = [*reversed(chain), current]
        drift = gradual_drift(records, column, allowance=allowance, threshold=threshold, min_shift_sd=min_shift_sd)
        out.append(_outcome(column, col, drift, threshold, len(records), k))
    return out


def stored_state(doc: Mapping | None, check_name: str) -> dict[str, Mapping]:
    """Column -> the CUSUM details a window's stored document carries for ``check_name``."""
    if doc is None:
        return {}
    return {
        str(c["column"]): c
        for c in doc.get("checks", [])
        if c.get("name") == check_name and c.get("column") and c.get("cusum_upper") is not None
    }


def read_earlier_windows(
    reports: Root,
    monitor: str,
    cadence: str,
    window: Window,
    check_name: str,
    columns: Sequence[str],
    lookback: int = LOOKBACK_WINDOWS,
) -> tuple[list[Mapping], dict[str, Mapping]]:
    """What the CUSUM of ``window`` needs from the results store: the previous window's stored state
    when it carries one for every column (one read), else the documents of the ``lookback`` earlier
    windows that were evaluated (one listing, then one read each). A document that cannot be read
    counts as a window not evaluated: slow-drift detection must not stop a window's evaluation."""
    length = CADENCE_LENGTH[cadence]
    directory = posixpath.dirname(ResultsStore.drift_path(monitor, window.key))
    present = set(reports.list_dir(directory))

    def read(key: str) -> Mapping | None:
        known = _EVALUATED_ELSEWHERE.get((monitor, key))
        if known is not None:
            return known
        name = posixpath.basename(ResultsStore.drift_path(monitor, key))
        if name not in present:
            return None
        try:
            return reports.read_json(f"{directory}/{name}")
        except (OSError, ValueError):
            return None

    previous = read(partition_key(window.start - length, cadence))
    state = stored_state(previous, check_name)
    if previous is not None and all(c in state for c in columns if _column(previous, c).get("reference_std")):
        return [], state
    return trailing_documents(read, window.start, length, lambda t: partition_key(t, cadence), lookback), {}


# (monitor, window) -> the window's drift document as far as this check reads it, for windows that
# another process evaluates at the same time (the demo's hour workers, cli/hours.py): read before
# the results store, so a worker's first window continues the CUSUM the sequential order would.
_EVALUATED_ELSEWHERE: dict[tuple[str, str], Mapping] = {}


def remember_windows(monitor: str, documents: Mapping[str, Mapping]) -> None:
    """Make ``documents`` (window key -> drift document) this process's answer for those windows."""
    _EVALUATED_ELSEWHERE.update({(monitor, key): doc for key, doc in documents.items()})


def forget_windows() -> None:
    _EVALUATED_ELSEWHERE.clear()
