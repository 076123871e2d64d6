"""Live contracts: schemathesis against each public OpenAPI document, through the gateway.

Bounded for `make test` (a few examples per operation, a fixed seed); `make fuzz`
runs the same for longer. The checks must find nothing: no server error, every
status code, content type and response body as documented. A stateful run
follows the documents' links across services (register -> login -> cart ->
checkout -> order -> payment). Then each check is shown able to fail: a copy of
a document that no longer tells the truth must be caught.

The platform is this module's own: fuzzing ``POST /auth/login`` trips
user-auth's per-address throttle for 15 minutes, which would lock the shared
platform's other tests out.
"""

from __future__ import annotations

import copy
import shutil
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from shopctl.services import SERVICES, has_code

from tests.contracts import fuzz
from tests.utils.e2e import ROOT, Platform, start_platform

LIVE = [s.name for s in SERVICES if has_code(s, ROOT)]
#: One session pair per schemathesis run, logged in before any fuzzing starts.
RUNS = len(LIVE) + 4


@pytest.fixture(scope="module")
def own() -> Iterator[Platform]:
    running = start_platform()
    yield running
    running.stop()
    shutil.rmtree(running.state.parent, ignore_errors=True)


@pytest.fixture(scope="module")
def docs(own: Platform) -> dict[str, Any]:
    return fuzz.documents(own)


Sessions = Callable[[], dict[str, dict[str, str]]]


@pytest.fixture(scope="module")
def logins(own: Platform) -> Sessions:
    """Hands each run its own sessions, all logged in before the first run."""
    shopper = fuzz.customer(own)
    pool = [fuzz.sessions(own, shopper) for _ in range(RUNS)]
    return pool.pop


def test_every_service_serves_its_document(docs: dict[str, Any]) -> None:
    assert sorted(docs) == sorted(LIVE)


@pytest.mark.parametrize("service", LIVE)
def test_the_service_keeps_its_document(
    service: str, own: Platform, docs: dict[str, Any], logins: Sessions
) -> None:
    run = fuzz.schemathesis(own, docs[service], tokens=logins(), max_examples=10)
    assert run.ok, run.report()
    assert " passed" in run.output and "generated" in run.output


def test_stateful_runs_follow_the_links(
    own: Platform, docs: dict[str, Any], logins: Sessions
) -> None:
    document = fuzz.gateway_document(docs)
    run = fuzz.schemathesis(own, document, tokens=logins(), phases="stateful", max_examples=10)
    assert run.ok, run.report()
    assert "API Links:" in run.output
    assert " 0 covered" not in run.output, run.report()


def test_the_gateway_document_links_the_journey(docs: dict[str, Any]) -> None:
    document = fuzz.gateway_document(docs)
    paths = document["paths"]

    def links(path: str, method: str, status: str) -> dict[str, Any]:
        return paths[path][method]["responses"][status].get("links", {})

    assert links("/auth/register", "post", "201")["Login"]["operationId"] == "login"
    after_login = links("/auth/login", "post", "200")
    assert after_login["Me"]["parameters"] == {
        "header.Authorization": "Bearer {$response.body#/access_token}"
    }
    if "order-mgmt" in docs:
        assert after_login["AddToCart"]["operationRef"] == "#/paths/~1cart~1items~1{product_id}/put"
    else:  # a link into a service that is not running is dropped, not left dangling
        assert "AddToCart" not in after_login
    # Schemas are namespaced per service, and every reference still resolves.
    schemas = document["components"]["schemas"]
    assert "catalog_api__Problem" in schemas and "user_auth__Problem" in schemas
    text = str(document)
    for name in schemas:
        assert name.count("__") == 1
    assert "'#/components/schemas/Problem'" not in text


def _undocumented_404(docs: dict[str, Any]) -> dict[str, Any]:
    document = copy.deepcopy(docs["catalog-api"])
    del document["paths"]["/products/{product_id}"]["get"]["responses"]["404"]
    return document


def _price_as_text(docs: dict[str, Any]) -> dict[str, Any]:
    document = copy.deepcopy(docs["catalog-api"])
    document["components"]["schemas"]["ProductOut"]["properties"]["price_cents"] = {
        "type": "string"
    }
    return document


@pytest.mark.parametrize(
    ("break_document", "operation", "check", "expected"),
    [
        (_undocumented_404, "get_product", "status_code_conformance", "Undocumented status code"),
        (
            _price_as_text,
            "list_products",
            "response_schema_conformance",
            "Response violates schema",
        ),
    ],
    ids=["undocumented-status-code", "response-schema"],
)
def test_a_document_that_lies_is_caught(
    own: Platform,
    docs: dict[str, Any],
    logins: Sessions,
    break_document: Any,
    operation: str,
    check: str,
    expected: str,
) -> None:
    run = fuzz.schemathesis(
        own,
        break_document(docs),
        tokens=logins(),
        max_examples=5,
        checks=[check],
        extra=["--include-operation-id", operation],
    )
    assert not run.ok
    assert expected in run.output, run.report()
