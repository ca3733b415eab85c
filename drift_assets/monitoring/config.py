"""The monitors file: each monitored model is a config entry, and Dagster definitions are generated
from it. Errors name the file, the entry and the field (``monitors.yaml: monitors.fraud.cadence: ...``)
so a malformed file fails at load time with something a user can fix."""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from drift_assets.monitoring.derived import FUNCTIONS as DERIVED_FUNCTIONS
from drift_assets.monitoring.source_config import SourceConfigError, SourceSpec, parse_source
from drift_assets.monitoring.timestamps import parse_timestamp
from drift_assets.stats import ColumnSpec, DecisionRules
from drift_assets.stats.checks import DEFAULT_CHECKS, CheckRule, CheckTable
from drift_assets.stats.multivariate import DEFAULT_MAX_EVALUATED_ROWS, MIN_HALF_ROWS
from drift_assets.stats.profile import DEFAULT_PSI_BINS, DEFAULT_SKETCH_RESOLUTION
from drift_assets.stats.rules import FEATURE_PSI_ERROR, PREDICTION_NO_DRIFT
from drift_assets.stats.segments import DEFAULT_MIN_SEGMENT_ROWS
from drift_assets.stats.validation import DEFAULT_MIN_REFERENCE_ROWS

PROJECT_ROOT = Path(__file__).resolve().parents[2]
CADENCES = ("hourly", "daily", "weekly")
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]*$")


class ConfigError(ValueError):
    """The monitors file is malformed; the message names the entry and field."""


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, except that a key given twice in one mapping is an error (PyYAML
    silently keeps the last one: a pasted second ``psi_error`` would override the first)."""

    def construct_mapping(self, node, deep=False):
        seen: dict = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise ConfigError(
                    f"line {key_node.start_mark.line + 1}: key {key!r} appears twice in the same mapping"
                    f" (first on line {seen[key] + 1})"
                )
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


def _check_range(
    value: float,
    where: str,
    low: float | None = None,
    high: float | None = None,
    *,
    low_open: bool = False,
    high_open: bool = False,
) -> None:
    """``value`` in the interval, else a ConfigError naming the field and the interval."""
    too_low = low is not None and (value <= low if low_open else value < low)
    too_high = high is not None and (value >= high if high_open else value > high)
    if too_low or too_high:
        left = "" if low is None else f"{'>' if low_open else '>='} {low:g}"
        right = "" if high is None else f"{'<' if high_open else '<='} {high:g}"
        bounds = " and ".join(b for b in (left, right) if b)
        raise ConfigError(f"{where}: must be {bounds}, got {value:g}")


def default_monitors_file() -> Path:
    return Path(os.environ.get("DRIFT_ASSETS_MONITORS", PROJECT_ROOT / "monitors.yaml"))


@dataclass(frozen=True)
class LabelsConfig:
    column: str
    location: str
    delay_days: float
    id_column: str
    # ``target.labels`` as a PostgreSQL table or query (None: ``arrived=YYYY-MM-DD/`` folders);
    # ``arrived_column`` says when each label arrived there.
    source: SourceSpec | None = None
    arrived_column: str = "arrived"


@dataclass(frozen=True)
class RetrainingConfig:
    enabled: bool = True
    # ERROR checks whose failure triggers retraining (the seed's "PSI > 0.25" and prediction drift).
    on_checks: tuple[str, ...] = (FEATURE_PSI_ERROR, PREDICTION_NO_DRIFT)
    cooldown_hours: float = 0.0
    # The challenger must beat the champion's AUC by more than this (0: strictly better).
    min_auc_gain: float = 0.0
    holdout_weeks: int = 2
    # True: a drift ERROR triggers retraining only when performance also dropped (the estimated AUC's
    # check or the realized AUC's check failed for the same window). False: the design document's matrix.
    require_performance_impact: bool = False


@dataclass(frozen=True)
class SuddenChangeConfig:
    """Compare each window with the trailing baseline of the previous ``baseline_windows`` windows:
    "sudden" means against the recent past, so a slow trend does not page and a jump in one window
    does."""

    baseline_windows: int
    columns: tuple[str, ...] = ()  # numerical columns whose distribution must not jump
    rates: tuple[str, ...] = ()  # yes/no columns whose "yes" rate must not jump
    psi: float = 0.25
    rate_alpha: float = 0.001
    min_rate_change: float = 0.05
    min_rows: int = 20  # windows (and baselines) smaller than this are not judged
    rate_direction: str = "increase"  # increase | decrease | both


@dataclass(frozen=True)
class MultivariateConfig:
    """``multivariate:``: the joint-distribution check (on when the monitor has >= 2 features)."""

    enabled: bool = True
    domain_classifier: bool = False  # also fit the sampled classifier (seconds per window)
    # Rows of the window evaluated by the reconstruction error (a seeded sample above this), and the
    # size of each side's sample for the domain classifier.
    sample_rows: int = DEFAULT_MAX_EVALUATED_ROWS


@dataclass(frozen=True)
class DerivedColumn:
    """A column computed from the log before profiling (e.g. LLM output length, refusal flag)."""

    name: str
    function: str
    source: str
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class MonitorConfig:
    name: str
    description: str
    cadence: str
    start: dt.datetime
    end: dt.datetime | None
    reference: str
    log: str
    timestamp_column: str
    model_version_column: str | None
    numerical: tuple[str, ...]
    categorical: tuple[str, ...]
    top_features: tuple[str, ...]
    prediction: str | None
    prediction_kind: str  # numerical | categorical | probability (a numerical score in [0, 1])
    labels: LabelsConfig | None
    model_registry: str | None
    rules: DecisionRules
    retraining: RetrainingConfig
    psi_bins: int = DEFAULT_PSI_BINS
    # A smaller reference is refused (reference_data fails naming the file).
    min_reference_rows: int = DEFAULT_MIN_REFERENCE_ROWS
    derived: tuple[DerivedColumn, ...] = ()
    sudden_change: SuddenChangeConfig | None = None
    # Categorical columns whose values are evaluated as segments (``channel=web``).
    segments: tuple[str, ...] = ()
    min_segment_rows: int = DEFAULT_MIN_SEGMENT_ROWS
    multivariate: MultivariateConfig = field(default_factory=MultivariateConfig)
    extra: Mapping[str, Any] = field(default_factory=dict)
    # ``model.threshold``: scores >= this are predicted positive (precision, recall, F1, accuracy).
    decision_threshold: float = 0.5
    # The check registry this monitor is evaluated with (tests extend it; users extend it in code).
    checks: CheckTable = DEFAULT_CHECKS
    # ``log:`` / ``reference:`` given as a source mapping (PostgreSQL, DuckDB); None: a parquet path.
    log_source: SourceSpec | None = None
    reference_source: SourceSpec | None = None

    @property
    def features(self) -> tuple[str, ...]:
        return self.numerical + self.categorical

    def capabilities(self) -> set[str]:
        """What this monitor has, for the checks that require it (``CheckRule.requires``)."""
        have = set()
        if self.prediction:
            have.add("prediction")
        if self.labels and self.model_registry:
            have.add("labels")
        if self.prediction and self.prediction_kind == "probability":
            have.add("probability_prediction")
        if self.sudden_change is not None:
            have |= {"sudden_columns"} if self.sudden_change.columns else set()
            have |= {"sudden_rates"} if self.sudden_change.rates else set()
        if self.multivariate.enabled and len(self.features) >= 2:
            have.add("multivariate")
        if self.segments:
            have.add("segments")
        if self.gradual_columns:
            have.add("gradual_columns")
        return have

    @property
    def gradual_columns(self) -> tuple[str, ...]:
        """The numerical top features: ``no_gradual_drift`` follows each one's mean across windows."""
        return tuple(c for c in self.top_features if c in self.numerical)

    @property
    def estimates_performance(self) -> bool:
        """A probability prediction with labels and a champion: the performance estimator is fitted."""
        return {"prediction", "labels", "probability_prediction"} <= self.capabilities()

    def check_rules(self, asset: str) -> list[CheckRule]:
        """The checks of one asset ("drift_report" or "model_performance") for this monitor, in order."""
        return self.checks.for_asset(asset, self.capabilities())  # type: ignore[arg-type]

    def column_specs(self) -> list[ColumnSpec]:
        specs = [ColumnSpec(c, "numerical") for c in self.numerical]
        specs += [ColumnSpec(c, "categorical") for c in self.categorical]
        if self.prediction:
            kind = "numerical" if self.prediction_kind == "probability" else self.prediction_kind
            specs.append(ColumnSpec(self.prediction, kind, "prediction"))  # type: ignore[arg-type]
        return specs


@dataclass(frozen=True)
class MonitorsFile:
    path: Path
    monitors: dict[str, MonitorConfig]

    def get(self, name: str) -> MonitorConfig:
        if name not in self.monitors:
            raise ConfigError(f"{self.path}: no monitor named {name!r} (have: {', '.join(self.monitors)})")
        return self.monitors[name]

    def __iter__(self):
        return iter(self.monitors.values())


class _Reader:
    """Typed access to one mapping with the path of every field, for error messages."""

    def __init__(self, data: Any, where: str) -> None:
        if not isinstance(data, Mapping):
            raise ConfigError(f"{where}: expected a mapping, got {type(data).__name__}")
        self.data: Mapping[Any, Any] = data
        self.where = where
        self.used: set[str] = set()

    def _get(self, key: str, required: bool, default: Any = None) -> Any:
        self.used.add(key)
        if key not in self.data or self.data[key] is None:
            if required:
                raise ConfigError(f"{self.where}.{key}: required field is missing")
            return default
        return self.data[key]

    def text(self, key: str, default: str | None = None) -> str:
        """A string field: required, unless a ``default`` is given for when it is absent."""
        value = self._get(key, default is None, default)
        if not isinstance(value, str):
            raise ConfigError(f"{self.where}.{key}: expected a string, got {value!r}")
        return value

    def optional_text(self, key: str) -> str | None:
        value = self._get(key, False)
        if value is not None and not isinstance(value, str):
            raise ConfigError(f"{self.where}.{key}: expected a string, got {value!r}")
        return value

    def number(self, key: str, default: float) -> float:
        value = self._get(key, False, default)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{self.where}.{key}: expected a number, got {value!r}")
        return float(value)

    def bounded(self, key: str, default: float, low: float | None = None, high: float | None = None, **open_) -> float:
        value = self.number(key, default)
        _check_range(value, f"{self.where}.{key}", low, high, **open_)
        return value

    def integer(self, key: str, default: int, minimum: int | None = None) -> int:
        value = self._get(key, False, default)
        if isinstance(value, bool) or not (isinstance(value, int) or (isinstance(value, float) and value.is_integer())):
            raise ConfigError(f"{self.where}.{key}: expected a whole number, got {value!r}")
        value = int(value)
        if minimum is not None and value < minimum:
            raise ConfigError(f"{self.where}.{key}: must be at least {minimum}, got {value}")
        return value

    def flag(self, key: str, default: bool) -> bool:
        value = self._get(key, False, default)
        if not isinstance(value, bool):
            raise ConfigError(f"{self.where}.{key}: expected true or false, got {value!r}")
        return value

    def names(self, key: str, required: bool = False) -> tuple[str, ...]:
        value = self._get(key, required, [])
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise ConfigError(f"{self.where}.{key}: expected a list of column names, got {value!r}")
        return tuple(value)

    def datetime(self, key: str) -> dt.datetime:
        return self._to_datetime(key, self._get(key, True))

    def optional_datetime(self, key: str) -> dt.datetime | None:
        value = self._get(key, False)
        return None if value is None else self._to_datetime(key, value)

    def _to_datetime(self, key: str, value: Any) -> dt.datetime:
        if isinstance(value, dt.datetime):
            return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
        if isinstance(value, dt.date):
            return dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC)
        try:
            return parse_timestamp(str(value), where=f"{self.where}.{key}")
        except ValueError as exc:
            raise ConfigError(f"{self.where}.{key}: expected a date (YYYY-MM-DD), got {value!r}") from exc

    def sub(self, key: str) -> _Reader | None:
        value = self._get(key, False)
        return None if value is None else _Reader(value, f"{self.where}.{key}")

    def required_sub(self, key: str) -> _Reader:
        return _Reader(self._get(key, True), f"{self.where}.{key}")

    def reject_unknown(self, extra_allowed: AbstractSet[str] = frozenset()) -> None:
        unknown = set(self.data) - self.used - extra_allowed
        if unknown:
            raise ConfigError(f"{self.where}: unknown field(s) {sorted(unknown)}")


def _parse_window(r: _Reader, where: str) -> tuple[str, dt.datetime, dt.datetime | None]:
    cadence = r.text("cadence")
    if cadence not in CADENCES:
        raise ConfigError(f"{where}.cadence: expected one of {CADENCES}, got {cadence!r}")
    start, end = r.datetime("start"), r.optional_datetime("end")
    if cadence == "weekly" and start.weekday() != 0:
        raise ConfigError(f"{where}.start: weekly windows start on Mondays; {start.date()} is a {start:%A}")
    if end is not None and end <= start:
        raise ConfigError(f"{where}.end: must be after start")
    return cadence, start, end


def _parse_features(r: _Reader, where: str) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    features = r.required_sub("features")
    numerical, categorical = features.names("numerical"), features.names("categorical")
    if not numerical and not categorical:
        raise ConfigError(f"{where}.features: declare at least one numerical or categorical feature")
    overlap = set(numerical) & set(categorical)
    if overlap:
        raise ConfigError(f"{where}.features: {sorted(overlap)} declared both numerical and categorical")
    top = features.names("top") or numerical + categorical
    unknown_top = [t for t in top if t not in numerical + categorical]
    if unknown_top:
        raise ConfigError(f"{where}.features.top: {unknown_top} are not declared features")
    features.reject_unknown()
    return numerical, categorical, top


def _parse_labels(r: _Reader) -> LabelsConfig | None:
    target = r.sub("target")
    if target is None:
        return None
    location, source = _parse_source(target, "labels", target.where, windowed=False)
    labels = LabelsConfig(
        column=target.text("column"),
        location=location,
        delay_days=target.bounded("delay_days", 0.0, low=0),
        id_column=target.text("id_column", default="id"),
        source=source,
        arrived_column=target.text("arrived_column", default="arrived"),
    )
    target.reject_unknown()
    return labels


def _parse_retraining(r: _Reader) -> RetrainingConfig:
    defaults = RetrainingConfig()
    rt = r.sub("retraining")
    if rt is None:
        return defaults
    retraining = RetrainingConfig(
        enabled=rt.flag("enabled", True),
        on_checks=rt.names("on_checks") or defaults.on_checks,
        cooldown_hours=rt.bounded("cooldown_hours", 0.0, low=0),
        min_auc_gain=rt.bounded("min_auc_gain", 0.0, low=-1, high=1),
        holdout_weeks=rt.integer("holdout_weeks", 2, minimum=1),
        require_performance_impact=rt.flag("require_performance_impact", False),
    )
    rt.reject_unknown()
    return retraining


def _parse_derived(r: _Reader, where: str, features: tuple[str, ...]) -> tuple[DerivedColumn, ...]:
    derived: list[DerivedColumn] = []
    for i, item in enumerate(r._get("derived", False, []) or []):
        d = _Reader(item, f"{where}.derived[{i}]")
        column = DerivedColumn(
            d.text("name"), d.text("function"), d.text("source"), dict(d._get("options", False, {}) or {})
        )
        d.reject_unknown()
        if column.function not in DERIVED_FUNCTIONS:
            raise ConfigError(
                f"{where}.derived[{i}].function: unknown {column.function!r}; have {sorted(DERIVED_FUNCTIONS)}"
            )
        if column.name not in features:
            raise ConfigError(f"{where}.derived[{i}].name: {column.name!r} must also be declared under features")
        if column.function == "matches_any":
            _check_patterns(column.options.get("patterns"), f"{where}.derived[{i}].options.patterns")
        derived.append(column)
    return tuple(derived)


def _check_patterns(patterns: Any, where: str) -> None:
    """Every pattern compiles now, at load, rather than as a raw re.error in the middle of a run."""
    if not isinstance(patterns, list) or not patterns or not all(isinstance(p, str) and p for p in patterns):
        raise ConfigError(f"{where}: matches_any needs a list of regular expressions, got {patterns!r}")
    for j, pattern in enumerate(patterns):
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ConfigError(f"{where}[{j}]: invalid regular expression {pattern!r}: {exc}") from exc


def _parse_sudden_change(
    r: _Reader, where: str, numerical: tuple[str, ...], categorical: tuple[str, ...]
) -> SuddenChangeConfig | None:
    sc = r.sub("sudden_change")
    if sc is None:
        return None
    sudden = SuddenChangeConfig(
        baseline_windows=sc.integer("baseline_windows", 24, minimum=1),
        columns=sc.names("columns"),
        rates=sc.names("rates"),
        psi=sc.bounded("psi", 0.25, low=0, low_open=True),
        rate_alpha=sc.bounded("rate_alpha", 0.001, low=0, high=1, low_open=True, high_open=True),
        min_rate_change=sc.bounded("min_rate_change", 0.05, low=0, high=1),
        min_rows=sc.integer("min_rows", 20, minimum=1),
        rate_direction=sc.text("rate_direction", default="increase"),
    )
    where = f"{where}.sudden_change"
    if sudden.rate_direction not in ("increase", "decrease", "both"):
        raise ConfigError(f"{where}.rate_direction: expected increase, decrease or both, got {sudden.rate_direction!r}")
    sc.reject_unknown()
    if sudden.baseline_windows < 1:
        raise ConfigError(f"{where}.baseline_windows: must be at least 1")
    for col in sudden.columns:
        if col not in numerical:
            raise ConfigError(f"{where}.columns: {col!r} is not a numerical feature")
    for col in sudden.rates:
        if col not in categorical:
            raise ConfigError(f"{where}.rates: {col!r} is not a categorical (yes/no) feature")
    return sudden


def _parse_multivariate(r: _Reader, where: str) -> MultivariateConfig:
    mv = r.sub("multivariate")
    if mv is None:
        return MultivariateConfig()
    sample_rows = mv.number("sample_rows", DEFAULT_MAX_EVALUATED_ROWS)
    config = MultivariateConfig(
        enabled=mv.flag("enabled", True),
        domain_classifier=mv.flag("domain_classifier", False),
        sample_rows=int(sample_rows),
    )
    mv.reject_unknown()
    if sample_rows != int(sample_rows) or sample_rows < MIN_HALF_ROWS:
        raise ConfigError(
            f"{where}.multivariate.sample_rows: expected a whole number >= {MIN_HALF_ROWS}, got {sample_rows:g}"
        )
    return config


def _parse_segments(
    r: _Reader, where: str, categorical: tuple[str, ...], model_version_column: str | None
) -> tuple[tuple[str, ...], int]:
    """``segments:`` names categorical features (or the model-version column); ``min_segment_rows``."""
    segments = r.names("segments")
    allowed = categorical + ((model_version_column,) if model_version_column else ())
    for column in segments:
        if column not in allowed:
            raise ConfigError(
                f"{where}.segments: {column!r} is not a categorical feature or the model_version_column"
                f" (segments are values of a categorical column; have {list(allowed)})"
            )
    if len(set(segments)) != len(segments):
        raise ConfigError(f"{where}.segments: a column is listed twice")
    min_rows = r.number("min_segment_rows", DEFAULT_MIN_SEGMENT_ROWS)
    if min_rows != int(min_rows) or min_rows < 1:
        raise ConfigError(f"{where}.min_segment_rows: expected a whole number >= 1, got {min_rows:g}")
    return segments, int(min_rows)


def _parse_model(r: _Reader, where: str) -> tuple[str | None, float]:
    """``model.registry`` and ``model.threshold`` (the decision threshold, strictly inside (0, 1))."""
    model = r.sub("model")
    if model is None:
        return None, 0.5
    registry = model.optional_text("registry")
    threshold = model.number("threshold", 0.5)
    if not 0.0 < threshold < 1.0:
        raise ConfigError(f"{where}.model.threshold: must be strictly between 0 and 1, got {threshold:g}")
    model.reject_unknown()
    return registry, threshold


def _parse_monitor(name: str, data: Any, where: str) -> MonitorConfig:
    if not NAME_PATTERN.match(name):
        raise ConfigError(f"{where}: monitor names are lower_snake_case (they prefix asset keys), got {name!r}")
    r = _Reader(data, where)
    log, log_source = _parse_source(r, "log", where, windowed=True)
    reference, reference_source = _parse_source(r, "reference", where, windowed=False)
    cadence, start, end = _parse_window(r, where)
    numerical, categorical, top = _parse_features(r, where)
    prediction = r.optional_text("prediction")
    prediction_kind = r.text("prediction_kind", default="numerical")
    if prediction_kind not in ("numerical", "categorical", "probability"):
        raise ConfigError(
            f"{where}.prediction_kind: expected numerical, categorical or probability, got {prediction_kind!r}"
        )
    registry, decision_threshold = _parse_model(r, where)
    labels = _parse_labels(r)
    model_version_column = r.optional_text("model_version_column")
    segments, min_segment_rows = _parse_segments(r, where, categorical, model_version_column)
    try:
        rules = DecisionRules.from_mapping(
            r._get("thresholds", False, {}),
            f"{where}.thresholds",
            columns=numerical + categorical + ((prediction,) if prediction else ()),
        )
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    psi_bins = r.integer("psi_bins", DEFAULT_PSI_BINS, minimum=2)
    if DEFAULT_SKETCH_RESOLUTION % psi_bins:
        raise ConfigError(
            f"{where}.psi_bins: must divide {DEFAULT_SKETCH_RESOLUTION} (PSI bins are unions of the"
            f" {DEFAULT_SKETCH_RESOLUTION} sketch bins), got {psi_bins}"
        )
    monitor = MonitorConfig(
        name=name,
        description=r.text("description", default=""),
        cadence=cadence,
        start=start,
        end=end,
        reference=reference,
        log=log,
        timestamp_column=r.text("timestamp_column", default="timestamp"),
        model_version_column=model_version_column,
        numerical=numerical,
        categorical=categorical,
        top_features=top,
        prediction=prediction,
        prediction_kind=prediction_kind,
        labels=labels,
        model_registry=registry,
        rules=rules,
        retraining=_parse_retraining(r),
        psi_bins=psi_bins,
        min_reference_rows=_positive_int(r.number("min_reference_rows", DEFAULT_MIN_REFERENCE_ROWS), where),
        derived=_parse_derived(r, where, numerical + categorical),
        sudden_change=_parse_sudden_change(r, where, numerical, categorical),
        segments=segments,
        min_segment_rows=min_segment_rows,
        multivariate=_parse_multivariate(r, where),
        extra=_parse_extra(r, where),
        decision_threshold=decision_threshold,
        log_source=log_source,
        reference_source=reference_source,
    )
    r.reject_unknown()
    return monitor


def _parse_source(r: _Reader, key: str, where: str, *, windowed: bool) -> tuple[str, SourceSpec | None]:
    """``log:`` / ``reference:``: a path under the data root, or a source mapping (``source_config``)."""
    try:
        return parse_source(r._get(key, True), f"{where}.{key}", windowed=windowed)
    except SourceConfigError as exc:
        raise ConfigError(str(exc)) from None


# ``extra.html_report`` -> the evidently_report policy (orchestration/report_asset.py documents them).
HTML_REPORT_POLICIES: dict[Any, str] = {
    True: "always",
    False: "never",
    "on_failure": "on_failure",
    "on_new_failure": "on_new_failure",
}
DEFAULT_HTML_REPORT = "on_failure"


def _parse_extra(r: _Reader, where: str) -> dict[str, Any]:
    """``extra``: free-form, except ``html_report``, refused here (the definitions load) when unknown."""
    extra = r._get("extra", False, {}) or {}
    if not isinstance(extra, Mapping):
        raise ConfigError(f"{where}.extra: expected a mapping, got {extra!r}")
    setting = extra.get("html_report", DEFAULT_HTML_REPORT)
    # bool first: 1 == True would otherwise pass as ``true``.
    if not isinstance(setting, bool | str) or setting not in HTML_REPORT_POLICIES:
        raise ConfigError(
            f"{where}.extra.html_report: expected true, false, on_failure or on_new_failure, got {setting!r}"
        )
    return dict(extra)


def _positive_int(value: float, where: str) -> int:
    if value != int(value) or value < 1:
        raise ConfigError(f"{where}.min_reference_rows: expected a whole number of at least 1, got {value!r}")
    return int(value)


def parse_monitors(data: Any, path: Path) -> MonitorsFile:
    where = str(path.name)
    top = _Reader(data, where)
    entries = top._get("monitors", True)
    if not isinstance(entries, Mapping) or not entries:
        raise ConfigError(f"{where}.monitors: expected a mapping of monitor name to settings")
    top.reject_unknown()
    monitors = {
        str(name): _parse_monitor(str(name), body, f"{where}: monitors.{name}") for name, body in entries.items()
    }
    return MonitorsFile(path, monitors)


def check_reference_files(monitors: MonitorsFile, data_root: str | Path) -> None:
    """Each monitor's configured ``reference`` exists under a local data root, once the monitor has
    data (its log exists): a fresh checkout still loads before ``drift-assets simulate``, and a
    missing reference is not hidden by a champion that brought its own (rollback to the initial
    model needs it). S3 roots are not checked here: loading definitions makes no network calls
    (an unreachable endpoint would take the code location down); there the ``reference_data``
    asset fails naming the key."""
    root = Path(data_root)
    for monitor in monitors:
        if monitor.reference_source is not None:
            continue  # a database table is not a file: reference_data names what is missing
        if (root / monitor.log).exists() and not (root / monitor.reference).exists():
            raise ConfigError(
                f"{monitors.path.name}: monitors.{monitor.name}.reference: {monitor.reference!r} does not exist"
                f" under the data root {root} (its log {monitor.log!r} does)"
            )


def load_monitors(path: str | Path | None = None) -> MonitorsFile:
    path = Path(path) if path else default_monitors_file()
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read monitors file: {exc.strerror}") from exc
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    return parse_monitors(data, path)
