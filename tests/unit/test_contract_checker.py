"""The contract checker the test client runs on every answer catches what the OpenAPI document does not promise."""

from __future__ import annotations

from tests.support.contract import Contract, offline_document

CONTRACT = Contract(offline_document())
PROBLEM = b'{"type": "/problems/not_found", "title": "Not found", "status": 404, "detail": "No such account."}'


def test_a_documented_problem_conforms_and_a_broken_one_does_not() -> None:
    assert CONTRACT.violations("GET", "/v1/accounts/acme", 404, "application/problem+json", PROBLEM) == []
    broken = CONTRACT.violations("GET", "/v1/accounts/acme", 404, "application/problem+json", b'{"title": 4}')
    assert broken and all("GET /v1/accounts/{account} -> 404" in v for v in broken)


def test_a_body_that_breaks_the_success_schema_is_reported() -> None:
    assert CONTRACT.violations("GET", "/v1/accounts/acme", 200, "application/json", b'{"id": 5}')


def test_undocumented_statuses_and_content_types_are_reported() -> None:
    assert "status not documented" in CONTRACT.violations("GET", "/v1/accounts/acme", 202, "application/json",
                                                          b"{}")[0]
    assert "content type" in CONTRACT.violations("GET", "/v1/accounts/acme", 404, "text/html", b"<p>")[0]
    assert CONTRACT.violations("GET", "/v1/accounts/acme", 405, "application/problem+json", PROBLEM) == []


def test_the_most_specific_template_serves_a_path() -> None:
    found = CONTRACT.operation("POST", "/v1/orders/ord_1/pay")
    assert found is not None and found[0] == "/v1/orders/{order_id}/pay"
    assert CONTRACT.operation("GET", "/v1/no-such-route") is None
    assert CONTRACT.violations("GET", "/v1/no-such-route", 200, "application/json", b"{}")
    assert CONTRACT.violations("OPTIONS", "/v1/quotes", 204, "text/plain", b"") == []  # a CORS preflight
