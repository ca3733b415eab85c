"""Registry integrity (issue 12, item 6): a corrupt version is listed as corrupt and skipped, the
rest works; promote requires every artefact; every committed version records the sha256 of its
model file and loading verifies it.

Unit cases build a registry by hand (a tiny picklable "model"); the CLI cases run
``drift-assets models list|promote`` over the simulated data (its v0001 is the simulator's).
"""

from __future__ import annotations

import hashlib
import io
import json

import joblib
import pytest

from drift_assets import cli
from drift_assets.monitoring.registry import ModelIntegrityError, ModelRegistry, RegistryError
from drift_assets.storage.root import Root


def _model_bytes(value: int) -> bytes:
    buffer = io.BytesIO()
    joblib.dump({"weights": [value, value + 1]}, buffer)
    return buffer.getvalue()


def _add_version(registry: ModelRegistry, value: int, *, reference: bool = True) -> int:
    number, path = registry.reserve()
    registry.root.write_bytes(f"{path}/model.joblib", _model_bytes(value))
    meta = {"status": "rejected", "parent": 1}
    if reference:
        registry.root.write_bytes(f"{path}/reference.parquet", b"PAR1")
        meta["reference_file"] = "reference.parquet"
    registry.commit(number, meta)
    return number


@pytest.fixture
def registry(tmp_path):
    reg = ModelRegistry(Root.open(str(tmp_path)), "m/models")
    for value in (1, 2, 3):
        _add_version(reg, value)
    reg.promote(1, reason="initial")
    return reg


def test_commit_records_the_sha256_of_the_model_file(registry, tmp_path):
    for v in registry.versions():
        expected = hashlib.sha256((tmp_path / v.model_file).read_bytes()).hexdigest()  # independent
        assert v.metadata["model_sha256"] == expected
    assert registry.load_model(registry.get(2)) == {"weights": [2, 3]}


# The metadata.json of v0002 is damaged in each of these ways; v0001 and v0003 must keep working.
CORRUPT_METADATA = {
    "truncated": b'{"status": "rejected", "parent": ',
    "empty file": b"",
    "not an object": b"[1, 2]",
    "not utf-8": b"\xff\xfe\x00",
}


@pytest.mark.parametrize("content", CORRUPT_METADATA.values(), ids=CORRUPT_METADATA.keys())
def test_a_corrupt_version_is_listed_as_corrupt_and_the_rest_works(registry, tmp_path, content):
    (tmp_path / "m/models/versions/v0002/metadata.json").write_bytes(content)
    good, bad = registry.scan()
    assert [v.name for v in good] == ["v0001", "v0003"]
    assert [c.name for c in bad] == ["v0002"] and "metadata.json" in bad[0].reason
    with pytest.raises(RegistryError, match="v0002 is corrupt"):
        registry.promote(2, reason="x")
    registry.promote(3, reason="forward")  # the others still promote and roll back
    registry.promote(1, reason="rollback")
    assert registry.champion().name == "v0001"


def _tamper(tmp_path, registry):
    path = tmp_path / "m/models/versions/v0002/model.joblib"
    path.write_bytes(_model_bytes(99))  # a different (valid) pickle


def _truncate(tmp_path, registry):
    path = tmp_path / "m/models/versions/v0002/model.joblib"
    path.write_bytes(path.read_bytes()[:10])


def _drop_hash(tmp_path, registry):
    meta_path = tmp_path / "m/models/versions/v0002/metadata.json"
    meta = json.loads(meta_path.read_text())
    del meta["model_sha256"]
    meta_path.write_text(json.dumps(meta))


def _drop_model(tmp_path, registry):
    (tmp_path / "m/models/versions/v0002/model.joblib").unlink()


def _drop_reference(tmp_path, registry):
    (tmp_path / "m/models/versions/v0002/reference.parquet").unlink()


# (damage to v0002, what promote says, whether load_model refuses too)
BAD_ARTEFACTS = {
    "model replaced": (_tamper, "does not match", True),
    "model truncated": (_truncate, "does not match", True),
    "no recorded hash": (_drop_hash, "records no model_sha256", True),
    "model missing": (_drop_model, "missing .*model.joblib", True),
    "reference missing": (_drop_reference, "missing .*reference.parquet", False),
}


@pytest.mark.parametrize(("damage", "message", "load_refused"), BAD_ARTEFACTS.values(), ids=BAD_ARTEFACTS.keys())
def test_promote_requires_every_artefact_and_a_matching_model(registry, tmp_path, damage, message, load_refused):
    damage(tmp_path, registry)
    pointer = (tmp_path / "m/models/champion.json").read_bytes()
    with pytest.raises(RegistryError, match=message) as info:
        registry.promote(2, reason="x")
    assert "v0002" in str(info.value)
    assert (tmp_path / "m/models/champion.json").read_bytes() == pointer  # nothing changed
    if load_refused:
        with pytest.raises(ModelIntegrityError, match="model.joblib"):
            registry.load_model(registry.get(2))
    else:
        assert registry.load_model(registry.get(2)) == {"weights": [2, 3]}


@pytest.mark.slow  # the shared simulation
def test_the_simulated_champion_records_its_hash_and_the_cli_lists_a_corrupt_version(project, capsys):
    data = Root.open(str(project / "data"))
    registry = ModelRegistry(data, "fraud/models")
    champion = registry.champion()
    assert champion.metadata["model_sha256"] == hashlib.sha256(data.read_bytes(champion.model_file)).hexdigest()
    assert hasattr(registry.load_model(champion), "predict_proba")
    second = _add_version(registry, 7, reference=False)
    third = _add_version(registry, 8, reference=False)
    (project / "data/fraud/models/versions/v0002/metadata.json").write_text('{"status": ')  # truncated

    assert cli.main(["models", "list", "--monitor", "fraud"]) == 0
    out = capsys.readouterr().out
    assert "2 committed version(s)" in out and "1 corrupt version(s) skipped" in out
    [corrupt_line] = [line for line in out.splitlines() if "CORRUPT" in line]
    assert "v0002" in corrupt_line and "metadata.json" in corrupt_line

    assert cli.main(["models", "promote", "--monitor", "fraud", "--version", str(second)]) == 2
    err = capsys.readouterr().err
    assert "v0002 is corrupt" in err and len(err.strip().splitlines()) == 1
    assert cli.main(["models", "promote", "--monitor", "fraud", "--version", str(third)]) == 0
    assert cli.main(["models", "promote", "--monitor", "fraud", "--version", "1"]) == 0  # rollback works
    assert registry.champion().name == "v0001"

    (project / "data/fraud/models/versions/v0003/model.joblib").write_bytes(_model_bytes(9))
    assert cli.main(["models", "promote", "--monitor", "fraud", "--version", str(third)]) == 2
    err = capsys.readouterr().err
    assert "v0003/model.joblib" in err and "does not match" in err


@pytest.mark.slow  # the shared simulation
def test_a_retraining_refuses_a_champion_whose_model_does_not_match_its_hash(project):
    """The attempt hands DVC a verified copy of the champion; a tampered one fails before DVC runs."""
    from drift_assets.monitoring.config import load_monitors
    from drift_assets.retraining.attempt import DvcSettings, RetrainingAttempt, RetrainingFailed
    from drift_assets.storage.root import Storage

    class Log:
        info = warning = error = staticmethod(lambda msg: None)

    monitor = load_monitors(project / "monitors.yaml").get("fraud")
    storage = Storage.at(str(project / "data"), str(project / "assets"), str(project / "reports"))
    (project / "data/fraud/models/versions/v0001/model.joblib").write_bytes(_model_bytes(5))
    pointer = (project / "data/fraud/models/champion.json").read_bytes()
    attempt = RetrainingAttempt(
        monitor,
        storage,
        DvcSettings("/nonexistent/dvc", str(project), str(project / "work")),
        run_id="r1",
        partition="2026-08-17",
        trigger={"partition": "2026-08-17", "check": "manual", "run_id": None},
        log=Log(),
    )
    with pytest.raises(RetrainingFailed, match=r"champion v0001 cannot be used: .*v0001/model.joblib.*does not match"):
        attempt.run()
    assert (project / "data/fraud/models/champion.json").read_bytes() == pointer
    assert not list((project / "work").rglob("dvc.yaml"))  # DVC never started
