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


class TooManyCategoriesError(ProfileError):
    """A categorical reference column with more distinct values than ``max_categories`` (an
    identifier, most likely). ``distinct`` is the count, or "more than N" when counting stopped."""

    def __init__(self, table: str, column: str, distinct: str, limit: int):
        self.table, self.column, self.distinct, self.limit = table, column, distinct, limit
        super().__init__(
            f"{table}: column {column!r} has {distinct} distinct values (more than max_categories={limit});"
            " it looks like an identifier. Declare it numerical, drop it, or raise max_categories"
        )

    def in_table(self, table: str) -> TooManyCategoriesError:
        return TooManyCategoriesError(table, self.column, self.distinct, self.limit)
