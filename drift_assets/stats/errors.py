"""Errors raised on bad input. Each names the table and column so a user can act on it."""

from __future__ import annotations


class DriftInputError(ValueError):
    """Input that cannot be measured: the message says which table/column and why."""


class SchemaError(DriftInputError):
    """A column is missing, unknown or of the wrong type."""


class EmptyWindowError(DriftInputError):
    """A window with no rows: measuring it would report a meaningless PSI of 0."""


class ProfileError(DriftInputError):
    """A reference profile that cannot be fitted or loaded."""
