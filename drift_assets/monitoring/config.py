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
from drift_assets.monitoring.timestamps import parse_timestamp
from drift_assets.stats import ColumnSpec, DecisionRules
from drift_assets.stats.checks import DEFAULT_CHECKS, CheckRule, CheckTable
from drift_assets.stats.multivariate import DEFAULT_MAX_EVALUATED_ROWS, MIN_HALF_ROWS
from drift_assets.stats.profile import DEFAULT_PSI_BINS
from drift_assets.stats.rules import FEATURE_PSI_ERROR, PREDICTION_NO_DRIFT
from drift_assets.stats.segments import DEFAULT_MIN_SEGMENT_ROWS

PROJECT_ROOT = Path(__file__).resolve().parents[2]
CADENCES = ("hourly", "daily", "weekly")
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]*$")


class ConfigError(ValueError):
    """The monitors file is malformed; the message names the entry and field."""


def default_monitors_file() -> Path:
    return Path(os.environ.get("DRIFT_ASSETS_MONITORS", PROJECT_ROOT / "monitors.yaml"))


@dataclass(frozen=True)
class LabelsConfig:
    column: str
    location: str
    delay_days: float
    id_column: str


@dataclass(frozen=True)
class RetrainingConfig:
    enabled: bool = True
    # ERROR checks whose failure triggers retraining (the seed's "PSI > 0.25" and prediction drift).
    on_checks: tuple[str, ...] = (FEATURE_PSI_ERROR, PREDICTION_NO_DRIFT)
    cooldown_hours: float = 0.0
    # The challenger must beat the champion's AUC by more than this (0: strictly better).
    min_auc_gain: float = 0.0
    holdout_weeks: int = 2


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
    prediction_kind: str
    labels: LabelsConfig | None
    model_registry: str | None
    rules: DecisionRules
    retraining: RetrainingConfig
    psi_bins: int = DEFAULT_PSI_BINS
    derived: tuple[DerivedColumn, ...] = ()
    sudden_change: SuddenChangeConfig | None = None
    # Categorical columns whose values are evaluated as segments (``channel=web``).
    segments: tuple[str, ...] = ()
    min_segment_rows: int = DEFAULT_MIN_SEGMENT_ROWS
    multivariate: MultivariateConfig = field(default_factory=MultivariateConfig)
    extra: Mapping[str, Any] = field(default_factory=dict)
    # The check registry this monitor is evaluated with (tests extend it; users extend it in code).
    checks: CheckTable = DEFAULT_CHECKS

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
        if self.sudden_change is not None:
            have |= {"sudden_columns"} if self.sudden_change.columns else set()
            have |= {"sudden_rates"} if self.sudden_change.rates else set()
        if self.multivariate.enabled and len(self.features) >= 2:
            have.add("multivariate")
        if self.segments:
            have.add("segments")
        return have

    def check_rules(self, asset: str) -> list[CheckRule]:
        """The checks of one asset ("drift_report" or "model_performance") for this monitor, in order."""
        return self.checks.for_asset(asset, self.capabilities())  # type: ignore[arg-type]

    def column_specs(self) -> list[ColumnSpec]:
        specs = [ColumnSpec(c, "numerical") for c in self.numerical]
        specs += [ColumnSpec(c, "categorical") for c in self.categorical]
        if self.prediction:
            specs.append(ColumnSpec(self.prediction, self.prediction_kind, "prediction"))  # type: ignore[arg-type]
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
    labels = LabelsConfig(
        column=target.text("column"),
        location=target.text("labels"),
        delay_days=target.number("delay_days", 0.0),
        id_column=target.text("id_column", default="id"),
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
        cooldown_hours=rt.number("cooldown_hours", 0.0),
        min_auc_gain=rt.number("min_auc_gain", 0.0),
        holdout_weeks=int(rt.number("holdout_weeks", 2)),
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
        if column.function == "matches_any" and not column.options.get("patterns"):
            raise ConfigError(f"{where}.derived[{i}].options.patterns: matches_any needs a list of patterns")
        derived.append(column)
    return tuple(derived)


def _parse_sudden_change(
    r: _Reader, where: str, numerical: tuple[str, ...], categorical: tuple[str, ...]
) -> SuddenChangeConfig | None:
    sc = r.sub("sudden_change")
    if sc is None:
        return None
    sudden = SuddenChangeConfig(
        baseline_windows=int(sc.number("baseline_windows", 24)),
        columns=sc.names("columns"),
        rates=sc.names("rates"),
        psi=sc.number("psi", 0.25),
        rate_alpha=sc.number("rate_alpha", 0.001),
        min_rate_change=sc.number("min_rate_change", 0.05),
        min_rows=int(sc.number("min_rows", 20)),
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


def _parse_model_registry(r: _Reader) -> str | None:
    model = r.sub("model")
    if model is None:
        return None
    registry = model.optional_text("registry")
    model.reject_unknown()
    return registry


def _parse_monitor(name: str, data: Any, where: str) -> MonitorConfig:
    if not NAME_PATTERN.match(name):
        raise ConfigError(f"{where}: monitor names are lower_snake_case (they prefix asset keys), got {name!r}")
    r = _Reader(data, where)
    cadence, start, end = _parse_window(r, where)
    numerical, categorical, top = _parse_features(r, where)
    prediction = r.optional_text("prediction")
    prediction_kind = r.text("prediction_kind", default="numerical")
    if prediction_kind not in ("numerical", "categorical"):
        raise ConfigError(f"{where}.prediction_kind: expected numerical or categorical, got {prediction_kind!r}")
    labels = _parse_labels(r)
    model_version_column = r.optional_text("model_version_column")
    segments, min_segment_rows = _parse_segments(r, where, categorical, model_version_column)
    try:
        rules = DecisionRules.from_mapping(r._get("thresholds", False, {}), f"{where}.thresholds")
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    monitor = MonitorConfig(
        name=name,
        description=r.text("description", default=""),
        cadence=cadence,
        start=start,
        end=end,
        reference=r.text("reference"),
        log=r.text("log"),
        timestamp_column=r.text("timestamp_column", default="timestamp"),
        model_version_column=model_version_column,
        numerical=numerical,
        categorical=categorical,
        top_features=top,
        prediction=prediction,
        prediction_kind=prediction_kind,
        labels=labels,
        model_registry=_parse_model_registry(r),
        rules=rules,
        retraining=_parse_retraining(r),
        psi_bins=int(r.number("psi_bins", DEFAULT_PSI_BINS)),
        derived=_parse_derived(r, where, numerical + categorical),
        sudden_change=_parse_sudden_change(r, where, numerical, categorical),
        segments=segments,
        min_segment_rows=min_segment_rows,
        multivariate=_parse_multivariate(r, where),
        extra=dict(r._get("extra", False, {}) or {}),
    )
    r.reject_unknown()
    return monitor


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


def load_monitors(path: str | Path | None = None) -> MonitorsFile:
    path = Path(path) if path else default_monitors_file()
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read monitors file: {exc.strerror}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    return parse_monitors(data, path)
