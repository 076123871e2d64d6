"""The kit's OpenAPI document: links, roles in `security`, and the gateway's 414."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel
from sanic import HTTPResponse, Sanic, json
from shopflow_kit import require_role, require_user
from shopflow_kit.http import PageQuery
from shopflow_kit.openapi import Link, build, operation


class Thing(BaseModel):
    id: str


def app() -> Sanic[Any, Any]:
    sample = Sanic("links_sample")

    @sample.get("/things")
    @operation(
        "List things",
        responses={200: Thing},
        query=PageQuery,
        links={200: {"GetThing": Link("get_thing", parameters={"thing_id": "$response.body#/id"})}},
    )
    async def list_things(request: Any) -> HTTPResponse:
        return json({})

    @sample.get("/things/<thing_id:str>")
    @operation(
        "One thing",
        responses={200: Thing},
        links={
            200: {
                "Pay": Link(
                    service="payment-api",
                    method="GET",
                    path="/payments/{payment_id}",
                    parameters={"payment_id": "$response.body#/id"},
                )
            }
        },
    )
    @require_user
    async def get_thing(request: Any, thing_id: str) -> HTTPResponse:
        return json({})

    @sample.delete("/things")
    @operation("Delete every thing", responses={204: None})
    @require_role("admin")
    async def delete_things(request: Any) -> HTTPResponse:
        return HTTPResponse(status=204)

    return sample


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return build(app(), "sample", ["/things"])


def test_links_by_operation_id_and_into_another_document(document: dict[str, Any]) -> None:
    listed = document["paths"]["/things"]["get"]["responses"]["200"]["links"]
    assert listed == {
        "GetThing": {"operationId": "get_thing", "parameters": {"thing_id": "$response.body#/id"}}
    }
    one = document["paths"]["/things/{thing_id}"]["get"]["responses"]["200"]["links"]
    assert (
        one["Pay"]["operationRef"] == "/payments/openapi.json#/paths/~1payments~1{payment_id}/get"
    )


def test_roles_are_named_in_security(document: dict[str, Any]) -> None:
    assert document["paths"]["/things"]["delete"]["security"] == [{"bearer": ["admin"]}]
    assert document["paths"]["/things/{thing_id}"]["get"]["security"] == [{"bearer": []}]
    assert "security" not in document["paths"]["/things"]["get"]


def test_urls_with_client_data_document_the_gateways_414(document: dict[str, Any]) -> None:
    assert "414" in document["paths"]["/things"]["get"]["responses"]  # a query
    assert "414" in document["paths"]["/things/{thing_id}"]["get"]["responses"]  # a path id
    assert "414" not in document["paths"]["/things"]["delete"]["responses"]


def test_a_link_without_a_target_is_refused() -> None:
    with pytest.raises(ValueError, match="needs an operation_id"):
        Link().render()
    with pytest.raises(ValueError, match="needs its method and path"):
        Link(service="payment-api").render()
