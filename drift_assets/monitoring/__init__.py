"""The monitoring domain without Dagster: monitors configuration, windows and the production log,
derived columns, window evaluation, the trailing baseline, model performance, the results store,
the model registry and the Evidently reports."""
