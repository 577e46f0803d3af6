"""The docs' examples work for a reader: each curl is a call the API accepts (a documented route, declared query
parameters, a body its schema takes, the headers it requires), and the SDK guide names only methods the SDK has,
called with arguments their signatures take (tests/gates/doc_examples.py)."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.gates.doc_examples import ROOT, examples, sdk_examples, sdk_violations, violations
from tests.support.contract import Contract, offline_document

CONTRACT = Contract(offline_document())


def test_every_curl_example_of_the_docs_is_a_call_the_api_accepts() -> None:
    found = examples()
    assert len(found) >= 100, f"only {len(found)} curl examples read: the reader lost track of the docs"
    problems = [p for example in found for p in violations(CONTRACT, example)]
    assert not problems, "docs examples the API would refuse:\n" + "\n".join(problems)


def test_the_gate_catches_what_a_reader_would_trip_on(tmp_path: Path) -> None:
    doc = tmp_path / "guide.md"
    doc.write_text(textwrap.dedent("""\
        ```sh
        auth=(-H "Authorization: Bearer $KEY" -H 'content-type: application/json')
        curl -s "${auth[@]}" -d '{"user": "acme-ana",
          "itemz": [{"module": "reports_basic"}]}' $BASE/v1/quotes
        curl -s "${auth[@]}" "$BASE/v1/accounts?limit=5&colour=red"
        curl -s "${auth[@]}" -d '{"quote_id": "quo_01jd0000000000000000000000"}' $BASE/v1/orders
        curl -s "${auth[@]}" -X POST $BASE/v1/nowhere
        curl -s "${auth[@]}" -H 'Idempotency-Key: k-1' -d '{"quote_id": "quo_01jd0000000000000000000000"}' \\
             $BASE/v1/orders                                                                           # fine
        curl -s localhost:8000/v1/accounts/acme                                                      # fine
        curl -s http://127.0.0.1:12111/v1/customers                        # another service: not ours
        ```
        """))
    found = examples([doc])
    assert len(found) == 6, [e.where for e in found]  # the Stripe fake's call is not ours
    problems = [p for example in found for p in violations(CONTRACT, example)]
    assert any("guide.md:3" in p and "itemz" in p for p in problems), problems
    assert any("guide.md:5" in p and "'colour'" in p for p in problems), problems
    assert any("guide.md:6" in p and "Idempotency-Key" in p for p in problems), problems
    assert any("guide.md:7" in p and "no documented operation" in p for p in problems), problems
    assert len(problems) == 5, problems  # the quote also lacks its required "items"


def test_examples_are_read_from_the_real_docs() -> None:
    where = {e.where.split(":")[0] for e in examples()}
    assert {"README.md", "docs/api.md", "docs/payments.md", "docs/webhooks.md"} <= where
    assert (ROOT / "docs" / "api.md").exists()


@pytest.fixture(scope="module")
def sdk_clients() -> Iterator[tuple[Any, Any]]:
    import commerce_sdk

    sync_client = commerce_sdk.Commerce(api_key="sk_docs", base_url="http://127.0.0.1:9")  # never called
    async_client = commerce_sdk.AsyncCommerce(api_key="sk_docs", base_url="http://127.0.0.1:9")
    yield sync_client, async_client
    sync_client.close()


def test_the_sdk_guide_names_only_what_the_sdk_has(sdk_clients: tuple[Any, Any]) -> None:
    import commerce_sdk

    calls, imports = sdk_examples()
    assert len(calls) >= 25 and any(c.called for c in calls), calls  # the quick start and the resources list
    problems = [p for call in calls for p in sdk_violations(call, *sdk_clients)]
    problems += [f"docs/sdk.md imports {name} from commerce_sdk, which has none" for name in imports
                 if not hasattr(commerce_sdk, name)]
    assert not problems, "\n".join(problems)


def test_the_sdk_check_catches_a_renamed_method_and_a_wrong_argument(tmp_path: Path,
                                                                    sdk_clients: tuple[Any, Any]) -> None:
    doc = tmp_path / "sdk.md"
    doc.write_text(textwrap.dedent("""\
        ## Resources

        `quotes` (`create`, `fetch`), `session_tokens.mint`.

        ```python
        client.entitlements.check("nw-olga", "pdf_export", quantity=1)
        client.usage.record(usr="nw-olga", feature="reports")
        await client.orders.get("ord_1", "extra")
        ```
        """))
    calls, _ = sdk_examples(doc)
    problems = [p for call in calls for p in sdk_violations(call, *sdk_clients)]
    assert any("fetch" in p for p in problems) and any("mint" in p for p in problems), problems
    assert any("usage.record" in p and "user" in p for p in problems), problems  # "usr" misses the required user
    assert any("orders.get" in p for p in problems), problems
    assert len(problems) == 4, problems
