"""The demo's second process (cli/alongside.py): a real ``python -m drift_assets.cli.alongside`` on
a real instance; its output comes back whole, its failure fails the demo, and stop() ends it."""

from __future__ import annotations

import yaml
from support import PROJECT_ROOT, project_dagster_home

from drift_assets.cli import alongside


def _llm_only_without_reference(tmp_path, monkeypatch):
    config = yaml.safe_load((PROJECT_ROOT / "monitors.yaml").read_text())
    llm = config["monitors"]["llm"]
    monitors = tmp_path / "monitors.yaml"
    monitors.write_text(yaml.safe_dump({"monitors": {"llm": llm}}, sort_keys=False))
    project_dagster_home(tmp_path, monkeypatch)
    monkeypatch.setenv("DRIFT_ASSETS_MONITORS", str(monitors))
    monkeypatch.setenv("DRIFT_ASSETS_ENV", "local")
    monkeypatch.setenv("DRIFT_ASSETS_DATA_ROOT", str(tmp_path / "data"))  # no reference there
    monkeypatch.setenv("DRIFT_ASSETS_ASSETS_ROOT", str(tmp_path / "assets"))
    monkeypatch.setenv("DRIFT_ASSETS_REPORTS_ROOT", str(tmp_path / "reports"))


def test_its_output_comes_back_and_its_failure_counts(tmp_path, monkeypatch):
    _llm_only_without_reference(tmp_path, monkeypatch)
    started: list[str] = []
    second = alongside.start(["llm"], echo=started.append)
    assert f"pid {second.process.pid}" in started[0]
    lines: list[str] = []
    ok, took = second.finish(echo=lines.append)
    text = "\n".join(lines)
    assert not ok and took > 0
    assert "== monitor 'llm' (hourly): reference assets" in text
    assert "reference job FAILED" in text
    assert text.rstrip().endswith("exit 1)")
    assert not second.log.exists()


def test_stop_ends_it(tmp_path, monkeypatch):
    _llm_only_without_reference(tmp_path, monkeypatch)
    second = alongside.start(["llm"], echo=lambda _: None)
    second.stop()
    assert second.process.poll() is not None and not second.log.exists()
