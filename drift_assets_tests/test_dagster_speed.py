"""What keeps the Dagster path fast (issue 16), each as behaviour that could regress:

- jobs that name no executor, Dagster's implicit asset job among them (``dagster asset materialize``),
  run their steps in process by default; the multiprocess mode is still selectable by run config
  and ``DRIFT_ASSETS_EXECUTOR=multiprocess``; the retraining job's own ``in_process`` config stays valid;
- loading the definitions does not import ``requests`` or ``prometheus_client`` (used only when a
  webhook is posted or metrics are pushed);
- ``json_dumps``'s one-pass encoding gives the text of the normalising round trip, NaN/inf included,
  and its indenting encoder (``indent2``) the text of ``json.dumps(indent=2)`` on every document
  shape (seeded random documents, numpy values, odd keys, errors included);
- a performance estimator is built once per record in a process (its bootstrap maps reused), and
  estimates from the reused one equal those from a fresh one.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pytest
from dagster import validate_run_config

from drift_assets.definitions import build_definitions
from drift_assets.monitoring import performance
from drift_assets.orchestration.keys import IN_PROCESS_RUN_CONFIG
from drift_assets.stats.performance_estimation import count_scores, estimate_performance, fit_performance_estimator
from drift_assets.storage.root import _finite, _json_default, indent2, json_dumps


def _default_mode(job) -> dict:
    return job.executor_def.config_schema.as_field().default_value


def test_jobs_without_an_executor_run_in_process_by_default(monkeypatch):
    monkeypatch.delenv("DRIFT_ASSETS_EXECUTOR", raising=False)
    defs = build_definitions()
    implicit = defs.resolve_implicit_global_asset_job_def()
    assert _default_mode(implicit) == {"in_process": {}}
    assert _default_mode(defs.resolve_job_def("fraud_alert_job")) == {"in_process": {}}
    assert _default_mode(defs.resolve_job_def("fraud_reference_job")) == {"in_process": {}}
    # Still Dagster's selector: one process per step on request, and the retraining job's config.
    validate_run_config(implicit, {"execution": {"config": {"multiprocess": {"max_concurrent": 2}}}})
    validate_run_config(defs.resolve_job_def("fraud_retraining_job"), IN_PROCESS_RUN_CONFIG)
    with pytest.raises(Exception, match="execution"):
        validate_run_config(implicit, {"execution": {"config": {"threads": {}}}})


def test_multiprocess_by_environment_restores_dagsters_default(monkeypatch):
    monkeypatch.setenv("DRIFT_ASSETS_EXECUTOR", "multiprocess")
    defs = build_definitions()
    assert _default_mode(defs.resolve_implicit_global_asset_job_def()) == {"multiprocess": {}}
    validate_run_config(defs.resolve_job_def("fraud_retraining_job"), IN_PROCESS_RUN_CONFIG)


def test_loading_the_definitions_imports_neither_requests_nor_prometheus_client():
    code = "import sys, drift_assets.definitions; print(' '.join(sorted({m.split('.')[0] for m in sys.modules})))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=os.environ, check=True)
    top_level = set(out.stdout.split())
    assert "dagster" in top_level and "drift_assets" in top_level  # the probe saw the definitions load
    assert not top_level & {"requests", "prometheus_client", "evidently", "dagster_aws"}


def _old_json_dumps(obj: object, *, sort_keys: bool = False) -> str:
    """The encoding before the one-pass path, verbatim: the reference the fast path must equal."""
    normalised = _finite(json.loads(json.dumps(obj, default=_json_default)))
    return json.dumps(normalised, indent=2, sort_keys=sort_keys, allow_nan=False) + "\n"


DOCUMENTS = [
    {"a": 1, "b": [1.5, -0.0, 1e-300, 1.7976931348623157e308], "c": {"d": None, "e": True, "f": "x\u00e9\n"}},
    {"counts": np.arange(5, dtype=np.int64), "sums": np.linspace(0, 1, 7), "n": np.int64(3), "p": np.float64(0.25)},
    {"when": dt.datetime(2026, 8, 17, tzinfo=dt.UTC), "day": dt.date(2026, 8, 17), "t": (1, 2.5, "z")},
    {1: "int key", "2": 2.0, 3.5: [np.float32(0.1)], "b": np.bool_(True)},
    {"nan": float("nan"), "inf": [float("inf"), -math.inf], "np_nan": np.float64("nan"), "ok": 1.0},
    {"arr_nan": np.array([1.0, np.nan, np.inf]), "nested": [{"x": float("nan")}]},
    {"z": 1, "a": {"m": 2, "b": 3}},
    [],
    {},
]


@pytest.mark.parametrize("doc", DOCUMENTS, ids=range(len(DOCUMENTS)))
@pytest.mark.parametrize("sort_keys", [False, True])
def test_json_dumps_fast_path_is_the_normalised_text(doc, sort_keys):
    if sort_keys and any(not isinstance(k, str) for k in (doc if isinstance(doc, dict) else {})):
        pytest.skip("mixed key types cannot be sorted before conversion (the old path sorted strings)")
    assert json_dumps(doc, sort_keys=sort_keys) == _old_json_dumps(doc, sort_keys=sort_keys)


def _random_document(rng: np.random.Generator, depth: int = 0) -> object:
    """Nested dicts/lists/tuples of every JSON-able leaf the project writes, numpy ones included."""
    kind = rng.integers(0, 12 if depth < 4 else 8)
    floats = [0.0, -0.0, 1.5, 1e-300, 5e-324, 1e16, 123456789.123, -2.5e-7, 1 / 3, 1.7976931348623157e308]
    if kind == 0:
        return float(rng.choice(floats)) * float(rng.choice([1, -1]))
    if kind == 1:
        return int(rng.integers(-(10**12), 10**12)) * (10**30 if rng.random() < 0.1 else 1)
    if kind == 2:
        return str(rng.choice(["", "a", 'é\n\t"\\', "\u2603 snow", "\x00\x1f", "𝄞"]))
    if kind == 3:
        return [None, True, False][int(rng.integers(0, 3))]
    if kind == 4:
        return rng.normal(size=int(rng.integers(0, 40)))  # a numpy array
    if kind == 5:
        return [np.int64(3), np.float64(0.1), np.bool_(False), np.float32(0.5)][int(rng.integers(0, 4))]
    if kind == 6:
        return list(rng.integers(0, 10**6, size=int(rng.integers(0, 30))).tolist())  # plain ints: the join path
    if kind == 7:
        return [float(x) for x in rng.normal(size=int(rng.integers(0, 30)))] + ([1] if rng.random() < 0.3 else [])
    if kind in (8, 9):
        keys = ["k", "é", 1, 2.5, True, False, None, -7, "z", "a"]
        return {
            keys[int(i)]: _random_document(rng, depth + 1)
            for i in rng.choice(len(keys), size=int(rng.integers(0, 6)), replace=False)
        }
    if kind == 10:
        return tuple(_random_document(rng, depth + 1) for _ in range(int(rng.integers(0, 4))))
    return [_random_document(rng, depth + 1) for _ in range(int(rng.integers(0, 5)))]


def _stdlib_indent2(obj: object) -> str:
    return json.dumps(obj, default=_json_default, indent=2, allow_nan=False)


def _outcome(encode, obj: object) -> tuple[str, str]:
    try:
        return "text", encode(obj)
    except (TypeError, ValueError) as exc:
        return type(exc).__name__, str(exc)


def test_indent2_is_json_dumps():
    rng = np.random.default_rng(16)
    documents = [d for d in DOCUMENTS] + [_random_document(rng) for _ in range(3000)]
    circular: list = [1]
    circular.append(circular)
    odd = [{"x": float("nan")}, [math.inf], {math.nan: 1}, {(1, 2): 3}, {"x": object()}, circular, "plain", 3, None]
    texts = 0
    for doc in documents + odd:
        mine = _outcome(indent2, doc)
        assert mine == _outcome(_stdlib_indent2, doc), doc
        texts += mine[0] == "text"
    assert texts > 2500  # most documents encode (NaN-free), the odd ones raise the same error


def test_json_dumps_still_refuses_what_json_cannot_hold():
    with pytest.raises(TypeError, match="not JSON serialisable"):
        json_dumps({"x": object()})


@pytest.fixture(scope="module")
def estimator_record() -> dict:
    rng = np.random.default_rng(7)
    scores = rng.beta(1, 12, 40_000)
    target = (rng.random(40_000) < scores).astype(np.int64)
    est = fit_performance_estimator(pa.table({"score": scores, "y": target}), score_column="score", target_column="y")
    return json.loads(est.to_json())


def test_an_estimator_is_built_once_per_record_and_estimates_the_same(estimator_record):
    performance._ESTIMATORS.clear()
    first = performance.estimator_of(estimator_record)
    assert performance.estimator_of(json.loads(json.dumps(estimator_record))) is first  # equal record: reused
    assert "bootstrap_maps" not in vars(first)
    fresh = type(first).from_dict(estimator_record)
    window = np.random.default_rng(8).beta(1.2, 10, 5_000)
    counts_reused = count_scores(first, window)
    counts_fresh = count_scores(fresh, window)
    a, b = estimate_performance(first, counts_reused, draws=400), estimate_performance(fresh, counts_fresh, draws=400)
    assert "bootstrap_maps" in vars(first)  # kept on the cached object for the next window
    assert a.to_dict() == b.to_dict()
    again = estimate_performance(performance.estimator_of(estimator_record), counts_reused, draws=400)
    assert again.to_dict() == a.to_dict()
    changed = {**estimator_record, "seed": estimator_record["seed"] + 1}
    assert performance.estimator_of(changed) is not first  # another record: another estimator


def test_the_estimator_cache_is_bounded(estimator_record):
    performance._ESTIMATORS.clear()
    for seed in range(performance._ESTIMATORS_KEPT + 3):
        performance.estimator_of({**estimator_record, "seed": seed})
    assert len(performance._ESTIMATORS) == performance._ESTIMATORS_KEPT
