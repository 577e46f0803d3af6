"""Tax rules as pure functions: tax id formats, whom a quote taxes, shares of a refund, statement parts."""

from __future__ import annotations

import pytest

from app.accounts.tax import BillingAddress, TaxId, tax_id_problem, vat_country
from billing.domain.statements import statement_parts
from billing.domain.tax import (
    LineResult,
    TaxLine,
    charged_minor,
    customer_details,
    customer_of,
    net_share,
    not_computed,
    summarise,
    tax_items,
)


@pytest.mark.parametrize(("kind", "value"), [
    ("eu_vat", "DE123456789"), ("eu_vat", "FR40303265045"), ("eu_vat", "NL123456789B01"), ("eu_vat", "EL123456789"),
    ("eu_vat", "ie 1234567 wa"), ("gb_vat", "GB123456789"), ("ch_vat", "CHE-123.456.789 MWST"),
    ("no_vat", "123456789MVA"), ("us_ein", "12-3456789"), ("au_abn", "12345678912"),
])
def test_well_formed_tax_ids_pass(kind: str, value: str) -> None:
    assert tax_id_problem(TaxId(type=kind, value=value)) is None


@pytest.mark.parametrize(("kind", "value", "why"), [
    ("eu_vat", "DE12345678", "DE VAT"), ("eu_vat", "XX123456789", "member state"), ("eu_vat", "NL123456789", "NL"),
    ("gb_vat", "123456789", "gb_vat"), ("us_ein", "1234", "us_ein"), ("br_cnpj", "123", "unsupported"),
])
def test_malformed_tax_ids_say_why(kind: str, value: str, why: str) -> None:
    problem = tax_id_problem(TaxId(type=kind, value=value))
    assert problem is not None and why in problem


def test_greek_vat_numbers_belong_to_greece() -> None:
    assert vat_country(TaxId(type="eu_vat", value="EL123456789")) == "GR"
    assert vat_country(TaxId(type="gb_vat", value="GB123456789")) is None


def test_a_card_buyer_with_a_billing_country_is_taxed_as_a_person_there() -> None:
    business = dict(address=BillingAddress(country="FR"), tax_ids=[TaxId(type="eu_vat", value="FR40303265045")])
    person = customer_of(**business, status="reverse_charge", user_country="NL", card_route=True)
    assert person is not None and (person.country, person.tax_ids, person.status) == ("NL", (), "taxable")
    company = customer_of(**business, status="taxable", user_country="NL", card_route=False)
    assert company is not None and company.country == "FR" and len(company.tax_ids) == 1
    assert customer_of(address=None, tax_ids=[], status="taxable", user_country=None, card_route=True) is None
    details = customer_details(company)
    assert details["taxability_override"] == "none" and details["tax_ids"] == [
        {"type": "eu_vat", "value": "FR40303265045"}]


def test_nothing_due_now_is_not_sent_to_be_taxed() -> None:
    items = tax_items([("a", 1000, 2, "txcd_10103001", "exclusive"), ("metered", 0, 1, None, "exclusive")])
    assert [i.reference for i in items] == ["a"]


def test_a_calculation_sums_tax_by_jurisdiction_and_rate() -> None:
    de = TaxLine(jurisdiction="Germany", country="DE", state=None, level="country", rate="19.0",
                 taxability="standard_rated", taxable_minor=1000, tax_minor=190)
    tax = summarise(calculation_id="taxcalc_1", amount_total_minor=2190, tax_exclusive_minor=190,
                    tax_inclusive_minor=160, lines=[LineResult("a", 190, (de,)), LineResult("b", 160, (
                        TaxLine(jurisdiction="Germany", country="DE", state=None, level="country", rate="19.0",
                                taxability="standard_rated", taxable_minor=840, tax_minor=160),))])
    assert (tax.net_minor, tax.tax_minor, tax.gross_minor) == (1840, 350, 2190)
    [line] = tax.breakdown
    assert (line.taxable_minor, line.tax_minor) == (1840, 350) and not tax.reverse_charge


def test_a_card_is_charged_the_gross_only_when_tax_was_computed() -> None:
    assert charged_minor(1000, None) == 1000
    assert charged_minor(1000, not_computed("no address")) == 1000


def test_sales_credit_reverses_the_net_share_of_a_taxed_refund() -> None:
    assert net_share(134, charged_minor=268, tax_minor=43) == 113  # 112.5 -> 113
    assert net_share(268, charged_minor=268, tax_minor=43) == 225
    assert net_share(100, charged_minor=100, tax_minor=None) == 100


def test_statement_parts_split_a_refunded_net_over_the_modules() -> None:
    parts = statement_parts([("a", 1000, "txcd_10103001", "exclusive"), ("b", 500, None, "inclusive")],
                            net_minor=1500)
    assert [(p.module, p.amount_minor, p.tax_behavior) for p in parts] == [("a", 1000, "exclusive"),
                                                                           ("b", 500, "inclusive")]
    split = statement_parts([("a", 1000, None, "exclusive"), ("b", 500, None, "exclusive")], net_minor=301)
    assert [p.amount_minor for p in split] == [200, 101] and sum(p.amount_minor for p in split) == 301
    assert statement_parts([("a", 1000, None, "exclusive")], net_minor=0) == ()
