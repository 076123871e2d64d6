"""The seed catalog: realistic, varied and idempotent."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio
from catalog_api.config import MODELS, Settings
from catalog_api.models import Category, Product
from catalog_api.seed import seed_catalog
from shopflow_kit.db import close_db, init_db, migrate


@pytest_asyncio.fixture(scope="module")
async def orm(database_url: str) -> AsyncIterator[None]:
    settings = Settings(database_url=database_url)
    await migrate(settings, MODELS)
    await init_db(settings, MODELS)
    yield
    await close_db()


async def test_seed_is_realistic_and_idempotent(orm: None) -> None:
    await seed_catalog()
    product = await Product.get(sku="KIT-001")
    product.stock = 3  # live stock changed since
    await product.save()
    await seed_catalog()
    assert await Product.all().count() >= 50
    assert await Category.all().count() >= 5
    assert await Product.filter(stock=0).count() >= 3
    prices = await Product.all().values_list("price_cents", flat=True)
    assert len(set(prices)) > 30
    assert (await Product.get(sku="KIT-001")).stock == 3  # re-seeding never resets stock
