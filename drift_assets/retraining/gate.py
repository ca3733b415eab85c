"""The champion/challenger gate: a challenger is promoted only if it beats the champion on the
same holdout by more than a minimum gain. Missing or NaN AUCs never promote."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class GateDecision:
    promote: bool
    reason: str

    @property
    def status(self) -> str:
        return "promoted" if self.promote else "rejected"


def gate(
    challenger_auc: float | None, champion_auc: float | None, min_auc_gain: float, holdout_rows: int | None = None
) -> GateDecision:
    """Promote only if the challenger beats the champion on the same holdout by more than
    ``min_auc_gain`` (0: strictly better). Missing or NaN AUCs never promote."""
    on = f" on the same holdout ({holdout_rows:,} rows)" if holdout_rows else " on the same holdout"
    if (
        challenger_auc is None
        or champion_auc is None
        or not np.isfinite(challenger_auc)
        or not np.isfinite(champion_auc)
    ):
        return GateDecision(False, f"AUC undefined (challenger {challenger_auc}, champion {champion_auc}){on}")
    delta = challenger_auc - champion_auc
    if delta > min_auc_gain:
        return GateDecision(
            True,
            f"challenger AUC {challenger_auc:.4f} > champion AUC {champion_auc:.4f} + min gain {min_auc_gain:.4f}"
            f" (delta {delta:+.4f}){on}",
        )
    return GateDecision(
        False,
        f"challenger AUC {challenger_auc:.4f} does not beat champion AUC {champion_auc:.4f} + min gain "
        f"{min_auc_gain:.4f} (delta {delta:+.4f}){on}",
    )
