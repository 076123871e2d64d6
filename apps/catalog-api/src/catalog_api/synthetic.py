"""A synthetic catalog at realistic scale, for benchmarks and capacity checks.

``generate_catalog(url, n)`` makes products ``SYN-0000000`` .. ``SYN-{n-1}``
from the vocabulary in ``vocabulary.json``: names and descriptions built from
brands, adjectives, materials and uses, log-normal prices around each noun's
typical price, and stock with some items sold out. Product ``i`` depends only
on ``i`` and ``seed``, so a run is idempotent (existing SKUs are left alone,
live stock included) and a larger ``n`` extends a smaller one.

Word frequencies follow a Zipf-like curve, as real catalogues do: a few
adjectives and materials are common ("Classic", "stainless steel"), most are
rare, so search benchmarks see both broad and narrow queries.
"""

from __future__ import annotations

import json
import math
import random
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib import resources
from typing import Any

import asyncpg

SKU_PREFIX = "SYN-"
BATCH = 20_000
_COLUMNS = ("id", "sku", "name", "description", "category", "price_cents", "stock", "created_at")
_EPOCH = datetime(2024, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Vocabulary:
    brands: tuple[str, ...]
    adjectives: tuple[str, ...]
    materials: tuple[str, ...]
    colors: tuple[str, ...]
    templates: tuple[str, ...]
    features: tuple[str, ...]
    # slug -> (display name, ((noun, typical price in cents), ...), uses)
    categories: dict[str, tuple[str, tuple[tuple[str, int], ...], tuple[str, ...]]]

    @classmethod
    def load(cls) -> Vocabulary:
        raw = json.loads(resources.files("catalog_api").joinpath("vocabulary.json").read_text())
        words = {k: tuple(str(w) for w in raw[k]) for k in ("brands", "adjectives", "materials")}
        categories = {
            str(slug): (
                str(spec["name"]),
                tuple((str(noun), int(price)) for noun, price in spec["nouns"]),
                tuple(str(u) for u in spec["uses"]),
            )
            for slug, spec in raw["categories"].items()
        }
        vocabulary = cls(
            colors=tuple(raw["colors"]),
            templates=tuple(raw["templates"]),
            features=tuple(raw["features"]),
            categories=categories,
            **words,
        )
        if not all(vocabulary.categories.values()) or not vocabulary.templates:
            raise ValueError("vocabulary.json: every category needs nouns and uses")
        return vocabulary


def _zipf(rng: random.Random, items: Sequence[str], s: float = 1.0) -> str:
    # Rank r is chosen with weight 1/r^s: the first entries are the common words.
    weights = [1.0 / (rank + 1) ** s for rank in range(len(items))]
    return rng.choices(items, weights=weights)[0]


def synthetic_product(vocabulary: Vocabulary, seed: int, index: int) -> tuple[Any, ...]:
    """Product ``index`` as a row of ``_COLUMNS``; the same inputs give the same row."""
    rng = random.Random(f"{seed}:{index}")
    slug = _zipf(rng, sorted(vocabulary.categories), s=0.5)
    _, nouns, uses = vocabulary.categories[slug]
    noun, typical = nouns[min(int(rng.expovariate(0.25)), len(nouns) - 1)]
    words = {
        "adjective": _zipf(rng, vocabulary.adjectives),
        "material": _zipf(rng, vocabulary.materials),
        "color": _zipf(rng, vocabulary.colors),
        "use": rng.choice(uses),
        "feature": rng.choice(vocabulary.features),
        "noun": noun.lower(),
    }
    brand = _zipf(rng, vocabulary.brands, s=0.7)
    name = f"{brand} {words['adjective']} {noun}"
    if rng.random() < 0.4:
        name += f", {words['color'].title()}"
    sentences = rng.sample(vocabulary.templates, k=2)
    description = " ".join(t.format(**words) for t in sentences)
    description = description[0].upper() + description[1:]
    price = max(99, int(round(typical * math.exp(rng.gauss(0, 0.35)), -1)) - 1)
    stock = 0 if rng.random() < 0.07 else int(rng.expovariate(1 / 60))
    created = _EPOCH + timedelta(seconds=rng.randrange(0, 2 * 365 * 86400))
    return (
        uuid.UUID(int=rng.getrandbits(128), version=4),
        f"{SKU_PREFIX}{index:07d}",
        name,
        description,
        slug,
        price,
        stock,
        created,
    )


def _batches(vocabulary: Vocabulary, seed: int, n: int) -> Iterator[list[tuple[Any, ...]]]:
    for start in range(0, n, BATCH):
        yield [synthetic_product(vocabulary, seed, i) for i in range(start, min(n, start + BATCH))]


async def generate_catalog(database_url: str, n: int, *, seed: int = 1) -> int:
    """Make sure products ``SYN-0000000`` .. ``n - 1`` exist; returns how many were added."""
    if n < 0:
        raise ValueError("n must be 0 or more")
    vocabulary = Vocabulary.load()
    conn = await asyncpg.connect(database_url)
    try:
        async with conn.transaction():
            # Committed durably even where the server commits asynchronously (the
            # local platform's PostgreSQL): VACUUM below can only mark a page
            # all-visible once the commit that wrote it is flushed.
            await conn.execute("SET LOCAL synchronous_commit = on")
            await conn.executemany(
                "INSERT INTO categories (id, slug, name) VALUES ($1, $2, $3) "
                "ON CONFLICT (slug) DO NOTHING",
                [(uuid.uuid4(), slug, spec[0]) for slug, spec in vocabulary.categories.items()],
            )
            await conn.execute(
                "CREATE TEMP TABLE synthetic_products (id uuid, sku text, name text, "
                "description text, category text, price_cents int, stock int, "
                "created_at timestamptz) ON COMMIT DROP"
            )
            added = 0
            for rows in _batches(vocabulary, seed, n):
                await conn.copy_records_to_table(
                    "synthetic_products", records=rows, columns=_COLUMNS
                )
                status = await conn.execute(
                    """INSERT INTO products (id, sku, name, description, category_id, price_cents,
                                             currency, stock, created_at, updated_at)
                       SELECT s.id, s.sku, s.name, s.description, c.id, s.price_cents, 'USD',
                              s.stock, s.created_at, s.created_at
                       FROM synthetic_products s JOIN categories c ON c.slug = s.category
                       ON CONFLICT (sku) DO NOTHING"""
                )
                added += int(status.rsplit(" ", 1)[-1])
                await conn.execute("TRUNCATE synthetic_products")
        # Fresh statistics, so the planner sees the real size (and picks the GIN index),
        # and a fresh visibility map, so a listing's bounded count and the ids it skips
        # are read from the index alone, as autovacuum leaves them on a live shop.
        await conn.execute("VACUUM (ANALYZE) products")
    finally:
        await conn.close()
    return added
