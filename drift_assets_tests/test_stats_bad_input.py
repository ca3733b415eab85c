"""Bad input never turns into a quiet "no drift": it raises, or it fails a check that names the column."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from drift_assets.stats import (
    ColumnSpec,
    ColumnThresholds,
    DecisionRules,
    EmptyWindowError,
    ProfileError,
    compare,
    fit_profile,
    summarize,
)
from drift_assets.stats import rules as r

SPECS = [
    ColumnSpec("amount", "numerical"),
    ColumnSpec("age", "numerical"),
    ColumnSpec("country", "categorical"),
    ColumnSpec("score", "numerical", "prediction"),
]


def make_table(rng: np.random.Generator, n: int, shift: float = 0.0) -> pa.Table:
    return pa.table(
        {
            "amount": rng.lognormal(3.0 + shift, 1.0, n),
            "age": rng.normal(40.0, 10.0, n),
            "country": pa.array(rng.choice(np.array(["fr", "de", "it"]), n, p=[0.5, 0.3, 0.2]).tolist()),
            "score": rng.random(n),
        }
    )


@pytest.fixture(scope="module")
def profile():
    return fit_profile(make_table(np.random.default_rng(0), 20_000), SPECS)


@pytest.fixture(scope="module")
def window():
    return make_table(np.random.default_rng(1), 3_000)


def failed(result, name: str) -> list[str | None]:
    return [c.column for c in result.failed_checks() if c.name == name]


# --------------------------------------------------------------------------- empty windows


def test_an_empty_window_raises_instead_of_reporting_psi_zero(profile, window):
    with pytest.raises(EmptyWindowError, match="no rows"):
        compare(profile, summarize(profile, []))
    empty = window.slice(0, 0)
    summary = summarize(profile, [empty])
    assert summary.rows == 0 and not summary.problems
    with pytest.raises(EmptyWindowError):
        compare(profile, summary)
    with pytest.raises(EmptyWindowError, match="week 42"):
        compare(profile, summarize(profile, empty.to_batches()), table_name="week 42")
    with pytest.raises(EmptyWindowError):
        summary.require_rows()


# --------------------------------------------------------------------------- wrong types, absent columns


def test_numerical_column_arriving_as_strings_is_a_schema_problem_not_missing_values(profile, window):
    as_strings = pa.array([f"{v:.2f}" for v in window.column("amount").to_pylist()], pa.string())
    bad = window.set_column(window.schema.get_field_index("amount"), "amount", as_strings)
    summary = summarize(profile, [bad])
    assert set(summary.problems) == {"amount"}
    assert "'amount'" in summary.problems["amount"] and "string" in summary.problems["amount"]
    assert "amount" not in summary.columns
    result = compare(profile, summary)
    schema = [c for c in result.failed_checks() if c.name == r.SCHEMA_MATCHES]
    assert [c.column for c in schema] == ["amount"]
    assert schema[0].severity == "ERROR"
    assert "string" in schema[0].details["reason"]
    # The other columns are still measured: the bad one does not hide them.
    assert "amount" not in result.columns
    assert set(result.columns) == {"age", "country", "score"}
    assert all(result.columns[c].psi is not None for c in ("age", "country", "score"))
    assert result.columns["age"].psi < 0.1


def test_a_type_problem_in_one_batch_marks_the_column_for_the_whole_window(profile, window):
    first, second = window.slice(0, 1_000), window.slice(1_000)
    age_strings = pa.array([str(v) for v in second.column("age").to_pylist()], pa.string())
    second = second.set_column(second.schema.get_field_index("age"), "age", age_strings)
    summary = summarize(profile, [first, second])
    assert set(summary.problems) == {"age"}
    assert "age" not in summary.columns
    assert summary.rows == window.num_rows
    assert summary.columns["amount"].rows == window.num_rows
    assert failed(compare(profile, summary), r.SCHEMA_MATCHES) == ["age"]


def test_a_missing_column_is_a_problem_and_fails_the_schema_check(profile, window):
    summary = summarize(profile, [window.drop_columns(["country"])])
    assert set(summary.problems) == {"country"}
    assert "'country'" in summary.problems["country"] and "missing" in summary.problems["country"]
    result = compare(profile, summary)
    assert failed(result, r.SCHEMA_MATCHES) == ["country"]
    assert not result.all_passed
    assert result.summary()["failed_checks"] == [r.SCHEMA_MATCHES]
    assert set(result.columns) == {"amount", "age", "score"}


def test_a_categorical_column_arriving_as_floats_is_refused(profile, window):
    bad = window.set_column(
        window.schema.get_field_index("country"), "country", pa.array(np.random.default_rng(2).random(window.num_rows))
    )
    summary = summarize(profile, [bad])
    assert "country" in summary.problems and "double" in summary.problems["country"]
    assert failed(compare(profile, summary), r.SCHEMA_MATCHES) == ["country"]


# --------------------------------------------------------------------------- all-missing columns


def test_an_all_nan_column_in_the_window_fails_the_missing_rate_check_and_has_no_psi(profile, window):
    nan = pa.array(np.full(window.num_rows, np.nan))
    bad = window.set_column(window.schema.get_field_index("age"), "age", nan)
    result = compare(profile, summarize(profile, [bad]))
    age = result.columns["age"]
    assert age.missing_rate == 1.0
    assert age.psi is None and age.ks_pvalue is None and age.wasserstein_normed is None
    assert age.problem is not None and "'age'" in age.problem
    assert not age.drifted
    missing = [c for c in result.failed_checks() if c.name == r.MISSING_RATE]
    assert [c.column for c in missing] == ["age"]
    assert missing[0].value == 1.0 and missing[0].severity == "WARN"
    # No PSI check is made up for it.
    assert not [c for c in result.checks if c.column == "age" and c.name in (r.FEATURE_PSI_WARN, r.FEATURE_PSI_ERROR)]
    # An all-null column (arrow null type) is the same thing.
    nulls = window.set_column(window.schema.get_field_index("age"), "age", pa.nulls(window.num_rows))
    result = compare(profile, summarize(profile, [nulls]))
    assert result.columns["age"].missing_rate == 1.0 and result.columns["age"].psi is None
    assert failed(result, r.MISSING_RATE) == ["age"]


def test_a_reference_with_an_all_nan_column_cannot_be_profiled(window):
    n = window.num_rows
    no_values = pa.array(([np.nan, np.inf, None, -np.inf] * n)[:n], pa.float64())
    bad = window.set_column(window.schema.get_field_index("age"), "age", no_values)
    with pytest.raises(ProfileError, match="'age'"):
        fit_profile(bad, SPECS)
    empty_cat = window.set_column(
        window.schema.get_field_index("country"), "country", pa.nulls(window.num_rows, pa.string())
    )
    with pytest.raises(ProfileError, match="'country'"):
        fit_profile(empty_cat, SPECS)


def test_a_reference_with_too_many_categories_cannot_be_profiled():
    ids = pa.table({"user_id": [f"u{i}" for i in range(1_001)], "x": np.arange(1_001.0)})
    specs = [ColumnSpec("x", "numerical"), ColumnSpec("user_id", "categorical")]
    with pytest.raises(ProfileError, match="'user_id'.*1001 distinct"):
        fit_profile(ids, specs)
    with pytest.raises(ProfileError, match="'user_id'"):
        fit_profile(ids.slice(0, 11), specs, max_categories=10)
    assert fit_profile(ids.slice(0, 10), specs, max_categories=10).columns["user_id"].binning.n_buckets == 11


def test_an_empty_reference_or_absent_reference_column_is_refused(window):
    with pytest.raises(ProfileError):
        fit_profile(window.slice(0, 0), SPECS)
    with pytest.raises(ValueError, match="'score'"):
        fit_profile(window.drop_columns(["score"]), SPECS)


# --------------------------------------------------------------------------- decision rules from config


def test_rules_from_mapping_reject_unknown_keys_with_their_path():
    with pytest.raises(ValueError, match=r"thresholds: unknown key\(s\) \['psi_wran'\]"):
        DecisionRules.from_mapping({"psi_wran": 0.3})
    with pytest.raises(ValueError, match=r"monitors\.fraud\.columns\.amount: unknown key\(s\) \['psi_eror'\]"):
        DecisionRules.from_mapping({"columns": {"amount": {"psi_eror": 0.4}}}, where="monitors.fraud")
    with pytest.raises(ValueError, match=r"thresholds\.columns\.amount: expected a mapping"):
        DecisionRules.from_mapping({"columns": {"amount": 0.4}})
    with pytest.raises(ValueError, match=r"thresholds\.columns: expected a mapping"):
        DecisionRules.from_mapping({"columns": ["amount"]})
    # Rule-level keys are not per-column thresholds.
    with pytest.raises(ValueError, match=r"thresholds\.columns\.amount: unknown key\(s\) \['feature_alpha'\]"):
        DecisionRules.from_mapping({"columns": {"amount": {"feature_alpha": 0.01}}})


@pytest.mark.parametrize(
    ("config", "path"),
    [
        ({"psi_warn": "0.2"}, "thresholds.psi_warn"),
        ({"feature_alpha": None}, "thresholds.feature_alpha"),
        ({"missing_rate_warn": True}, "thresholds.missing_rate_warn"),
        ({"psi_error": float("nan")}, "thresholds.psi_error"),
        ({"columns": {"amount": {"psi_error": "high"}}}, "thresholds.columns.amount.psi_error"),
        ({"columns": {"amount": {"min_psi_effect": [0.1]}}}, "thresholds.columns.amount.min_psi_effect"),
    ],
)
def test_rules_from_mapping_reject_non_numbers_with_their_path(config, path):
    with pytest.raises(ValueError, match=rf"^{path.replace('.', chr(92) + '.')}: expected a number"):
        DecisionRules.from_mapping(config)


def test_rules_from_mapping_apply_defaults_rule_keys_and_per_column_overrides():
    rules = DecisionRules.from_mapping(
        {"psi_warn": 0.15, "feature_alpha": 0.01, "columns": {"amount": {"psi_error": 0.6}}}
    )
    assert rules.feature_alpha == 0.01
    assert rules.defaults == ColumnThresholds(psi_warn=0.15)
    # A column override starts from the configured defaults, not the built-in ones.
    assert rules.for_column("amount") == ColumnThresholds(psi_warn=0.15, psi_error=0.6)
    assert rules.for_column("age") is rules.defaults
    assert DecisionRules.from_mapping(None) == DecisionRules()


def test_per_column_overrides_change_the_checks_for_that_column_only(profile):
    rng = np.random.default_rng(5)
    current = make_table(rng, 5_000)
    # Both amount and age: 30% of values moved far above the reference range (PSI ~ 0.45).
    for name in ("amount", "age"):
        values = current.column(name).to_numpy().copy()
        values[:1_500] = values.max() * 10
        current = current.set_column(current.schema.get_field_index(name), name, pa.array(values))
    summary = summarize(profile, [current])
    default = compare(profile, summary)
    assert sorted(failed(default, r.FEATURE_PSI_ERROR)) == ["age", "amount"]
    psi_amount = default.columns["amount"].psi
    assert 0.3 < psi_amount < 1.0
    rules = DecisionRules.from_mapping({"columns": {"amount": {"psi_error": 1.0, "psi_warn": 1.0}}})
    relaxed = compare(profile, summary, rules)
    assert failed(relaxed, r.FEATURE_PSI_ERROR) == ["age"]
    assert failed(relaxed, r.FEATURE_PSI_WARN) == ["age"]
    amount_check = next(c for c in relaxed.checks if c.name == r.FEATURE_PSI_ERROR and c.column == "amount")
    # The configured 1.0 plus the PSI a stationary window of this size shows (stats.psi.expected_noise).
    assert amount_check.passed and amount_check.details["configured_threshold"] == 1.0
    assert amount_check.threshold == 1.0 + amount_check.details["psi_noise"] and amount_check.value == psi_amount
    # A per-column missing-rate override: 10% missing passes where 0.2 is allowed, fails elsewhere.
    holes = make_table(rng, 4_000)
    for name in ("amount", "age"):
        values = holes.column(name).to_numpy().copy()
        values[::10] = np.nan
        holes = holes.set_column(holes.schema.get_field_index(name), name, pa.array(values))
    rules = DecisionRules.from_mapping({"columns": {"age": {"missing_rate_warn": 0.2}}})
    assert failed(compare(profile, summarize(profile, [holes]), rules), r.MISSING_RATE) == ["amount"]


@pytest.mark.parametrize(
    ("config", "path", "bound"),
    [
        ({"psi_error": -1}, "thresholds.psi_error", "> 0"),
        ({"psi_warn": 0}, "thresholds.psi_warn", "> 0"),
        ({"feature_alpha": 5}, "thresholds.feature_alpha", "< 1"),
        ({"feature_alpha": 0}, "thresholds.feature_alpha", "> 0"),
        ({"prediction_alpha": 1.0}, "thresholds.prediction_alpha", "< 1"),
        ({"missing_rate_warn": -0.01}, "thresholds.missing_rate_warn", ">= 0"),
        ({"drifted_share_error": 1.01}, "thresholds.drifted_share_error", "<= 1"),
        ({"psi_epsilon": 0}, "thresholds.psi_epsilon", "> 0"),
        ({"columns": {"amount": {"missing_rate_warn": 2}}}, "thresholds.columns.amount.missing_rate_warn", "<= 1"),
        ({"psi_warn": 0.3, "psi_error": 0.2}, "thresholds.psi_warn", "psi_error"),
    ],
)
def test_rules_from_mapping_reject_values_out_of_range(config, path, bound):
    with pytest.raises(ValueError) as excinfo:
        DecisionRules.from_mapping(config)
    assert str(excinfo.value).startswith(f"{path}:") and bound in str(excinfo.value), str(excinfo.value)


def test_rules_from_mapping_reject_overrides_of_unmonitored_columns():
    with pytest.raises(ValueError, match=r"thresholds\.columns\.amout: not a monitored column"):
        DecisionRules.from_mapping({"columns": {"amout": {"psi_error": 0.4}}}, columns=["amount", "age"])
    assert DecisionRules.from_mapping({"columns": {"amount": {"psi_error": 0.4}}}, columns=["amount"])


def test_every_threshold_has_a_validated_range():
    """A new threshold field without a range would fail every monitors file at load."""
    from dataclasses import fields

    from drift_assets.stats.rules import RANGES, ColumnThresholds, DecisionRules

    names = {f.name for f in fields(ColumnThresholds)}
    names |= {f.name for f in fields(DecisionRules)} - {"defaults", "per_column"}
    assert names == set(RANGES)
