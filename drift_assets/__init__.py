"""drift_assets: model monitoring as Dagster assets."""

__version__ = "0.1.0"
