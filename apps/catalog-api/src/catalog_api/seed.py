"""Seed catalog: 56 products in 6 categories. Idempotent (upserts by sku)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from shopflow_kit.db import close_db, init_db

from catalog_api.app import MODELS, Settings
from catalog_api.models import Category, Product

CATEGORIES = {
    "kitchen": "Kitchen",
    "outdoor": "Outdoor & Camping",
    "electronics": "Electronics",
    "books": "Books",
    "apparel": "Apparel",
    "home-office": "Home Office",
}

# (sku, name, description, category, price_cents, stock)
PRODUCTS = [
    (
        "KIT-001",
        "Cast Iron Skillet 10in",
        "Pre-seasoned cast iron pan that goes from stovetop to oven.",
        "kitchen",
        3499,
        42,
    ),
    (
        "KIT-002",
        "Chef's Knife 8in",
        "High-carbon stainless steel blade with a full tang and riveted handle.",
        "kitchen",
        5900,
        25,
    ),
    (
        "KIT-003",
        "Pour-Over Coffee Dripper",
        "Ceramic cone dripper for bright, clean coffee.",
        "kitchen",
        2450,
        60,
    ),
    (
        "KIT-004",
        "Burr Coffee Grinder",
        "Conical burr grinder with 40 grind settings for espresso to cold brew.",
        "kitchen",
        12900,
        8,
    ),
    (
        "KIT-005",
        "Dutch Oven 5qt",
        "Enamelled cast iron pot for braises, stews and bread.",
        "kitchen",
        8900,
        0,
    ),
    (
        "KIT-006",
        "Bamboo Cutting Board",
        "Large reversible board with a juice groove.",
        "kitchen",
        2999,
        75,
    ),
    (
        "KIT-007",
        "Digital Kitchen Scale",
        "Weighs to the gram, with tare and a stainless platform.",
        "kitchen",
        1999,
        110,
    ),
    (
        "KIT-008",
        "Silicone Baking Mats (2)",
        "Non-stick reusable mats for half-sheet pans.",
        "kitchen",
        1599,
        0,
    ),
    (
        "KIT-009",
        "Electric Gooseneck Kettle",
        "Variable temperature kettle for pour-over coffee and tea.",
        "kitchen",
        7900,
        14,
    ),
    (
        "KIT-010",
        "Stainless Mixing Bowls (3)",
        "Nesting bowls with non-slip bases.",
        "kitchen",
        3299,
        33,
    ),
    (
        "OUT-001",
        "Two-Person Backpacking Tent",
        "Freestanding ultralight tent, 1.6 kg, with two doors.",
        "outdoor",
        24900,
        12,
    ),
    (
        "OUT-002",
        "Down Sleeping Bag 0C",
        "800-fill down mummy bag rated to freezing.",
        "outdoor",
        18900,
        6,
    ),
    (
        "OUT-003",
        "Insulated Water Bottle 1L",
        "Keeps drinks cold for 24 hours or hot for 12.",
        "outdoor",
        3499,
        150,
    ),
    (
        "OUT-004",
        "Trekking Poles (pair)",
        "Carbon fibre poles with cork grips and flick locks.",
        "outdoor",
        11900,
        0,
    ),
    (
        "OUT-005",
        "Headlamp 400 Lumen",
        "Rechargeable headlamp with a red night mode.",
        "outdoor",
        3999,
        80,
    ),
    (
        "OUT-006",
        "Camp Stove",
        "Compact canister stove that boils a litre in three minutes.",
        "outdoor",
        5499,
        22,
    ),
    (
        "OUT-007",
        "Hiking Daypack 24L",
        "Ventilated back panel, hip belt and rain cover.",
        "outdoor",
        8900,
        31,
    ),
    (
        "OUT-008",
        "Self-Inflating Sleeping Pad",
        "Warm, quiet pad that packs small.",
        "outdoor",
        9900,
        9,
    ),
    (
        "OUT-009",
        "Water Filter Squeeze",
        "Filters 99.9999% of bacteria; screws onto bottles.",
        "outdoor",
        3799,
        45,
    ),
    ("OUT-010", "Camping Hammock", "Parachute nylon hammock with tree straps.", "outdoor", 4599, 0),
    (
        "ELE-001",
        "Noise-Cancelling Headphones",
        "Over-ear wireless headphones with 30-hour battery.",
        "electronics",
        29900,
        18,
    ),
    (
        "ELE-002",
        "Mechanical Keyboard",
        "Tenkeyless keyboard with hot-swappable tactile switches.",
        "electronics",
        12900,
        27,
    ),
    (
        "ELE-003",
        "Wireless Mouse",
        "Ergonomic mouse with silent clicks and USB-C charging.",
        "electronics",
        4999,
        64,
    ),
    (
        "ELE-004",
        "USB-C Hub 7-in-1",
        "HDMI 4K, SD reader, three USB-A ports and 100 W pass-through.",
        "electronics",
        3999,
        90,
    ),
    (
        "ELE-005",
        "Portable SSD 1TB",
        "Pocket-sized solid state drive, 1050 MB/s.",
        "electronics",
        10900,
        0,
    ),
    (
        "ELE-006",
        "Bluetooth Speaker",
        "Waterproof speaker with 12 hours of playback.",
        "electronics",
        6900,
        40,
    ),
    (
        "ELE-007",
        "27in 4K Monitor",
        "IPS panel with USB-C power delivery and a height-adjustable stand.",
        "electronics",
        39900,
        7,
    ),
    (
        "ELE-008",
        "Webcam 1080p",
        "Autofocus webcam with stereo microphones and a privacy shutter.",
        "electronics",
        5999,
        36,
    ),
    (
        "ELE-009",
        "E-Reader 6in",
        "Glare-free display with adjustable warm light.",
        "electronics",
        11900,
        20,
    ),
    (
        "ELE-010",
        "Smart Plug (2-pack)",
        "Schedule and switch lamps from your phone.",
        "electronics",
        2499,
        0,
    ),
    (
        "BOO-001",
        "The Pragmatic Programmer",
        "Classic guide to the craft of software development.",
        "books",
        4299,
        23,
    ),
    (
        "BOO-002",
        "Designing Data-Intensive Applications",
        "Reliable, scalable and maintainable data systems explained.",
        "books",
        4999,
        15,
    ),
    (
        "BOO-003",
        "The Field Guide to Mushrooms",
        "Identify 500 species with photographs and keys.",
        "books",
        2799,
        11,
    ),
    (
        "BOO-004",
        "Salt, Fat, Acid, Heat",
        "The four elements of good cooking, illustrated.",
        "books",
        3500,
        19,
    ),
    (
        "BOO-005",
        "A Walk in the Woods",
        "A funny and thoughtful account of hiking the Appalachian Trail.",
        "books",
        1699,
        0,
    ),
    ("BOO-006", "Atomic Habits", "Small changes that build remarkable results.", "books", 2199, 48),
    (
        "BOO-007",
        "The Art of Electronics",
        "The standard practical reference for circuit design.",
        "books",
        8999,
        4,
    ),
    ("BOO-008", "Deep Work", "Rules for focused success in a distracted world.", "books", 1899, 37),
    (
        "BOO-009",
        "Project Hail Mary",
        "A lone astronaut must save the Earth in this science fiction novel.",
        "books",
        1599,
        52,
    ),
    (
        "APP-001",
        "Merino Wool T-Shirt",
        "Lightweight, odour-resistant base layer for travel and trail.",
        "apparel",
        6500,
        44,
    ),
    ("APP-002", "Rain Jacket", "Waterproof breathable shell with pit zips.", "apparel", 14900, 16),
    (
        "APP-003",
        "Fleece Pullover",
        "Recycled polyester fleece with a half zip.",
        "apparel",
        5900,
        0,
    ),
    (
        "APP-004",
        "Hiking Socks (3 pairs)",
        "Cushioned merino blend socks that prevent blisters.",
        "apparel",
        2999,
        120,
    ),
    (
        "APP-005",
        "Trail Running Shoes",
        "Grippy lugs, rock plate and a roomy toe box.",
        "apparel",
        13900,
        13,
    ),
    ("APP-006", "Wool Beanie", "Ribbed knit beanie in soft merino.", "apparel", 2499, 58),
    (
        "APP-007",
        "Canvas Work Pants",
        "Durable cotton canvas with reinforced knees.",
        "apparel",
        7900,
        21,
    ),
    ("APP-008", "Down Vest", "Packable 650-fill down vest for layering.", "apparel", 9900, 0),
    (
        "HOF-001",
        "Standing Desk Frame",
        "Dual-motor frame with memory presets, fits 120-180 cm tops.",
        "home-office",
        39900,
        5,
    ),
    (
        "HOF-002",
        "Ergonomic Office Chair",
        "Mesh back, adjustable lumbar support and 4D armrests.",
        "home-office",
        34900,
        9,
    ),
    (
        "HOF-003",
        "Desk Lamp LED",
        "Dimmable lamp with colour temperature control and USB charging.",
        "home-office",
        4599,
        70,
    ),
    (
        "HOF-004",
        "Monitor Arm",
        "Gas-spring arm for screens up to 32 inches.",
        "home-office",
        8900,
        24,
    ),
    (
        "HOF-005",
        "Cable Management Tray",
        "Under-desk steel tray that hides power strips.",
        "home-office",
        2999,
        0,
    ),
    (
        "HOF-006",
        "Felt Desk Mat",
        "Large wool felt mat that protects the desk and quiets the keyboard.",
        "home-office",
        3499,
        55,
    ),
    (
        "HOF-007",
        "Notebook Set A5 (3)",
        "Dot-grid notebooks with lay-flat binding.",
        "home-office",
        1899,
        99,
    ),
    (
        "HOF-008",
        "Fountain Pen",
        "Steel nib pen with a converter and ink cartridges.",
        "home-office",
        2899,
        30,
    ),
    (
        "HOF-009",
        "Whiteboard 90x60",
        "Magnetic dry-erase board with an aluminium frame.",
        "home-office",
        6900,
        12,
    ),
]


async def seed_catalog() -> tuple[int, int]:
    """Upsert every category and product; returns (categories, products)."""
    categories = {}
    for slug, name in CATEGORIES.items():
        category = await Category.get_or_none(slug=slug)
        if category is None:
            category = await Category.create(id=uuid.uuid4(), slug=slug, name=name)
        categories[slug] = category
    for sku, name, description, slug, price, stock in PRODUCTS:
        fields: dict[str, Any] = {
            "name": name,
            "description": description,
            "category": categories[slug],
            "price_cents": price,
            "currency": "USD",
        }
        product = await Product.get_or_none(sku=sku)
        if product is None:
            await Product.create(id=uuid.uuid4(), sku=sku, stock=stock, **fields)
        else:
            # Re-seeding refreshes the listing but never overwrites live stock.
            await product.update_from_dict(fields).save()
    return len(CATEGORIES), len(PRODUCTS)


async def main() -> None:
    await init_db(Settings(), MODELS)
    try:
        categories, products = await seed_catalog()
    finally:
        await close_db()
    print(f"catalog seeded: {categories} categories, {products} products")


if __name__ == "__main__":
    asyncio.run(main())
