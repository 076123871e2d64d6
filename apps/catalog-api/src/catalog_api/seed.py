"""The seed catalog: data in ``data/seed-catalog.json``, loaded idempotently (upserts by sku).

Every product is validated through :class:`ProductIn`, the model ``POST /products``
uses, so seed data can never hold what the API would refuse.
"""

from __future__ import annotations

import argparse
import json
import uuid
from importlib import resources
from typing import Any

import asyncpg
from pydantic import BaseModel, ConfigDict, Field
from shopflow_kit.cli import OperationError

from catalog_api.config import Settings
from catalog_api.models import Category, Product
from catalog_api.schemas import ProductIn, Slug
from catalog_api.synthetic import generate_catalog


class CategoryIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    slug: Slug
    name: str = Field(min_length=1, max_length=100)


class SeedCatalog(BaseModel):
    model_config = ConfigDict(extra="forbid")
    categories: list[CategoryIn]
    products: list[ProductIn]


def load_seed() -> SeedCatalog:
    """The packaged seed file, validated; a bad file names the product and field."""
    text = resources.files("catalog_api").joinpath("data/seed-catalog.json").read_text()
    catalog = SeedCatalog.model_validate(json.loads(text))
    slugs = {c.slug for c in catalog.categories}
    for product in catalog.products:
        if product.category not in slugs:
            raise OperationError(f"seed product {product.sku}: unknown category {product.category}")
    return catalog


async def seed_catalog(catalog: SeedCatalog | None = None) -> tuple[int, int]:
    """Upsert every category and product; returns (categories, products)."""
    catalog = catalog or load_seed()
    categories = {}
    for entry in catalog.categories:
        category = await Category.get_or_none(slug=entry.slug)
        if category is None:
            category = await Category.create(id=uuid.uuid4(), slug=entry.slug, name=entry.name)
        categories[entry.slug] = category
    for item in catalog.products:
        fields: dict[str, Any] = {
            "name": item.name,
            "description": item.description,
            "category": categories[item.category],
            "price_cents": item.price_cents,
            "currency": item.currency,
        }
        product = await Product.get_or_none(sku=item.sku)
        if product is None:
            await Product.create(id=uuid.uuid4(), sku=item.sku, stock=item.stock, **fields)
        else:
            # Re-seeding refreshes the listing but never overwrites live stock.
            await product.update_from_dict(fields).save()
    return len(catalog.categories), len(catalog.products)


def seed_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--synthetic",
        type=int,
        default=0,
        metavar="N",
        help="also add N synthetic products (catalog_api.synthetic), idempotently",
    )


async def seed(settings: Settings, args: argparse.Namespace) -> str:
    if args.synthetic < 0:
        raise OperationError("--synthetic must be 0 or more")
    categories, products = await seed_catalog()
    line = f"catalog-api: seeded {categories} categories, {products} products"
    if args.synthetic:
        try:
            added = await generate_catalog(settings.resolved_database_url(), args.synthetic)
        except asyncpg.PostgresError as exc:
            raise OperationError(f"cannot write the synthetic catalog: {exc}") from None
        line += f"; synthetic catalog of {args.synthetic} ({added} added)"
    return line
