"""The pytest plugin a user's own suite gets with the package: events, contexts, functions."""

from __future__ import annotations

import pytest

from tests.helpers import ROOT

pytest_plugins = ["pytester"]
SAMPLE = ROOT / "tests" / "sample_app"

USER_TESTS = """
import json
from pathlib import Path

SAMPLE = r"{sample}"
OUT = Path(r"{out}")  # outside /tmp: the function has a /tmp of its own, as on Lambda
EXPORTS = {{"shop-greeting": "hi"}}  # the template imports another stack's output

def test_orders_are_counted(lambda_function, rmq_event):
    orders = lambda_function("OrdersFunction", template=SAMPLE, exports=EXPORTS,
                             env_vars={{"OUT_FILE": str(OUT / "out.jsonl")}})
    result = orders.invoke(rmq_event("shop.orders", [b'{{"kind": "order", "id": "o-1"}}']))
    assert result.ok and result.payload == {{"processed": 1}}
    assert result.logs[0].startswith("[OrdersFunction] INIT_START")
    assert any(line.startswith("[OrdersFunction] REPORT RequestId:") for line in result.logs)
    written = json.loads((OUT / "out.jsonl").read_text())
    assert written["queues"] == ["shop.orders::/"]

def test_a_failing_order_returns_lambdas_error(lambda_function, rmq_event):
    orders = lambda_function("OrdersFunction", template=SAMPLE, exports=EXPORTS,
                             env_vars={{"OUT_FILE": str(OUT / "out.jsonl")}})
    result = orders.invoke(rmq_event("shop.orders", [b'{{"kind": "order"}}']))
    assert not result.ok
    assert (result.error["errorType"], result.error["errorMessage"]) == (
        "ValueError", "an order without an id")

def test_an_api_function_sees_the_imported_value(lambda_function):
    hello = lambda_function("HelloFunction", template=SAMPLE, exports=EXPORTS)
    result = hello.invoke({{"httpMethod": "GET", "pathParameters": {{"name": "ada"}}}})
    assert result.ok and json.loads(result.payload["body"]) == {{"hi": "ada", "method": "GET"}}

def test_a_context_has_a_real_clock(lambda_context):
    context = lambda_context("orders", timeout=2)
    assert 1000 < context.get_remaining_time_in_millis() <= 2000
    assert context.invoked_function_arn.endswith(":function:orders")
"""


@pytest.mark.integration
def test_a_users_suite_gets_the_fixtures_without_any_set_up(pytester):
    pytester.makepyfile(test_user=USER_TESTS.format(sample=SAMPLE, out=pytester.path))
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q")
    result.assert_outcomes(passed=4)
