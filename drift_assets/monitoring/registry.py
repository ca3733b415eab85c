"""Model registry on Storage: immutable versions plus one champion pointer.

Layout under a monitor's registry path::

    versions/v0001/model.joblib, metadata.json, [reference.parquet]
    champion.json      {"version": 1, "name": "v0001", "promoted_at": ..., "reason": ..., "previous": null}

A version is committed by writing ``metadata.json`` last: a directory without it is an aborted
attempt and is never listed or served. Promotion rewrites ``champion.json`` in one atomic step, so a
crash anywhere before it leaves the old champion in place.

Integrity:

* a version whose ``metadata.json`` cannot be read (truncated, not JSON, not an object) is *corrupt*:
  :meth:`ModelRegistry.versions` skips it and :meth:`ModelRegistry.corrupt_versions` lists it with
  the reason, so one bad directory never hides the others (``models list`` shows it, rollback to
  any other version works);
* :meth:`ModelRegistry.commit` records the sha256 of ``model.joblib`` (``model_sha256``) and
  :meth:`ModelRegistry.promote` requires every artefact (``model.joblib``, the reference file named
  in the metadata) and a matching hash;
* models are unpickled only through :meth:`ModelRegistry.load_model` (or handed to DVC through
  :meth:`ModelRegistry.verified_model_bytes`), which hash the very bytes they load and refuse a
  mismatch, or a version recording no hash, with :class:`ModelIntegrityError` naming the file. The
  hash lives next to the model: it catches a replaced, truncated or half-copied model file, not a
  writer who can rewrite ``metadata.json`` too (restrict write access to the registry prefix).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
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


@dataclass(frozen=True)
class CorruptVersion:
    """A version directory with a ``metadata.json`` that cannot be read: listed, never served."""

    number: int
    name: str
    path: str
    reason: str


class RegistryError(RuntimeError):
    pass


class ModelIntegrityError(RegistryError):
    """A model file whose content does not match the sha256 its version recorded."""


class ModelRegistry:
    def __init__(self, root: Root, base: str) -> None:
        self.root, self.base = root, base.rstrip("/")

    def _version_dir(self, number: int) -> str:
        return f"{self.base}/versions/{version_name(number)}"

    def scan(self) -> tuple[list[ModelVersion], list[CorruptVersion]]:
        """Committed versions and corrupt ones (unreadable ``metadata.json``), by number."""
        good, bad = [], []
        for name in self.root.list_dir(f"{self.base}/versions"):
            if not (name.startswith("v") and name[1:].isdigit()):
                continue
            number = int(name[1:])
            path = self._version_dir(number)
            meta_path = f"{path}/metadata.json"
            if not self.root.exists(meta_path):
                continue  # not committed (an aborted attempt)
            shown = self.root.uri_of(meta_path)
            try:
                metadata = self.root.read_json(meta_path)
                if not isinstance(metadata, dict):
                    raise ValueError(f"expected a JSON object, got {type(metadata).__name__}")
            except (OSError, ValueError) as exc:  # UnicodeDecodeError is a ValueError
                reason = str(exc) if shown in str(exc) else f"{shown}: {exc}"
                bad.append(CorruptVersion(number, name, path, reason))
                continue
            good.append(ModelVersion(number, name, path, metadata))
        return sorted(good, key=lambda v: v.number), sorted(bad, key=lambda v: v.number)

    def versions(self) -> list[ModelVersion]:
        """Committed, readable versions; corrupt ones are skipped (see :meth:`corrupt_versions`)."""
        return self.scan()[0]

    def corrupt_versions(self) -> list[CorruptVersion]:
        return self.scan()[1]

    def get(self, number: int) -> ModelVersion:
        good, bad = self.scan()
        for v in good:
            if v.number == number:
                return v
        for c in bad:
            if c.number == number:
                raise RegistryError(f"model version {c.name} is corrupt: {c.reason}")
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
        """Write ``metadata.json`` (the commit), with the sha256 of the version's ``model.joblib``."""
        path = self._version_dir(number)
        if not self.root.exists(f"{path}/model.joblib"):
            raise RegistryError(f"{self.root.uri_of(path)}: refusing to commit a version without model.joblib")
        metadata = {
            **metadata,
            "version": number,
            "name": version_name(number),
            "model_sha256": self.root.sha256(f"{path}/model.joblib"),
        }
        self.root.write_json(f"{path}/metadata.json", metadata)
        return ModelVersion(number, version_name(number), path, metadata)

    def missing_artefacts(self, version: ModelVersion) -> list[str]:
        """URIs of the files the version needs and does not have (model, named reference file)."""
        needed = [version.model_file] + ([version.reference_file] if version.reference_file else [])
        return [self.root.uri_of(f) for f in needed if not self.root.exists(f)]

    def verified_model_bytes(self, version: ModelVersion) -> bytes:
        """The bytes of the version's model file, after checking them against ``model_sha256``."""
        uri = self.root.uri_of(version.model_file)
        expected = version.metadata.get("model_sha256")
        if not isinstance(expected, str) or len(expected) != 64:
            raise ModelIntegrityError(
                f"{uri}: version {version.name} records no model_sha256 in metadata.json: refusing to load an "
                "unverified model"
            )
        if not self.root.exists(version.model_file):
            raise ModelIntegrityError(f"{uri}: model file of version {version.name} is missing")
        data = self.root.read_bytes(version.model_file)
        actual = hashlib.sha256(data).hexdigest()
        if actual != expected:
            raise ModelIntegrityError(
                f"{uri}: sha256 {actual[:12]}... does not match the {expected[:12]}... recorded for version "
                f"{version.name}: refusing to load it"
            )
        return data

    def load_model(self, version: ModelVersion):
        """Unpickle the version's model from the verified bytes (never from the path: no TOCTOU)."""
        import joblib

        return joblib.load(io.BytesIO(self.verified_model_bytes(version)))

    def promote(self, number: int, reason: str) -> dict:
        version = self.get(number)  # only committed, readable versions can become champion
        missing = self.missing_artefacts(version)
        if missing:
            raise RegistryError(f"version {version.name} is incomplete: missing {', '.join(missing)}")
        self.verified_model_bytes(version)
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
