"""Retraining without Dagster: the DVC runner, the champion/challenger gate, the new reference, and
one retraining attempt from inputs to a committed (and maybe promoted) registry version."""
