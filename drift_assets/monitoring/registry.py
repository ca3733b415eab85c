"""Model registry on Storage: immutable versions plus one champion pointer.

Layout under a monitor's registry path::

    versions/v0001/model.joblib, metadata.json, [reference.parquet]
    champion.json      {"version": 1, "name": "v0001", "promoted_at": ..., "reason": ..., "previous": null}

A version is committed by writing ``metadata.json`` last: a directory without it is an aborted
attempt and is never listed or served. Promotion rewrites ``champion.json`` in one atomic step, so a
crash anywhere before it leaves the old champion in place.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from drift_assets.monitoring.config import MonitorConfig
from drift_assets.storage.root import Root


def version_name(number: int) -> str:
    return f"v{number:04d}"


@dataclass(frozen=True)
class ModelVersion:
    number: int
    name: str
    path: str  # relative to the data root
    metadata: dict

    @property
    def model_file(self) -> str:
        return f"{self.path}/model.joblib"

    @property
    def reference_file(self) -> str | None:
        ref = self.metadata.get("reference_file")
        return f"{self.path}/{ref}" if ref else None


class RegistryError(RuntimeError):
    pass


class ModelRegistry:
    def __init__(self, root: Root, base: str) -> None:
        self.root, self.base = root, base.rstrip("/")

    def _version_dir(self, number: int) -> str:
        return f"{self.base}/versions/{version_name(number)}"

    def versions(self) -> list[ModelVersion]:
        out = []
        for name in self.root.list_dir(f"{self.base}/versions"):
            if not (name.startswith("v") and name[1:].isdigit()):
                continue
            number = int(name[1:])
            meta_path = f"{self._version_dir(number)}/metadata.json"
            if self.root.exists(meta_path):
                out.append(ModelVersion(number, name, self._version_dir(number), self.root.read_json(meta_path)))
        return sorted(out, key=lambda v: v.number)

    def get(self, number: int) -> ModelVersion:
        for v in self.versions():
            if v.number == number:
                return v
        raise RegistryError(f"{self.root.uri_of(self.base)}: no committed model version {version_name(number)}")

    def champion_pointer(self) -> dict | None:
        path = f"{self.base}/champion.json"
        return self.root.read_json(path) if self.root.exists(path) else None

    def champion(self) -> ModelVersion:
        pointer = self.champion_pointer()
        if pointer is None:
            raise RegistryError(f"{self.root.uri_of(self.base)}: no champion.json (no model has been promoted)")
        return self.get(int(pointer["version"]))

    def next_number(self) -> int:
        taken = [int(n[1:]) for n in self.root.list_dir(f"{self.base}/versions") if n[1:].isdigit()]
        return max(taken, default=0) + 1

    def reserve(self) -> tuple[int, str]:
        """A fresh version number and its directory (files go there; metadata.json commits it)."""
        number = self.next_number()
        path = self._version_dir(number)
        self.root.make_dirs(path)
        return number, path

    def commit(self, number: int, metadata: dict) -> ModelVersion:
        path = self._version_dir(number)
        if not self.root.exists(f"{path}/model.joblib"):
            raise RegistryError(f"{self.root.uri_of(path)}: refusing to commit a version without model.joblib")
        metadata = {**metadata, "version": number, "name": version_name(number)}
        self.root.write_json(f"{path}/metadata.json", metadata)
        return ModelVersion(number, version_name(number), path, metadata)

    def promote(self, number: int, reason: str) -> dict:
        version = self.get(number)  # only committed versions can become champion
        previous = self.champion_pointer()
        pointer = {
            "version": version.number,
            "name": version.name,
            "promoted_at": dt.datetime.now(dt.UTC).isoformat(),
            "reason": reason,
            "previous": previous["version"] if previous else None,
        }
        self.root.write_json(f"{self.base}/champion.json", pointer)
        return pointer


def registry_of(monitor: MonitorConfig, data: Root) -> ModelRegistry | None:
    """The monitor's registry under the data root (None for a monitor without a model registry)."""
    return ModelRegistry(data, monitor.model_registry) if monitor.model_registry else None


def reference_location(monitor: MonitorConfig, data: Root) -> str:
    """The champion's own reference once a retrained model was promoted, else the configured one."""
    registry = registry_of(monitor, data)
    if registry is not None:
        try:
            ref = registry.champion().reference_file
        except RegistryError:
            ref = None
        if ref:
            return ref
    return monitor.reference
