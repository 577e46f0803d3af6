"""The problem codes the document declares per operation are the ones the code can raise."""

from __future__ import annotations

from app.operation_problems import OPERATION_PROBLEMS
from tests.gates.problem_map import TARGET, error_classes, render


def test_the_operation_problems_module_is_the_rendering_of_the_code() -> None:
    assert TARGET.read_text() == render(), (
        "an operation's problem codes changed: regenerate with python -m tests.gates.problem_map --write")


def test_codes_follow_the_handler_into_its_services_and_no_further() -> None:
    order = OPERATION_PROBLEMS[("POST", "/v1/orders")]
    assert {"budget_exhausted", "purchase_blocked", "quote_unusable"} <= set(order)  # raised deep in billing
    check = OPERATION_PROBLEMS[("GET", "/v1/entitlements/check")]
    assert "feature_not_found" in check
    assert "budget_exhausted" not in check  # a check never reaches the purchase path


def test_every_problem_type_is_documented_in_the_api_guide() -> None:
    guide = (TARGET.parents[1] / "docs" / "api.md").read_text()
    missing = sorted(cls.code for cls in error_classes().values() if f"/problems/{cls.code}`" not in guide)
    assert not missing, f"docs/api.md's table of problem types lacks: {missing}"
