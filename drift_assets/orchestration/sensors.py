"""The retraining sensor: one per monitor with retraining enabled.

Check results are read with :class:`drift_assets.orchestration.check_feed.CheckExecutionFeed`.

Retraining trigger semantics (``evaluate_retraining``), per monitor, per tick:

* candidates are executions of the monitor's ``retraining.on_checks`` (on ``drift_report`` or
  ``model_performance``) with status FAILED and evaluation severity ERROR. Passed, WARN and
  never-evaluated executions (their run ended first) are consumed silently;
* one retraining per (window, materialisation run): every failed check of that run for that window
  is one trigger. ``run_key = retrain:<monitor>:<window>:<run id>``, so a window that fails again
  in a new run triggers again, and the daemon drops a request it already launched even if the
  cursor was lost;
* a trigger waits until its materialisation run has finished (all its checks are in);
* a failure is superseded (consumed without retraining) by a later completed evaluation of the same
  check and window: the later result is the window's state. It is stale (consumed without
  retraining) when its run started before the current champion was promoted: it measured a model
  that no longer serves; and when the window was served by other model versions than the current
  champion (``served_by`` in the check's metadata: a backfill of a week older than the champion,
  evaluated after its promotion), since retraining for it would answer traffic the champion never
  served;
* with ``retraining.require_performance_impact: true`` a trigger made only of drift checks retrains
  only when the same window's ``auc_not_below_champion`` or ``estimated_auc_not_below_champion``
  (latest evaluation) failed too; otherwise it is consumed as "drift without performance impact"
  (left for the next tick while that window's model_performance is still running). Default: off,
  the design document's matrix (a drift ERROR alone retrains);
* at most one retraining per monitor at a time: while a run tagged ``drift_assets/retraining=<monitor>``
  is queued or running, and during ``retraining.cooldown_hours`` after the last one started, the tick
  is skipped and the cursor is left as it was, so nothing is lost. One retraining is requested per
  tick (the oldest pending trigger); the next one waits for it;
* a retraining run the instance still counts as running (STARTED) whose run worker process is gone
  (``kill -9``, OOM, a crashed host process: the worker recorded in ``drift_assets/run_worker`` no
  longer runs on this host) is failed by the sensor (``drift_assets/worker_lost`` says why), which
  frees the one-retraining slot. A retraining run that ended that way, or was failed by Dagster's
  run monitoring for a start timeout or an unexpected termination, has its trigger requested again
  (``drift_assets/retry_of`` = the lost run; at most ``MAX_ATTEMPTS_PER_TRIGGER`` runs per trigger,
  and not when a champion was promoted after the trigger's evaluation). Such a lost run does not
  start the cool-down. Run monitoring itself (``dagster.yaml``) cannot see a dead worker of the
  default run launcher (it has no worker health check); it ends runs that never start, that hang
  while canceling, and retraining runs older than their ``dagster/max_runtime`` tag;
* when the registry's champion differs from the last materialised ``<monitor>/champion_model``
  (after a promotion, a rollback or a manual promotion), the monitor's reference assets
  (``reference_data``, ``reference_profile``, ``champion_model``) are requested once
  (``run_key = reference:<monitor>:<version>:<promoted_at>``), so the next window is measured
  against the new champion's reference. A monitor whose champion_model was never materialised is
  left to its reference job.

The sensors start stopped, like the schedules: turn them on in the UI (``make dev``).
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from dagster import (
    AssetCheckKey,
    AssetCheckSeverity,
    AssetSelection,
    DagsterRunStatus,
    RunRequest,
    RunsFilter,
    SensorEvaluationContext,
    SensorResult,
    sensor,
)
from dagster._core.event_api import PartitionKeyFilter
from dagster._core.storage.asset_check_execution_record import (
    AssetCheckExecutionRecord,
    AssetCheckExecutionRecordStatus,
)

from drift_assets.monitoring.config import ConfigError, MonitorConfig
from drift_assets.monitoring.registry import ModelRegistry, registry_of, version_name
from drift_assets.monitoring.timestamps import parse_timestamp
from drift_assets.orchestration.check_feed import (
    IN_FLIGHT,
    CheckExecutionFeed,
    check_key_id,
)
from drift_assets.orchestration.keys import (
    IN_PROCESS_RUN_CONFIG,
    MAX_RUNTIME_TAG,
    REFERENCE_REFRESH_TAG,
    RETRAINING_MAX_RUNTIME_SECONDS,
    RETRAINING_TAG,
    RETRY_OF_TAG,
    TRIGGER_CHECK_TAG,
    TRIGGER_PARTITION_TAG,
    TRIGGER_RUN_TAG,
    WORKER_LOST_TAG,
    MonitorKeys,
)
from drift_assets.orchestration.resources import StorageResource
from drift_assets.orchestration.run_watchdog import fail_lost_run, lost_worker_reason
from drift_assets.retraining.attempt import retraining_supported

#: Runs per trigger (the first and its retries after lost workers) before the sensor gives up.
MAX_ATTEMPTS_PER_TRIGGER = 3
#: Dagster failure reasons (``dagster/failure_reason``) of a run that never got to do its work.
RETRIABLE_FAILURE_REASONS = frozenset({"START_TIMEOUT", "UNEXPECTED_TERMINATION", "RUN_WORKER_RESTART"})
FAILURE_REASON_TAG = "dagster/failure_reason"

# --------------------------------------------------------------------------------------------
# Retraining trigger
# --------------------------------------------------------------------------------------------


def retraining_sensor_name(monitor: MonitorConfig) -> str:
    return f"{monitor.name}_retraining_sensor"


def retraining_check_keys(monitor: MonitorConfig) -> list[AssetCheckKey]:
    """The check keys of ``retraining.on_checks``; unknown names fail at load time."""
    keys = MonitorKeys(monitor.name)
    available = {
        rule.name: AssetCheckKey(asset_key, rule.name)
        for asset_key, asset in ((keys.drift_report, "drift_report"), (keys.model_performance, "model_performance"))
        for rule in monitor.check_rules(asset)
    }
    unknown = [name for name in monitor.retraining.on_checks if name not in available]
    if unknown:
        raise ConfigError(
            f"monitors.{monitor.name}.retraining.on_checks: no check {unknown[0]!r} on this monitor "
            f"(available: {', '.join(available)})"
        )
    return [available[name] for name in monitor.retraining.on_checks]


@dataclass
class TriggerEvaluation:
    run_requests: list[RunRequest]
    cursor: str
    skip_reason: str | None
    notes: list[str]
    # Failed ERROR evaluations consumed without retraining: (check, partition, run id, why).
    dropped: list[tuple[str, str, str, str]] = field(default_factory=list)


@dataclass
class _Trigger:
    partition: str
    run_id: str
    records: list[tuple[AssetCheckKey, AssetCheckExecutionRecord]]

    @property
    def first_id(self) -> int:
        return min(rec.id for _, rec in self.records)

    @property
    def checks(self) -> list[str]:
        return sorted({key.name for key, _ in self.records})


def evaluate_retraining(
    instance, monitor: MonitorConfig, cursor: str | None, *, registry: ModelRegistry | None, now: float | None = None
) -> TriggerEvaluation:
    """One tick of the retraining sensor (see the module docstring). Reads, but for failing a
    retraining run whose worker is gone."""
    now = time.time() if now is None else now
    notes: list[str] = []
    requests: list[RunRequest] = []
    pointer = _champion_pointer(registry, notes)

    refresh = _reference_refresh(instance, monitor, pointer, notes)
    if refresh is not None:
        requests.append(refresh)

    busy = _busy_reason(instance, monitor, now, notes)
    if busy is not None:
        return TriggerEvaluation(requests, cursor or _empty_cursor(), busy, notes)

    promoted_at = _timestamp(pointer.get("promoted_at")) if pointer else None
    runs = _RunCache(instance)
    retry = _retry_of_lost_run(instance, monitor, runs, promoted_at, notes)
    if retry is not None:  # before new triggers; the cursor is untouched, so nothing is lost
        return TriggerEvaluation([*requests, retry], cursor or _empty_cursor(), None, notes)

    feed = CheckExecutionFeed(instance, retraining_check_keys(monitor), cursor)
    champion = (pointer.get("name") or version_name(int(pointer["version"]))) if pointer else None
    dropped: list[tuple[str, str, str, str]] = []
    triggers: dict[tuple[str, str], _Trigger] = {}
    for key in feed.keys:
        records = feed.records(key)
        for rec in feed.unconsumed(key):
            verdict = _classify(rec, records, runs, promoted_at, champion)
            if verdict == "wait":
                continue
            if verdict != "trigger":
                feed.consume(key, rec.id)
                if verdict not in ("passed", "not evaluated", "WARN"):
                    dropped.append((key.name, rec.partition, rec.run_id, verdict))
                    notes.append(
                        f"{check_key_id(key)} {rec.partition} (run {rec.run_id[:8]}): {verdict}, no retraining"
                    )
                continue
            trigger = triggers.setdefault((rec.partition, rec.run_id), _Trigger(rec.partition, rec.run_id, []))
            trigger.records.append((key, rec))

    if monitor.retraining.require_performance_impact:
        _require_impact(instance, monitor, feed, triggers, runs, dropped, notes)
    pending = sorted(triggers.values(), key=lambda t: t.first_id)
    skip = None
    if pending:
        trigger = pending[0]
        for key, rec in trigger.records:
            feed.consume(key, rec.id)
        requests.append(_retraining_request(monitor, trigger))
        notes.append(
            f"retraining {monitor.name} for {trigger.partition}: {', '.join(trigger.checks)} failed (ERROR) in "
            f"run {trigger.run_id[:8]}"
            + (f"; {len(pending) - 1} more trigger(s) wait for it" if len(pending) > 1 else "")
        )
    elif not requests:
        skip = f"no new failed ERROR evaluation of {', '.join(monitor.retraining.on_checks)} for {monitor.name}"
    return TriggerEvaluation(requests, feed.cursor(), skip, notes, dropped)


def performance_check_keys(monitor: MonitorConfig) -> list[AssetCheckKey]:
    """The checks that say performance dropped: realized AUC and estimated AUC vs the champion."""
    asset_key = MonitorKeys(monitor.name).model_performance
    return [AssetCheckKey(asset_key, rule.name) for rule in monitor.check_rules("model_performance")]


def performance_impact(instance, monitor: MonitorConfig, partition: str, runs: _RunCache) -> str:
    """'dropped' when the latest evaluation of a performance check for this window failed (ERROR),
    'wait' while one is still running, else 'flat' (no evidence that performance suffered)."""
    verdict = "flat"
    for key in performance_check_keys(monitor):
        history = instance.event_log_storage.get_asset_check_execution_history(
            key, limit=20, partition_filter=PartitionKeyFilter(key=partition)
        )
        for rec in sorted(history, key=lambda r: -r.id):
            if rec.status == AssetCheckExecutionRecordStatus.PLANNED:
                if runs.in_progress(rec.run_id):
                    return "wait"
                continue
            if rec.status == AssetCheckExecutionRecordStatus.FAILED:
                verdict = "dropped"
            break
    return verdict


def _require_impact(
    instance,
    monitor: MonitorConfig,
    feed: CheckExecutionFeed,
    triggers: dict[tuple[str, str], _Trigger],
    runs: _RunCache,
    dropped: list[tuple[str, str, str, str]],
    notes: list[str],
) -> None:
    """``retraining.require_performance_impact``: a drift-only trigger retrains only when the same
    window's estimated or realized AUC check failed too; otherwise it is consumed (drift without
    damage) or, while model_performance is still being evaluated, left for the next tick."""
    performance = {key.name for key in performance_check_keys(monitor)}
    for ident, trigger in list(triggers.items()):
        if performance & set(trigger.checks):
            continue
        impact = performance_impact(instance, monitor, trigger.partition, runs)
        if impact == "dropped":
            continue
        del triggers[ident]
        if impact == "wait":
            continue
        why = "drift without performance impact (estimated and realized AUC checks passed or not evaluated)"
        for key, rec in trigger.records:
            feed.consume(key, rec.id)
            dropped.append((key.name, rec.partition, rec.run_id, why))
        notes.append(f"{monitor.name} {trigger.partition}: {', '.join(trigger.checks)} failed, {why}: no retraining")


def _busy_reason(instance, monitor: MonitorConfig, now: float, notes: list[str]) -> str | None:
    """Why no retraining may start now: one is queued or running, or the cool-down has not passed.
    A STARTED run whose worker is gone is failed here instead (see ``_fail_if_worker_lost``)."""
    in_flight = instance.get_run_records(
        filters=RunsFilter(tags={RETRAINING_TAG: monitor.name}, statuses=IN_FLIGHT), limit=20
    )
    for record in in_flight:
        run = record.dagster_run
        if _fail_if_worker_lost(instance, run, notes):
            continue
        return f"retraining run {run.run_id} for {monitor.name} is {run.status.value.lower()}; new triggers wait for it"
    cooldown = monitor.retraining.cooldown_hours * 3600.0
    if cooldown <= 0:
        return None
    recent = instance.get_run_records(filters=RunsFilter(tags={RETRAINING_TAG: monitor.name}), limit=20)
    last = [r for r in recent if WORKER_LOST_TAG not in r.dagster_run.tags][:1]  # a lost run did nothing
    if not last:
        return None
    started = last[0].start_time or last[0].create_timestamp.timestamp()
    if now - started >= cooldown:
        return None
    until = dt.datetime.fromtimestamp(started + cooldown, dt.UTC).isoformat(timespec="seconds")
    hours = monitor.retraining.cooldown_hours
    return f"{monitor.name}: cool-down of {hours:g} h after the last retraining, until {until}"


def _fail_if_worker_lost(instance, run, notes: list[str]) -> bool:
    """Fail a STARTED run whose worker process is known to be gone (``run_watchdog``)."""
    why = lost_worker_reason(instance, run)
    if why is None:
        return False  # no record, another host or alive: the instance's word stands
    fail_lost_run(instance, run, why, "retraining sensor")
    notes.append(f"retraining run {run.run_id[:8]} failed: {why}; its trigger is requested again")
    return True


def _retry_of_lost_run(
    instance, monitor: MonitorConfig, runs: _RunCache, promoted_at: float | None, notes: list[str]
) -> RunRequest | None:
    """The trigger of the oldest retraining run that ended without doing its work (worker lost,
    start timeout...) and has no retry yet, requested again."""
    ended = instance.get_run_records(
        filters=RunsFilter(
            tags={RETRAINING_TAG: monitor.name}, statuses=[DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED]
        ),
        limit=20,
    )
    for record in reversed(ended):  # oldest first
        run = record.dagster_run
        why = run.tags.get(WORKER_LOST_TAG) or (
            run.tags.get(FAILURE_REASON_TAG) if run.tags.get(FAILURE_REASON_TAG) in RETRIABLE_FAILURE_REASONS else None
        )
        partition = run.tags.get(TRIGGER_PARTITION_TAG) or run.tags.get("dagster/partition")
        if not why or not partition or instance.get_run_records(RunsFilter(tags={RETRY_OF_TAG: run.run_id}), limit=1):
            continue
        trigger_run = run.tags.get(TRIGGER_RUN_TAG, "")
        same = {RETRAINING_TAG: monitor.name, TRIGGER_PARTITION_TAG: partition, TRIGGER_RUN_TAG: trigger_run}
        attempts = len(instance.get_run_records(RunsFilter(tags=same), limit=MAX_ATTEMPTS_PER_TRIGGER + 1))
        evaluated = runs.started(trigger_run) if trigger_run else None
        evaluated = evaluated or record.start_time or record.create_timestamp.timestamp()
        if attempts >= MAX_ATTEMPTS_PER_TRIGGER:
            notes.append(f"{monitor.name} {partition}: {attempts} retraining runs lost their worker; not retrying")
        elif promoted_at is not None and evaluated < promoted_at:
            notes.append(
                f"{monitor.name} {partition}: lost run {run.run_id[:8]} is stale (a champion was promoted since)"
            )
        else:
            notes.append(f"retraining {monitor.name} for {partition} again: run {run.run_id[:8]} ended ({why})")
            return RunRequest(
                run_key=f"retrain:{monitor.name}:{partition}:{trigger_run}:retry-of:{run.run_id}",
                asset_selection=[MonitorKeys(monitor.name).retrained_model],
                partition_key=partition,
                run_config=IN_PROCESS_RUN_CONFIG,
                tags={
                    **_retraining_tags(monitor),
                    TRIGGER_CHECK_TAG: run.tags.get(TRIGGER_CHECK_TAG, "manual"),
                    TRIGGER_PARTITION_TAG: partition,
                    TRIGGER_RUN_TAG: trigger_run,
                    RETRY_OF_TAG: run.run_id,
                },
            )
    return None


def _retraining_tags(monitor: MonitorConfig) -> dict[str, str]:
    return {RETRAINING_TAG: monitor.name, MAX_RUNTIME_TAG: str(RETRAINING_MAX_RUNTIME_SECONDS)}


def _retraining_request(monitor: MonitorConfig, trigger: _Trigger) -> RunRequest:
    # run_key per (window, materialisation run): the daemon drops a request it already launched.
    return RunRequest(
        run_key=f"retrain:{monitor.name}:{trigger.partition}:{trigger.run_id}",
        asset_selection=[MonitorKeys(monitor.name).retrained_model],
        partition_key=trigger.partition,
        run_config=IN_PROCESS_RUN_CONFIG,  # the step runs in the run worker (see keys.WORKER_TAG)
        tags={
            **_retraining_tags(monitor),
            TRIGGER_CHECK_TAG: ",".join(trigger.checks),
            TRIGGER_PARTITION_TAG: trigger.partition,
            TRIGGER_RUN_TAG: trigger.run_id,
        },
    )


def _classify(
    rec: AssetCheckExecutionRecord,
    records: list[AssetCheckExecutionRecord],
    runs: _RunCache,
    promoted_at: float | None,
    champion: str | None = None,
) -> str:
    """'trigger', 'wait' (undecided: leave unconsumed), or why the record is consumed."""
    if rec.status == AssetCheckExecutionRecordStatus.PLANNED:
        return "wait" if runs.in_progress(rec.run_id) else "not evaluated"
    if rec.status == AssetCheckExecutionRecordStatus.SUCCEEDED:
        return "passed"
    evaluation = rec.evaluation
    if evaluation is not None and evaluation.severity != AssetCheckSeverity.ERROR:
        return "WARN"
    if rec.partition is None:
        return "failed without a partition"
    later = [o for o in records if o.id > rec.id and o.partition == rec.partition]
    if any(o.status != AssetCheckExecutionRecordStatus.PLANNED for o in later):
        return "superseded by a later evaluation of the same window"
    if any(runs.in_progress(o.run_id) for o in later) or runs.in_progress(rec.run_id):
        return "wait"
    started = runs.started(rec.run_id) or rec.create_timestamp
    if promoted_at is not None and started < promoted_at:
        return "stale (evaluated before the current champion was promoted)"
    served = _served_by(evaluation)
    if champion and served and champion not in served:
        return f"stale (window served by {', '.join(sorted(served))}, older than the current champion {champion})"
    return "trigger"


def _served_by(evaluation) -> set[str]:
    value = (evaluation.metadata or {}).get("served_by") if evaluation is not None else None
    text = getattr(value, "value", value)
    return {v for v in str(text or "").split(",") if v}


class _RunCache:
    def __init__(self, instance):
        self.instance, self.cache = instance, {}

    def _record(self, run_id: str):
        if run_id not in self.cache:
            self.cache[run_id] = self.instance.get_run_record_by_id(run_id) if run_id else None
        return self.cache[run_id]

    def in_progress(self, run_id: str) -> bool:
        record = self._record(run_id)
        return record is not None and not record.dagster_run.is_finished

    def started(self, run_id: str) -> float | None:
        record = self._record(run_id)
        if record is None:
            return None
        return record.start_time or record.create_timestamp.timestamp()


def _champion_pointer(registry: ModelRegistry | None, notes: list[str]) -> dict | None:
    if registry is None:
        return None
    try:
        return registry.champion_pointer()
    except (OSError, ValueError) as exc:
        notes.append(f"cannot read the champion pointer: {exc}")
        return None


def _reference_refresh(instance, monitor: MonitorConfig, pointer: dict | None, notes: list[str]) -> RunRequest | None:
    """Request the reference assets when the champion differs from the materialised one."""
    if pointer is None:
        return None
    keys = MonitorKeys(monitor.name)
    event = instance.get_latest_materialization_event(keys.champion_model)
    materialized = None
    if event is not None and event.asset_materialization is not None:
        value = event.asset_materialization.metadata.get("version")
        materialized = getattr(value, "value", value)
    champion = pointer.get("name") or version_name(int(pointer["version"]))
    if materialized is None or materialized == champion:
        return None  # never materialised: setting the monitor up is the reference job's business
    if instance.get_run_records(
        filters=RunsFilter(tags={REFERENCE_REFRESH_TAG: monitor.name}, statuses=IN_FLIGHT), limit=1
    ):
        return None
    notes.append(
        f"champion of {monitor.name} is {champion}, materialised champion_model is {materialized}: "
        "re-materialising the reference assets"
    )
    return RunRequest(
        run_key=f"reference:{monitor.name}:{champion}:{pointer.get('promoted_at') or ''}",
        asset_selection=_reference_keys(monitor),
        tags={REFERENCE_REFRESH_TAG: monitor.name},
    )


def _reference_keys(monitor: MonitorConfig) -> list:
    """The assets measured against the champion's reference (refreshed after a promotion)."""
    keys = MonitorKeys(monitor.name)
    out = [keys.reference_data, keys.reference_profile, keys.champion_model]
    return out + ([keys.performance_estimator] if monitor.estimates_performance else [])


def _timestamp(value) -> float | None:
    if not value:
        return None
    try:
        return parse_timestamp(str(value)).timestamp()
    except ValueError:
        return None


def _empty_cursor() -> str:
    return json.dumps({"checks": {}})


def retraining_sensors(monitors: Iterable[MonitorConfig]) -> list:
    out = []
    for monitor in monitors:
        if not retraining_supported(monitor):
            continue
        retraining_check_keys(monitor)  # fail at load time on a typo in on_checks
        out.append(_retraining_sensor(monitor))
    return out


def _retraining_sensor(monitor: MonitorConfig):
    keys = MonitorKeys(monitor.name)

    @sensor(
        name=retraining_sensor_name(monitor),
        target=AssetSelection.assets(keys.retrained_model, *_reference_keys(monitor)),
        minimum_interval_seconds=60,
        description=(
            f"Retrains '{monitor.name}' once per failed ERROR evaluation of {', '.join(monitor.retraining.on_checks)} "
            "(one run per failing window and materialisation run, one at a time, cool-down "
            f"{monitor.retraining.cooldown_hours:g} h); re-materialises the reference assets after a promotion."
        ),
    )
    def retraining_sensor(context: SensorEvaluationContext, storage: StorageResource) -> SensorResult:
        registry = registry_of(monitor, storage.storage().data)
        evaluation = evaluate_retraining(context.instance, monitor, context.cursor, registry=registry)
        for note in evaluation.notes:
            context.log.info(note)
        return SensorResult(
            run_requests=evaluation.run_requests,
            cursor=evaluation.cursor,
            skip_reason=None if evaluation.run_requests else evaluation.skip_reason,
        )

    return retraining_sensor
