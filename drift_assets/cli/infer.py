"""Column roles for ``compare`` without ``--monitor`` or explicit lists: what is a feature, what is
the prediction, what is the label, and what is not data to measure drift on (ids, timestamps).

The rules are by name and type, plus one look at the reference's values (string columns with more
distinct values than a categorical profile keeps are identifiers). The decision is printed as one
line on stderr, so a wrong guess is visible and fixable with ``--prediction``, ``--target``,
``--exclude`` or ``--numerical``/``--categorical``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

from drift_assets.stats import ColumnSpec, infer_column_specs
from drift_assets.stats.profile import DEFAULT_MAX_CATEGORIES
from drift_assets.storage.tables import TableSource

ID_NAME = re.compile(r"(^|_)(id|uuid|guid|key|hash)$|^id_", re.IGNORECASE)
TIME_NAME = re.compile(r"(^|_)(timestamp|ts|time|date|datetime)$|_at$|^(date|time)_", re.IGNORECASE)
TARGET_NAME = re.compile(r"^(label|target|y|class|outcome|ground_truth|actual)$|^(is|has|was)_", re.IGNORECASE)
PREDICTION_NAME = re.compile(r"(^|_)(score|prediction|predicted|pred|proba|probability)$", re.IGNORECASE)


@dataclass
class InferredRoles:
    specs: list[ColumnSpec]
    prediction: str | None = None
    target: str | None = None
    excluded: dict[str, str] = field(default_factory=dict)  # column -> why
    only_in_current: list[str] = field(default_factory=list)
    ambiguous_prediction: list[str] = field(default_factory=list)

    def describe(self, current_has_target: bool) -> str:
        features = [s for s in self.specs if s.role == "feature"]
        numerical = sum(s.kind == "numerical" for s in features)
        parts = [f"{len(features)} features ({numerical} numerical, {len(features) - numerical} categorical)"]
        if self.prediction:
            parts.append(f"prediction {self.prediction}")
        elif self.ambiguous_prediction:
            parts.append(f"no prediction (several score-like columns: {', '.join(self.ambiguous_prediction)})")
        else:
            parts.append("no prediction column")
        if self.target:
            absent = "" if current_has_target else " (absent from CURRENT: not compared)"
            parts.append(f"target {self.target}{absent}")
        if self.excluded:
            parts.append("excluded " + ", ".join(f"{c} ({why})" for c, why in self.excluded.items()))
        if self.only_in_current:
            parts.append("only in CURRENT, ignored: " + ", ".join(self.only_in_current))
        return (
            "compare: inferred roles: " + "; ".join(parts) + " (set them with --monitor, --prediction, --target, "
            "--exclude or --numerical/--categorical)"
        )


def _two_valued(field_type: pa.DataType) -> bool:
    return pa.types.is_boolean(field_type) or pa.types.is_integer(field_type) or pa.types.is_string(field_type)


def _pick_prediction(schema: pa.Schema, excluded: dict, target: str | None) -> tuple[str | None, list[str]]:
    """A float column named like a score; among several, the one sharing a word with the target
    (``is_fraud`` -> ``fraud_score``, not ``merchant_risk_score``), else one named prediction/proba;
    still several: none (the caller says which, so the user passes --prediction)."""
    candidates = [
        f.name
        for f in schema
        if f.name not in excluded
        and f.name != target
        and pa.types.is_floating(f.type)
        and PREDICTION_NAME.search(f.name)
    ]
    if len(candidates) <= 1:
        return (candidates[0] if candidates else None), []
    target_words = set(re.split(r"[_\W]+", target.lower())) - {"is", "has", "was", ""} if target else set()
    for narrowed in (
        [c for c in candidates if target_words & set(re.split(r"[_\W]+", c.lower()))],
        [c for c in candidates if re.search(r"(^|_)(prediction|predicted|pred|proba|probability)$", c, re.I)],
    ):
        if len(narrowed) == 1:
            return narrowed[0], []
    return None, candidates


def infer_roles(
    reference: TableSource,
    current_names: Iterable[str],
    *,
    prediction: str | None = None,
    target: str | None = None,
    exclude: Iterable[str] = (),
) -> InferredRoles:
    schema = reference.schema()
    current = list(current_names)
    excluded: dict[str, str] = {c: "--exclude" for c in exclude}
    for f in schema:
        if f.name in excluded or f.name in (prediction, target):
            continue
        if pa.types.is_temporal(f.type):
            excluded[f.name] = "timestamp"
        elif TIME_NAME.search(f.name):
            excluded[f.name] = "timestamp-like name"
        elif ID_NAME.search(f.name):
            excluded[f.name] = "id-like name"
    if target is None:
        target = next(
            (f.name for f in schema if f.name not in excluded and TARGET_NAME.search(f.name) and _two_valued(f.type)),
            None,
        )
    ambiguous: list[str] = []
    if prediction is None:
        prediction, ambiguous = _pick_prediction(schema, excluded, target)
    strings = [
        f.name
        for f in schema
        if f.name not in excluded
        and f.name not in (prediction, target)
        and (pa.types.is_string(f.type) or pa.types.is_large_string(f.type))
    ]
    if strings:
        table = reference.read(strings)
        for name in strings:
            distinct = pc.count_distinct(table.column(name)).as_py()
            if distinct > DEFAULT_MAX_CATEGORIES:
                excluded[name] = f"{distinct:,} distinct values: an identifier or free text"
    specs = infer_column_specs(schema, prediction=prediction, target=target, exclude=list(excluded))
    return InferredRoles(
        specs=specs,
        prediction=prediction,
        target=target,
        excluded={c: why for c, why in excluded.items() if c in schema.names},
        only_in_current=[c for c in current if c not in schema.names],
        ambiguous_prediction=ambiguous,
    )
