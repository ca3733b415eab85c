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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from drift_assets.stats import sequential

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


def _same_reference(doc: Mapping, current: Mapping, column: str) -> bool:
    a, b = _column(doc, column), _column(current, column)
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
    statistic: float  # max(S+, S-) at this window (0 right after an alarm's reset)
    threshold: float
    windows: int  # windows the CUSUM ran over, this one included
    upper: float
    lower: float
    z: float
    first_alarm: str | None  # the earliest alarm in the lookback (partition key)


def evaluate_gradual_drift(
    previous: Sequence[Mapping],
    current: Mapping,
    columns: Sequence[str],
    *,
    allowance: float = sequential.DEFAULT_ALLOWANCE,
    threshold: float = sequential.DEFAULT_THRESHOLD,
    min_shift_sd: float = MIN_SHIFT_SD,
) -> list[GradualOutcome]:
    """One outcome per numerical column of ``current`` (a drift document of this window): the CUSUM
    over the previous windows measured against the same reference, then this one."""
    out = []
    for column in columns:
        col = _column(current, column)
        if col.get("reference_std") is None:
            continue  # categorical, or not measured in this window
        chain: list[Mapping] = []
        for doc in reversed(previous):  # back to the last change of reference
            if not _same_reference(doc, current, column):
                break
            chain.append(doc)
        records = [*reversed(chain), current]
        drift = gradual_drift(records, column, allowance=allowance, threshold=threshold, min_shift_sd=min_shift_sd)
        c = drift.cusum
        # The value reported is the sum that crossed (before its reset) or the current max(S+, S-).
        crossed = max(c.upper[-1], c.lower[-1])
        out.append(
            GradualOutcome(
                column,
                not drift.alarmed_last,
                float(crossed),
                threshold,
                len(records),
                float(c.upper[-1]),
                float(c.lower[-1]),
                float(drift.z[-1]),
                drift.first_alarm_partition,
            )
        )
    return out
