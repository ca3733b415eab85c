"""The retraining sensor's cursor on Postgres run/event storage (dagster-postgres, a real server on
127.0.0.1): the same requests as on SQLite, a saved cursor repeats nothing, a re-evaluated failing
week triggers once more."""

from __future__ import annotations

import uuid

import pytest
from cluster_servers import start_postgres
from dagster import instance_for_test
from test_retraining_sensor import DRIFTED, QUIET, SENSOR, WEEKS, definitions, drain, monitors_file, run_week

from drift_assets.cli.demo import evaluate_sensor

pytest.importorskip("dagster_postgres")

pytestmark = pytest.mark.slow  # a Postgres server and 8 Dagster runs


@pytest.fixture(scope="module")
def postgres():
    with start_postgres() as server:
        yield server


def test_the_retraining_cursor_works_on_postgres_storage(project, postgres):
    database = f"dagster_{uuid.uuid4().hex[:8]}"
    postgres.psql(f"CREATE DATABASE {database}")
    overrides = {"storage": {"postgres": {"postgres_url": postgres.url(database)}}}
    defs = definitions(monitors_file(project))
    with instance_for_test(overrides=overrides) as instance:
        assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
        reference = defs.resolve_job_def("fraud_reference_job")
        assert reference.execute_in_process(instance=instance, run_config=QUIET).success
        runs = {key: run_week(defs, instance, key).run_id for key in WEEKS}

        requests, cursor, skip = drain(defs, instance, None)
        assert [r.partition_key for r in requests] == DRIFTED
        assert [r.run_key for r in requests] == [f"retrain:fraud:{k}:{runs[k]}" for k in DRIFTED]
        assert "no new failed ERROR evaluation" in skip.skip_message

        again = evaluate_sensor(defs, SENSOR, instance, cursor)  # a restarted daemon, cursor from storage
        assert again.run_requests == [] and again.cursor == cursor

        rerun = run_week(defs, instance, WEEKS[-1])
        more, _, _ = drain(defs, instance, cursor)
        assert [(r.partition_key, r.run_key) for r in more] == [
            (WEEKS[-1], f"retrain:fraud:{WEEKS[-1]}:{rerun.run_id}")
        ]
