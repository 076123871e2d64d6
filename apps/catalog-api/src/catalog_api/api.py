"""catalog-api's HTTP API (the catalog section of API.md) and its internal endpoints."""

from __future__ import annotations

import uuid

from sanic import Blueprint, HTTPResponse, Request, json
from shopflow_kit import Problem, json_body, parse_query, require_role, require_scope
from shopflow_kit.http import cached_json, page_body
from shopflow_kit.openapi import Link, Page, operation

from catalog_api import service
from catalog_api.schemas import (
    CategoryList,
    ProductIn,
    ProductOut,
    ProductPatch,
    ProductQuery,
    ReservationIn,
)

bp = Blueprint("catalog")


def _product_links(id_expression: str, *, admin: bool = False) -> dict[str, Link]:
    """Where a product's id leads: its page, the shopper's cart, and the admin's edits."""
    product = {"product_id": id_expression}
    links = {
        "GetProduct": Link("get_product", parameters=product),
        "AddToCart": Link(
            service="order-mgmt",
            method="PUT",
            path="/cart/items/{product_id}",
            parameters=product,
            request_body={"quantity": 1},
        ),
    }
    if admin:
        links["UpdateProduct"] = Link("update_product", parameters=product)
        links["DeleteProduct"] = Link("delete_product", parameters=product)
    return links


internal = Blueprint("catalog_internal", url_prefix="/internal")


@bp.get("/products")
@operation(
    "Search and browse products",
    description="Full-text search over name and description (ranked), filters, sorts and "
    "pagination. `stock_available` is real time: stock minus live reservations. `total` "
    f"counts the matches exactly up to {service.EXACT_TOTAL_UP_TO:,}; above that it is "
    f"PostgreSQL's estimate (at least {service.EXACT_TOTAL_UP_TO + 1:,}), as large shops "
    'show "1,000+ results". A full-text search ranks its matches once per 5 seconds (the '
    "responses' max-age); prices and `stock_available` are always read live, and a product "
    "that no longer matches the filters is left out.",
    responses={200: Page[ProductOut], 304: None},
    query=ProductQuery,
    links={200: _product_links("$response.body#/items/0/id")},
)
async def list_products(request: Request) -> HTTPResponse:
    query = parse_query(request, ProductQuery)
    items, total = await service.search_products(query)
    return cached_json(request, page_body(items, total, query))


@bp.get("/products/<product_id:str>")
@operation(
    "One product",
    responses={200: ProductOut, 304: None},
    problems=[404],
    links={200: _product_links("$response.body#/id")},
)
async def get_product(request: Request, product_id: str) -> HTTPResponse:
    return cached_json(request, await service.get_product(product_id))


@bp.get("/categories")
@operation("Categories with their product counts", responses={200: CategoryList, 304: None})
async def list_categories(request: Request) -> HTTPResponse:
    return cached_json(request, {"items": await service.list_categories()})


@bp.post("/products")
@operation(
    "Create a product (admin)",
    responses={201: ProductOut},
    problems=[409],
    links={201: _product_links("$response.body#/id", admin=True)},
)
@require_role("admin")
@json_body(ProductIn)
async def create_product(request: Request, body: ProductIn) -> HTTPResponse:
    return json(await service.create_product(body), status=201)


@bp.patch("/products/<product_id:str>")
@operation("Update a product (admin)", responses={200: ProductOut}, problems=[404, 409])
@require_role("admin")
@json_body(ProductPatch)
async def update_product(request: Request, product_id: str, body: ProductPatch) -> HTTPResponse:
    return json(await service.update_product(product_id, body))


@bp.delete("/products/<product_id:str>")
@operation("Delete a product (admin)", responses={204: None}, problems=[404])
@require_role("admin")
async def delete_product(request: Request, product_id: str) -> HTTPResponse:
    await service.delete_product(product_id)
    return HTTPResponse(status=204)


# --- internal: order-mgmt's service token with inventory:reserve -----------------------


@internal.post("/reservations")
@require_scope("inventory:reserve")
@json_body(ReservationIn)
async def reserve(request: Request, body: ReservationIn) -> HTTPResponse:
    reservation, created = await service.reserve(
        body.order_id, [(i.product_id, i.quantity) for i in body.items], body.ttl_seconds
    )
    return json(reservation, status=201 if created else 200)


def _order_id(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise Problem(404, "no reservation for this order") from None


@internal.post("/reservations/<order_id:str>/commit")
@require_scope("inventory:reserve")
async def commit(request: Request, order_id: str) -> HTTPResponse:
    return json(await service.commit(_order_id(order_id)))


@internal.post("/reservations/<order_id:str>/release")
@require_scope("inventory:reserve")
async def release(request: Request, order_id: str) -> HTTPResponse:
    return json(await service.release(_order_id(order_id)))


@internal.get("/products/prices")
@require_scope("inventory:reserve")
async def prices(request: Request) -> HTTPResponse:
    raw = [part for value in request.args.getlist("ids") for part in value.split(",") if part]
    if not raw or len(raw) > 100:
        raise Problem(
            400,
            "ids must list 1 to 100 product ids",
            errors=[{"field": "ids", "message": "1-100 ids"}],
        )
    try:
        ids = [uuid.UUID(v) for v in raw]
    except ValueError:
        raise Problem(
            400, "ids must be UUIDs", errors=[{"field": "ids", "message": "not a UUID"}]
        ) from None
    return json({"items": await service.prices(ids)})
