"""The request contract: what POST /credit-request accepts and how it says no."""

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from credit.domain import CreditRequest, validate_request
from credit.errors import ValidationError


def test_the_readme_example_is_valid():
    assert validate_request({"age": 20, "value": 100000}) == CreditRequest(20, Decimal(100000))


@pytest.mark.parametrize("age", [0, 18, 150])
def test_ages_at_the_bounds_are_accepted(age):
    assert validate_request({"age": age, "value": 1}).age == age


@pytest.mark.parametrize(
    ("age", "expected"),
    [
        ("abc", "must be an integer"),
        ("20", "must be an integer"),
        (True, "must be an integer"),
        (20.5, "must be an integer"),
        (None, "must be an integer"),
        (-1, "from 0 to 150"),
        (151, "from 0 to 150"),
    ],
)
def test_bad_ages_are_rejected_naming_the_field(age, expected):
    with pytest.raises(ValidationError) as caught:
        validate_request({"age": age, "value": 100})
    assert expected in caught.value.problems["age"]


@pytest.mark.parametrize(
    "value", [Decimal("0.01"), 1, Decimal("100000.5"), Decimal("1E+12"), 10**12, Decimal("12.30")]
)
def test_money_values_are_accepted(value):
    assert validate_request({"age": 30, "value": value}).value == Decimal(value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0, "greater than 0"),
        (-5, "greater than 0"),
        (10**12 + 1, "at most 1e12"),
        (Decimal("0.001"), "at most 2 decimal places"),
        ("100", "must be a number"),
        (False, "must be a number"),
        ([1], "must be a number"),
        (Decimal("NaN"), "finite"),
        (Decimal("Infinity"), "finite"),
    ],
)
def test_bad_values_are_rejected_naming_the_field(value, expected):
    with pytest.raises(ValidationError) as caught:
        validate_request({"age": 30, "value": value})
    assert expected in caught.value.problems["value"]


def test_unknown_fields_are_named():
    with pytest.raises(ValidationError) as caught:
        validate_request({"age": 30, "value": 5, "zeta": 1, "alpha": 2})
    assert caught.value.problems["body"] == "has unknown field(s): alpha, zeta"


def test_every_problem_is_reported_at_once():
    with pytest.raises(ValidationError) as caught:
        validate_request({"age": "x"})
    assert set(caught.value.problems) == {"age", "value"}
    assert caught.value.problems["value"] == "is required"


@pytest.mark.parametrize("payload", [[], "text", 5, None, [{"age": 1}]])
def test_a_body_that_is_not_an_object_is_rejected(payload):
    with pytest.raises(ValidationError) as caught:
        validate_request(payload)
    assert "must be a JSON object" in caught.value.problems["body"]


@given(
    st.dictionaries(
        st.text(max_size=8), st.one_of(st.integers(), st.text(), st.floats(), st.none())
    )
)
def test_validation_either_accepts_or_raises_validation_error(payload):
    try:
        request = validate_request(payload)
    except ValidationError as exc:
        assert exc.problems
    else:
        assert 0 <= request.age <= 150
        assert 0 < request.value <= 10**12


@given(
    st.integers(0, 150), st.decimals(min_value=Decimal("0.01"), max_value=Decimal(10**12), places=2)
)
def test_every_valid_pair_is_accepted_unchanged(age, value):
    request = validate_request({"age": age, "value": value})
    assert (request.age, request.value) == (age, value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        # Rounding to Decimal's 28 digits made these exact-looking amounts pass.
        (Decimal("100000.0000000000000000000000001"), "at most 2 decimal places"),
        (Decimal("1000000000000.000000000000000001"), "at most 2 decimal places"),
        (Decimal("0.0000000000000000000000000001"), "at most 2 decimal places"),
        (Decimal("1E+999999999"), "at most 1e12"),
        (Decimal("1E-999999999"), "at most 2 decimal places"),
        (Decimal("9999999999999.99"), "at most 1e12"),  # fits DECIMAL(15,2), not the contract
        (Decimal("-0.00"), "greater than 0"),
    ],
)
def test_decimal_values_are_judged_on_their_exact_digits(value, expected):
    with pytest.raises(ValidationError) as caught:
        validate_request({"age": 30, "value": value})
    assert expected in caught.value.problems["value"]


def test_trailing_zeros_are_not_decimals():
    assert validate_request(
        {"age": 30, "value": Decimal("12.3000000000000000000000000000000")}
    ).value == Decimal("12.3")
