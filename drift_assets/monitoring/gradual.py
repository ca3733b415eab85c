"""Slow drift from the stored window results: a CUSUM per column, no rescan of rows.

Reads each window's ``current_mean``, ``reference_mean``, ``reference_std`` and ``current_valid``
from the drift documents of the results store (in window order) and runs ``stats.sequential.cusum``
on the standardised mean shifts. Windows where the column has no value or a problem count as z = 0.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from drift_assets.stats import sequential


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


def window_z(doc: Mapping, column: str) -> float:
    col = doc.get("columns", {}).get(column) or {}
    needed = ("current_mean", "reference_mean", "reference_std", "current_valid")
    if any(col.get(k) is None for k in needed):
        return 0.0
    return sequential.standardised_mean_shift(
        float(col["current_mean"]), float(col["reference_mean"]), float(col["reference_std"]), int(col["current_valid"])
    )


def gradual_drift(
    records: Sequence[Mapping],
    column: str,
    *,
    allowance: float = sequential.DEFAULT_ALLOWANCE,
    threshold: float = sequential.DEFAULT_THRESHOLD,
) -> GradualDrift:
    """CUSUM over ``records`` (drift documents, oldest first) for one numerical column."""
    z = [window_z(doc, column) for doc in records]
    partitions = tuple(str(doc.get("partition", i)) for i, doc in enumerate(records))
    return GradualDrift(column, partitions, tuple(z), sequential.cusum(z, allowance=allowance, threshold=threshold))
