"""The two rules are pure functions with thresholds from the function's environment."""

from decimal import Decimal

import pytest

from tests.helpers import load_rule

age = load_rule("age_rule")
value = load_rule("value_rule")


def test_readme_example_passes_both_rules():
    assert age.judge(20).passed
    assert value.judge(100000).passed


def test_readme_counter_example_fails_both_rules():
    assert age.judge(17) == age.Verdict(False, "age 17 is below the minimum 18")
    assert value.judge(500000) == value.Verdict(False, "value 500000 is above the maximum 100000")


def test_bounds_are_inclusive():
    assert age.check_age(18, 18).passed
    assert value.check_value(Decimal(100000), Decimal(100000)).passed
    assert not value.check_value(Decimal("100000.01"), Decimal(100000)).passed


def test_thresholds_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("MIN_AGE", "21")
    monkeypatch.setenv("MAX_VALUE", "50")
    assert not age.judge(20).passed
    assert not value.judge(51).passed


def test_an_explicit_threshold_beats_the_environment(monkeypatch):
    monkeypatch.setenv("MIN_AGE", "21")
    assert age.judge(20, minimum=18).passed


@pytest.mark.parametrize("raw", ["abc", None, True, 1.5, -3])
def test_a_field_that_is_not_an_age_raises_value_error(raw):
    with pytest.raises(ValueError):
        age.judge(raw)


def test_a_bad_threshold_names_the_variable(monkeypatch):
    monkeypatch.setenv("MIN_AGE", "eighteen")
    with pytest.raises(ValueError, match="MIN_AGE"):
        age.judge(20)
