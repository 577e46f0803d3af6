"""An account's tax identity: billing address, tax ids (format checked per type) and tax status. Pure.

Stripe Tax does not validate tax ids; we check their *format* (the shape each tax authority publishes), so a
typo is a 422 at the door instead of a silently wrong invoice. Whether an id is registered is not checked.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from app.errors import FieldError

TaxStatus = Literal["taxable", "exempt", "reverse_charge"]
TAX_STATUSES: tuple[TaxStatus, ...] = ("taxable", "exempt", "reverse_charge")

Country = Annotated[str, Meta(min_length=2, max_length=2, pattern=r"^[A-Z]{2}$",
                              description="ISO 3166-1 alpha-2 country code, e.g. DE")]
_Line = Annotated[str, Meta(max_length=200, pattern=r"^[^\x00-\x1f]*$")]
_Short = Annotated[str, Meta(max_length=40, pattern=r"^[^\x00-\x1f]*$")]

# The EU member states' VAT number shapes (after the country prefix); Greece uses EL.
EU_VAT: dict[str, str] = {
    "AT": r"U\d{8}", "BE": r"[01]\d{9}", "BG": r"\d{9,10}", "CY": r"\d{8}[A-Z]", "CZ": r"\d{8,10}",
    "DE": r"\d{9}", "DK": r"\d{8}", "EE": r"\d{9}", "EL": r"\d{9}", "ES": r"[A-Z0-9]\d{7}[A-Z0-9]",
    "FI": r"\d{8}", "FR": r"[A-HJ-NP-Z0-9]{2}\d{9}", "HR": r"\d{11}", "HU": r"\d{8}", "IE": r"\d{7}[A-W][A-I]?",
    "IT": r"\d{11}", "LT": r"\d{9}|\d{12}", "LU": r"\d{8}", "LV": r"\d{11}", "MT": r"\d{8}", "NL": r"\d{9}B\d{2}",
    "PL": r"\d{10}", "PT": r"\d{9}", "RO": r"\d{2,10}", "SE": r"\d{12}", "SI": r"\d{8}", "SK": r"\d{10}",
}
EU_COUNTRIES = frozenset({"GR" if c == "EL" else c for c in EU_VAT})

# Other types we accept, each a whole-value pattern (Stripe's examples of each type fit them).
_PATTERNS: dict[str, str] = {
    "gb_vat": r"GB(\d{9}|\d{12}|GD\d{3}|HA\d{3})",
    "ch_vat": r"CHE-?\d{3}\.?\d{3}\.?\d{3} ?(MWST|TVA|IVA)",
    "no_vat": r"\d{9}MVA",
    "us_ein": r"\d{2}-?\d{7}",
    "ca_bn": r"\d{9}",
    "au_abn": r"\d{11}",
}
TAX_ID_TYPES: tuple[str, ...] = ("eu_vat", *_PATTERNS)

TaxIdType = Annotated[str, Meta(min_length=2, max_length=20, pattern=r"^[a-z]{2}_[a-z_]+$",
                                description="Stripe's tax id type: " + ", ".join(TAX_ID_TYPES))]


class BillingAddress(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """Where the account is billed: the address taxes are computed for (Stripe Tax needs the country; the US
    also the state and postal code; Canada the province)."""

    country: Country
    state: _Short | None = None
    postal_code: _Short | None = None
    city: _Line | None = None
    line1: _Line | None = None
    line2: _Line | None = None


class TaxId(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """A tax registration number of the customer, e.g. ``{"type": "eu_vat", "value": "FR40303265045"}``."""

    type: TaxIdType
    value: Annotated[str, Meta(min_length=2, max_length=40, pattern=r"^[A-Za-z0-9 .\-]+$")]


def normalise_tax_id(tax_id: TaxId) -> TaxId:
    """Upper case, spaces and dots kept only where the format needs them (Swiss ids)."""
    value = tax_id.value.strip().upper()
    if tax_id.type != "ch_vat":
        value = value.replace(" ", "").replace(".", "")
    return TaxId(type=tax_id.type, value=value)


def tax_id_problem(tax_id: TaxId) -> str | None:
    """Why this id's format is not one its type allows (None: it is)."""
    value = normalise_tax_id(tax_id).value
    if tax_id.type == "eu_vat":
        prefix, rest = value[:2], value[2:]
        shape = EU_VAT.get(prefix)
        if shape is None:
            return f"an EU VAT number starts with a member state's prefix ({', '.join(sorted(EU_VAT))})"
        return None if re.fullmatch(shape, rest) else f"not the format of a {prefix} VAT number"
    shape = _PATTERNS.get(tax_id.type)
    if shape is None:
        return f"unsupported tax id type; one of {', '.join(TAX_ID_TYPES)}"
    return None if re.fullmatch(shape, value) else f"not the format of a {tax_id.type} number"


def tax_id_errors(tax_ids: list[TaxId], *, field: str = "tax_ids") -> list[FieldError]:
    """One field error per malformed id, by its index."""
    return [FieldError(field=f"{field}[{i}].value" if "unsupported" not in why else f"{field}[{i}].type",
                       message=why)
            for i, t in enumerate(tax_ids) if (why := tax_id_problem(t)) is not None]


def vat_country(tax_id: TaxId) -> str | None:
    """The member state an EU VAT number belongs to (EL is Greece)."""
    if tax_id.type != "eu_vat":
        return None
    prefix = normalise_tax_id(tax_id).value[:2]
    return "GR" if prefix == "EL" else prefix


def address_problems(address: BillingAddress, *, field: str = "billing_address") -> list[FieldError]:
    """What Stripe Tax needs and the address lacks: the US and Canada tax by state or province, the US by ZIP."""
    errors = []
    if address.country in ("US", "CA") and not address.state:
        errors.append(FieldError(field=f"{field}.state", message=f"a {address.country} address needs its state "
                                                                   "or province (tax is levied there)"))
    if address.country == "US" and not address.postal_code:
        errors.append(FieldError(field=f"{field}.postal_code", message="a US address needs its ZIP code"))
    return errors
