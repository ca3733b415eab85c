"""What one column over the whole window cannot see: the joint distribution (``no_multivariate_drift``)
and per-segment drift (``no_segment_drift``), fitted with the reference profile and evaluated in the
window's single streaming pass.

Fitted state lives inside the ``reference_profile`` document, next to the profile, under
``"multivariate"`` (the PCA reconstruction model, or ``{"skipped": reason}``) and ``"segments"``
(kept values per segment column and one profile per segment). So every path that refits the profile
(the reference job, a promotion) refits these too, and no asset key changes.

``JointObserver.observe`` wraps the window's batch iterator: each batch goes to the summary (as
before) and to the reconstruction counts, the segment summaries and the classifier's sample.
``finish`` turns them into check outcomes and the results-store sections.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from drift_assets.stats import ReferenceProfile
from drift_assets.stats import domain_classifier as dc
from drift_assets.stats import multivariate as mv
from drift_assets.stats import rules as r
from drift_assets.stats import segments as sg
from drift_assets.stats.errors import ProfileError, SchemaError

if TYPE_CHECKING:  # annotations only: `compare` imports this module without the YAML config layer
    from drift_assets.monitoring.config import MonitorConfig

MULTIVARIATE_KEY = "multivariate"
SEGMENTS_KEY = "segments"
SAMPLE_SEED = 0


def fit_joint(monitor: MonitorConfig, reference: pa.Table, profile: ReferenceProfile) -> dict:
    """The fitted state stored beside the profile (empty when the monitor uses neither check)."""
    out: dict = {}
    specs = monitor.column_specs()
    if monitor.multivariate.enabled:
        reason = mv.skip_reason(specs)
        if reason is None:
            try:
                model = mv.fit_reconstruction(reference, specs, metadata={"monitor": monitor.name})
                out[MULTIVARIATE_KEY] = model.to_dict()
            except ProfileError as exc:
                out[MULTIVARIATE_KEY] = {"skipped": f"multivariate check skipped: {exc}"}
        else:
            out[MULTIVARIATE_KEY] = {"skipped": reason}
    if monitor.segments:
        split = sg.fit_segment_profiles(profile, reference, monitor.segments)
        out[SEGMENTS_KEY] = {
            "values_by_column": split.values_by_column,
            "profiles": {key: p.to_dict() for key, p in split.profiles.items()},
        }
    return out


def joint_columns(monitor: MonitorConfig) -> list[str]:
    """Columns the window must carry beyond the profile's (segment columns that are not features)."""
    return [c for c in monitor.segments if c not in monitor.features]


@dataclass
class JointState:
    """The fitted state read back from a ``reference_profile`` document."""

    model: mv.ReconstructionModel | None = None
    skipped: str | None = None
    segments: sg.SegmentProfiles | None = None

    @classmethod
    def from_profile_doc(cls, doc: Mapping) -> JointState:
        state = cls()
        fitted = doc.get(MULTIVARIATE_KEY)
        if isinstance(fitted, Mapping):
            if "skipped" in fitted:
                state.skipped = str(fitted["skipped"])
            else:
                state.model = mv.ReconstructionModel.from_dict(fitted)
        seg = doc.get(SEGMENTS_KEY)
        if isinstance(seg, Mapping):
            state.segments = sg.SegmentProfiles(
                {c: list(v) for c, v in seg["values_by_column"].items()},
                {k: ReferenceProfile.from_dict(p) for k, p in seg["profiles"].items()},
            )
        return state


@dataclass
class JointResult:
    """Outcomes (one per check at most), why a check was skipped, and the results-store sections."""

    outcomes: list[r.CheckOutcome] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    sections: dict = field(default_factory=dict)
    reconstruction: mv.ReconstructionDrift | None = None
    classifier: dc.DomainClassifierDrift | None = None
    segments: sg.SegmentDrift | None = None
    segmented: sg.SegmentedSummary | None = None  # the window's per-segment counts (explanations)
    segment_profiles: sg.SegmentProfiles | None = None

    @classmethod
    def not_computed(cls, monitor: MonitorConfig, reason: str) -> JointResult:
        """Every joint check the monitor has, skipped with ``reason`` (never passed)."""
        out = cls()
        have = monitor.capabilities()
        if "multivariate" in have:
            out.skipped[r.NO_MULTIVARIATE_DRIFT] = reason
            out.sections[MULTIVARIATE_KEY] = multivariate_section(None, None, reason)
        if "segments" in have:
            out.skipped[r.NO_SEGMENT_DRIFT] = reason
        return out


class JointObserver:
    """Feeds the window's batches to the multivariate and segment counts while they stream by."""

    def __init__(self, monitor: MonitorConfig, profile: ReferenceProfile, state: JointState, window_rows: int | None):
        self.monitor, self.profile, self.state = monitor, profile, state
        wants = "multivariate" in monitor.capabilities()
        self.model = state.model if wants else None
        self.sample_rate = mv.sample_rate_for(window_rows, monitor.multivariate.sample_rows)
        self._rng = np.random.default_rng(SAMPLE_SEED)
        self.counts = mv.ReconstructionCounts.empty(self.model) if self.model else None
        features = [s.name for s in monitor.column_specs() if s.role == "feature"]
        self.sample = (
            dc.StreamingSample(features, monitor.multivariate.sample_rows, SAMPLE_SEED + 1)
            if self.model is not None and monitor.multivariate.domain_classifier
            else None
        )
        self.segmented = sg.SegmentedSummary() if state.segments and monitor.segments else None
        self.sample_problem: str | None = None

    def observe(self, batches: Iterable[pa.RecordBatch], table_name: str) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            self._add(batch, table_name)
            yield batch

    def _add(self, batch: pa.RecordBatch, table_name: str) -> None:
        if self.model is not None and self.counts is not None:
            self.counts = self.counts + mv.count_batch(
                self.model, batch, sample_rate=self.sample_rate, rng=self._rng, table_name=table_name
            )
        if self.sample is not None and self.sample_problem is None:
            try:
                self.sample.add(batch)
            except SchemaError as exc:
                self.sample_problem = str(exc)
        if self.segmented is not None and self.state.segments is not None:
            self.segmented = self.segmented + sg.summarize_segments_batch(
                self.profile, batch, self.state.segments.values_by_column, table_name
            )

    def finish(self, reference_batches: Callable[[], Iterable[pa.RecordBatch]] | None) -> JointResult:
        out = JointResult()
        if "multivariate" in self.monitor.capabilities():
            self._finish_multivariate(out, reference_batches)
        if "segments" in self.monitor.capabilities():
            self._finish_segments(out)
        return out

    def _finish_multivariate(self, out: JointResult, reference_batches) -> None:
        name = self.monitor.checks[r.NO_MULTIVARIATE_DRIFT]
        if self.model is None or self.counts is None:
            out.skipped[name.name] = self.state.skipped or "multivariate model not fitted: rematerialize the profile"
            out.sections[MULTIVARIATE_KEY] = multivariate_section(None, None, out.skipped[name.name])
            return
        out.reconstruction = mv.evaluate_reconstruction(self.model, self.counts)
        if self.sample is not None and reference_batches is not None:
            if self.sample_problem:
                out.classifier = dc.DomainClassifierDrift(0, 0, skipped=self.sample_problem)
            else:
                rows = self.monitor.multivariate.sample_rows
                ref = dc.seeded_sample(reference_batches(), self.sample.columns, rows, SAMPLE_SEED)
                out.classifier = dc.evaluate_domain_classifier(
                    ref, self.sample.table(), self.monitor.column_specs(), seed=SAMPLE_SEED
                )
        outcome = combined_multivariate_outcome(out.reconstruction, out.classifier)
        if outcome is None:
            out.skipped[name.name] = out.reconstruction.skipped or "multivariate check skipped"
        else:
            out.outcomes.append(replace(outcome, severity=name.severity, description=""))
        out.sections[MULTIVARIATE_KEY] = multivariate_section(
            out.reconstruction, out.classifier, out.skipped.get(name.name)
        )

    def _finish_segments(self, out: JointResult) -> None:
        rule = self.monitor.checks[r.NO_SEGMENT_DRIFT]
        if self.segmented is None or self.state.segments is None:
            out.skipped[rule.name] = "segment profiles not fitted: rematerialize the profile"
            return
        result = sg.evaluate_segments(
            self.state.segments, self.segmented, self.monitor.rules, min_segment_rows=self.monitor.min_segment_rows
        )
        out.segments, out.segmented, out.segment_profiles = result, self.segmented, self.state.segments
        outcome = sg.segment_check(result)
        if outcome is None:
            reasons = "; ".join(result.skipped.values()) or "no segment values in the window"
            out.skipped[rule.name] = f"no segment evaluated: {reasons}"
        else:
            out.outcomes.append(replace(outcome, severity=rule.severity, description=""))
        out.sections[SEGMENTS_KEY] = result.to_dict()


def combined_multivariate_outcome(
    reconstruction: mv.ReconstructionDrift | None, classifier: dc.DomainClassifierDrift | None
) -> r.CheckOutcome | None:
    """One ``no_multivariate_drift`` outcome: fails when either method drifted. Value and threshold
    are the reconstruction error's (the classifier's AUC and its p-value are in the details)."""
    recon = mv.reconstruction_check(reconstruction) if reconstruction is not None else None
    clf = dc.domain_classifier_check(classifier) if classifier is not None else None
    if recon is None:
        return clf
    if clf is None:
        return recon
    named = [n for o in (recon, clf) for n in list(o.details.get("explained_by") or [])]  # type: ignore[call-overload]
    explained = list(dict.fromkeys(named))
    details = {
        **recon.details,
        "method": "reconstruction_error+domain_classifier",
        "domain_classifier_auc": clf.value,
        "domain_classifier_min_auc": clf.threshold,
        "domain_classifier_p_value": clf.details.get("p_value"),
        "domain_classifier_drifted": not clf.passed,
        "explained_by": explained,
    }
    return replace(recon, passed=recon.passed and clf.passed, details=details)


def multivariate_section(
    reconstruction: mv.ReconstructionDrift | None, classifier: dc.DomainClassifierDrift | None, skipped: str | None
) -> dict:
    """The results store's (and ``compare``'s) ``multivariate`` object."""
    drifted = bool((reconstruction and reconstruction.drifted) or (classifier and classifier.drifted))
    explained: list[str] = []
    if reconstruction is not None and reconstruction.drifted:
        explained += reconstruction.explained_by
    if classifier is not None and classifier.drifted:
        explained += classifier.explained_by
    return {
        "reconstruction_error": reconstruction.mean_error if reconstruction else None,
        "threshold": reconstruction.threshold if reconstruction else None,
        "domain_classifier_auc": classifier.auc if classifier else None,
        "drifted": drifted,
        "explained_by": list(dict.fromkeys(explained)),
        "skipped": skipped,
        "reconstruction": reconstruction.to_dict() if reconstruction else None,
        "domain_classifier": classifier.to_dict() if classifier else None,
    }
