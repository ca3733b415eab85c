"""pyarrow's pandas probe, answered without importing pandas while nothing has imported it.

The first time pyarrow converts a Python or numpy value (``pa.scalar``, ``pa.array``, a compute
function given a plain value) it asks whether its argument is a pandas object, and to know it
imports pandas: 0.2-0.4 s in a fresh run process (``dagster asset materialize``, the run worker of
``dagster api execute_run``) whose steps never use pandas, or in ``drift-assets compare``.
``defer_pandas_probe`` lets that probe find no pandas and leaves an import hook: the moment
anything imports pandas (Evidently for the HTML report, ``to_pandas``), pyarrow's own import of it
is re-run, which puts pyarrow back in its usual state before any pandas object exists. No pandas
object can exist before pandas is imported, so every conversion gives exactly what it gives
without the deferral (tested).
"""

from __future__ import annotations

import contextlib
import sys
from importlib.abc import Loader, MetaPathFinder
from importlib.machinery import ModuleSpec


class _NoPandas(MetaPathFinder):
    """Answers ImportError for pandas (only while pyarrow's probe runs)."""

    def find_spec(self, name, path=None, target=None):
        if name == "pandas":
            raise ImportError("pandas: not imported yet (pyarrow's probe is deferred)")
        return None


class _RestoreOnImport(MetaPathFinder):
    """Finds pandas with the other finders and hands pyarrow the module as soon as it is executed."""

    def find_spec(self, name, path=None, target=None):
        if name != "pandas":
            return None
        _remove(self)
        for finder in sys.meta_path:
            find = getattr(finder, "find_spec", None)
            spec = find(name, path, target) if find else None
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    spec.loader = _ThenRestorePyarrow(spec.loader)
                return spec
        return None


class _ThenRestorePyarrow(Loader):
    def __init__(self, loader: Loader) -> None:
        self.loader = loader

    def create_module(self, spec: ModuleSpec):
        return self.loader.create_module(spec)

    def exec_module(self, module) -> None:
        # The module keeps pandas's own loader (its resources, a reload).
        module.__loader__ = self.loader
        if module.__spec__ is not None:
            module.__spec__.loader = self.loader
        self.loader.exec_module(module)
        _restore_pyarrow()


def _remove(finder: MetaPathFinder) -> None:
    if finder in sys.meta_path:
        sys.meta_path.remove(finder)


def _restore_pyarrow() -> None:
    """pyarrow re-imports pandas when asked for it after a failed probe: its normal state after."""
    import pyarrow as pa

    with contextlib.suppress(ImportError):  # pandas was just imported, so importable
        pa.lib._pandas_api.pd  # noqa: B018


_RESTORE = _RestoreOnImport()


def defer_pandas_probe() -> bool:
    """Answer pyarrow's pandas probe without importing pandas, until something imports pandas.
    Does nothing (returns False) when pandas is already imported or the probe already ran."""
    if "pandas" in sys.modules or _RESTORE in sys.meta_path:
        return False
    import pyarrow as pa

    deny = _NoPandas()
    sys.meta_path.insert(0, deny)
    try:
        pa.lib._pandas_api.have_pandas  # noqa: B018  (the probe; pyarrow keeps its answer)
    except (AttributeError, ImportError):
        pass
    finally:
        _remove(deny)
    if "pandas" in sys.modules:  # pragma: no cover - the probe ran before (pandas imported then)
        return False
    sys.meta_path.insert(0, _RESTORE)
    return True
