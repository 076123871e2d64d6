"""catalog-api's use cases: search, admin changes, and stock reservations.

Reads use SQL so that ``stock_available`` (stock minus live reservations) and
the full-text rank are computed in the same query as the rows themselves.
"""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from shopflow_kit.errors import Problem
from tortoise import connections
from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from catalog_api.models import Category, Product, Reservation, ReservationItem, ReservationStatus
from catalog_api.schemas import ProductIn, ProductPatch, ProductQuery

# Live reservations: held and not yet expired, whatever the sweeper has done so far.
HELD = """
    SELECT ri.product_id, SUM(ri.quantity) AS quantity
    FROM reservation_items ri JOIN reservations r ON r.id = ri.reservation_id
    WHERE r.status = 'held' AND r.expires_at > now()
    GROUP BY ri.product_id
"""

PRODUCT_COLUMNS = """
    p.id, p.sku, p.name, p.description, c.slug AS category, p.price_cents, p.currency,
    p.stock - COALESCE(h.quantity, 0) AS stock_available, p.created_at
"""

ORDERINGS = {
    "relevance": "rank DESC, p.id",
    "price_asc": "p.price_cents ASC, p.id",
    "price_desc": "p.price_cents DESC, p.id",
    "name": "lower(p.name) ASC, p.id",
    "newest": "p.created_at DESC, p.id",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


def _db() -> Any:
    return connections.get("default")


def _public(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": str(row["id"]),
        "sku": row["sku"],
        "name": row["name"],
        "description": row["description"],
        "category": row["category"],
        "price_cents": row["price_cents"],
        "currency": row["currency"],
        "stock_available": row["stock_available"],
        "created_at": row["created_at"].astimezone(UTC).isoformat().replace("+00:00", "Z"),
    }


# --- reads ----------------------------------------------------------------------


async def search_products(query: ProductQuery) -> tuple[list[dict[str, Any]], int]:
    if (
        query.min_price_cents is not None
        and query.max_price_cents is not None
        and query.min_price_cents > query.max_price_cents
    ):
        raise Problem(
            400,
            "min_price_cents must not exceed max_price_cents",
            errors=[{"field": "min_price_cents", "message": "greater than max_price_cents"}],
        )
    params: list[Any] = []

    def param(value: Any) -> str:
        params.append(value)
        return f"${len(params)}"

    where, rank = [], "0::real"
    if query.q:
        tsquery = f"websearch_to_tsquery('english', {param(query.q)})"
        where.append(f"p.search @@ {tsquery}")
        rank = f"ts_rank(p.search, {tsquery})"
    if query.category:
        where.append(f"c.slug = {param(query.category)}")
    if query.min_price_cents is not None:
        where.append(f"p.price_cents >= {param(query.min_price_cents)}")
    if query.max_price_cents is not None:
        where.append(f"p.price_cents <= {param(query.max_price_cents)}")
    if query.in_stock is not None:
        where.append(f"p.stock - COALESCE(h.quantity, 0) {'>' if query.in_stock else '<='} 0")
    sort = query.sort or ("relevance" if query.q else "newest")
    if sort == "relevance" and not query.q:
        sort = "newest"  # nothing to rank by
    sql = f"""
        SELECT {PRODUCT_COLUMNS}, {rank} AS rank, COUNT(*) OVER () AS total
        FROM products p
        JOIN categories c ON c.id = p.category_id
        LEFT JOIN ({HELD}) h ON h.product_id = p.id
        {"WHERE " + " AND ".join(where) if where else ""}
        ORDER BY {ORDERINGS[sort]}
        LIMIT {param(query.page_size)} OFFSET {param(query.offset)}
    """  # noqa: S608 (every value is a bound parameter; only fixed fragments are joined)
    rows = await _db().execute_query_dict(sql, params)
    if rows:
        return [_public(r) for r in rows], int(rows[0]["total"])
    if query.page == 1:
        return [], 0
    count_query = query.model_copy(update={"page": 1, "page_size": 1})
    _, total = await search_products(count_query)
    return [], total


async def get_product(product_id: str) -> dict[str, Any]:
    try:
        pid = uuid.UUID(product_id)
    except ValueError:
        raise Problem(404, "no such product") from None
    rows = await _db().execute_query_dict(
        f"""SELECT {PRODUCT_COLUMNS} FROM products p
            JOIN categories c ON c.id = p.category_id
            LEFT JOIN ({HELD}) h ON h.product_id = p.id
            WHERE p.id = $1""",  # noqa: S608
        [pid],
    )
    if not rows:
        raise Problem(404, "no such product")
    return _public(rows[0])


async def list_categories() -> list[dict[str, Any]]:
    rows = await _db().execute_query_dict(
        """SELECT c.slug, c.name, COUNT(p.id) AS product_count
           FROM categories c LEFT JOIN products p ON p.category_id = c.id
           GROUP BY c.id ORDER BY c.name, c.slug"""
    )
    return [
        {"slug": r["slug"], "name": r["name"], "product_count": r["product_count"]} for r in rows
    ]


async def prices(ids: list[uuid.UUID]) -> list[dict[str, Any]]:
    rows = await _db().execute_query_dict(
        f"""SELECT {PRODUCT_COLUMNS} FROM products p
            JOIN categories c ON c.id = p.category_id
            LEFT JOIN ({HELD}) h ON h.product_id = p.id
            WHERE p.id = ANY($1::uuid[]) ORDER BY p.id""",  # noqa: S608
        [ids],
    )
    return [
        {
            k: v
            for k, v in _public(r).items()
            if k in ("id", "sku", "name", "price_cents", "currency", "stock_available")
        }
        for r in rows
    ]


# --- admin ------------------------------------------------------------------------


async def _category(slug: str) -> Category:
    # New slugs create their category, named from the slug ("garden-tools" -> "Garden Tools").
    category, _ = await Category.get_or_create(
        slug=slug, defaults={"id": uuid.uuid4(), "name": slug.replace("-", " ").title()}
    )
    return category


async def create_product(body: ProductIn) -> dict[str, Any]:
    try:
        async with in_transaction():
            category = await _category(body.category)
            product = await Product.create(
                id=uuid.uuid4(),
                category=category,
                **body.model_dump(exclude={"category"}),
            )
    except IntegrityError:
        raise Problem(409, f"a product with sku {body.sku} already exists") from None
    return await get_product(str(product.id))


async def update_product(product_id: str, patch: ProductPatch) -> dict[str, Any]:
    await get_product(product_id)  # 404 for unknown ids and non-UUIDs alike
    changes = patch.model_dump(exclude_unset=True)
    if not changes:
        raise Problem(
            422, "the patch changes nothing", errors=[{"field": "body", "message": "empty"}]
        )
    if None in changes.values():
        nulls = [k for k, v in changes.items() if v is None]
        raise Problem(
            422,
            "fields cannot be set to null",
            errors=[{"field": k, "message": "must not be null"} for k in nulls],
        )
    try:
        async with in_transaction() as conn:
            if "category" in changes:
                changes["category"] = await _category(changes["category"])
            # The row lock is the one reserve() takes, so no hold appears meanwhile.
            product = await Product.filter(id=product_id).select_for_update().get()
            if "stock" in changes:
                held = await _held(conn, [product.id])
                if changes["stock"] < held.get(product.id, 0):
                    raise _below_holds(held[product.id])
            await product.update_from_dict(changes).save()
    except IntegrityError:
        raise Problem(409, f"a product with sku {changes.get('sku')} already exists") from None
    return await get_product(product_id)


def _below_holds(held: int) -> Problem:
    return Problem(
        409,
        f"live reservations hold {held} units; stock cannot go below {held}",
        errors=[{"field": "stock", "message": f"must be at least {held}, the quantity held"}],
        extra={"held": held},
    )


async def delete_product(product_id: str) -> None:
    await get_product(product_id)
    async with in_transaction():
        live = await ReservationItem.filter(
            product_id=product_id,
            reservation__status=ReservationStatus.HELD,
            reservation__expires_at__gt=utcnow(),
        ).exists()
        if live:
            raise Problem(409, "the product has live reservations; release them first")
        await Product.filter(id=product_id).delete()


# --- reservations ----------------------------------------------------------------------


def _reservation_body(reservation: Reservation, items: list[ReservationItem]) -> dict[str, Any]:
    return {
        "order_id": str(reservation.order_id),
        "status": str(reservation.status),
        "expires_at": reservation.expires_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "items": [
            {"product_id": str(i.product_id), "quantity": i.quantity}  # type: ignore[attr-defined]
            for i in sorted(items, key=lambda i: str(i.product_id))  # type: ignore[attr-defined]
        ],
    }


async def _existing(order_id: uuid.UUID, wanted: Counter[uuid.UUID]) -> dict[str, Any] | None:
    reservation = await Reservation.get_or_none(order_id=order_id)
    if reservation is None:
        return None
    items = await ReservationItem.filter(reservation=reservation)
    held = Counter({i.product_id: i.quantity for i in items})  # type: ignore[attr-defined]
    if held != wanted:
        raise Problem(409, "this order already holds a different reservation")
    return _reservation_body(reservation, items)


async def _held(conn: Any, ids: list[uuid.UUID]) -> dict[uuid.UUID, int]:
    """Units held by live reservations, per product."""
    rows = await conn.execute_query_dict(
        f"SELECT product_id, quantity FROM ({HELD}) h WHERE product_id = ANY($1::uuid[])",  # noqa: S608
        [ids],
    )
    return {row["product_id"]: int(row["quantity"]) for row in rows}


# Repeats of one order queue here, so each sees the reservation the first made.
_LOCK_ORDER = "SELECT pg_advisory_xact_lock(hashtextextended('reservation:' || $1::text, 0))"


async def reserve(
    order_id: uuid.UUID, lines: list[tuple[uuid.UUID, int]], ttl_seconds: int
) -> tuple[dict[str, Any], bool]:
    """All or nothing; idempotent on ``order_id``. Returns (reservation, created)."""
    wanted: Counter[uuid.UUID] = Counter()
    for product_id, quantity in lines:
        wanted[product_id] += quantity
    existing = await _existing(order_id, wanted)
    if existing is not None:
        return existing, False
    try:
        async with in_transaction() as conn:
            # A concurrent repeat of this order waits for the first to commit and
            # then answers with its reservation; without this it would count the
            # first one's hold as someone else's and report a false shortage.
            await conn.execute_query(_LOCK_ORDER, [str(order_id)])
            existing = await _existing(order_id, wanted)
            if existing is not None:
                return existing, False
            ids = sorted(wanted)
            # Row locks in a fixed order: concurrent reservations of the same
            # products queue here instead of overselling (or deadlocking).
            stock = await conn.execute_query_dict(
                "SELECT id, stock FROM products WHERE id = ANY($1::uuid[]) ORDER BY id FOR UPDATE",
                [ids],
            )
            found = {row["id"]: row["stock"] for row in stock}
            unknown = [str(i) for i in ids if i not in found]
            if unknown:
                raise Problem(
                    422,
                    "unknown products in the reservation",
                    errors=[
                        {"field": "items.product_id", "message": f"unknown product {u}"}
                        for u in unknown
                    ],
                )
            held_by = await _held(conn, ids)
            short = [
                {
                    "product_id": str(pid),
                    "requested": qty,
                    "available": found[pid] - held_by.get(pid, 0),
                }
                for pid, qty in sorted(wanted.items())
                if found[pid] - held_by.get(pid, 0) < qty
            ]
            if short:
                raise Problem(409, "not enough stock", extra={"short_items": short})
            reservation = await Reservation.create(
                id=uuid.uuid4(),
                order_id=order_id,
                expires_at=utcnow() + timedelta(seconds=ttl_seconds),
            )
            items = [
                ReservationItem(reservation=reservation, product_id=pid, quantity=qty)
                for pid, qty in sorted(wanted.items())
            ]
            await ReservationItem.bulk_create(items)
    except IntegrityError:
        # Only a replica without the order lock (mid-upgrade) can race past it.
        existing = await _existing(order_id, wanted)
        if existing is None:
            raise
        return existing, False
    return _reservation_body(reservation, items), True


async def _locked(order_id: uuid.UUID) -> tuple[Reservation, list[ReservationItem]]:
    reservation = await Reservation.filter(order_id=order_id).select_for_update().first()
    if reservation is None:
        raise Problem(404, "no reservation for this order")
    return reservation, await ReservationItem.filter(reservation=reservation)


async def commit(order_id: uuid.UUID) -> dict[str, Any]:
    """Take the held stock for good. Idempotent; 409 once released or expired."""
    async with in_transaction() as conn:
        reservation, items = await _locked(order_id)
        if reservation.status == ReservationStatus.HELD and reservation.expires_at <= utcnow():
            reservation.status = ReservationStatus.EXPIRED
            await reservation.save(update_fields=["status", "updated_at"])
        if reservation.status in (ReservationStatus.RELEASED, ReservationStatus.EXPIRED):
            body = _reservation_body(reservation, items)
        elif reservation.status == ReservationStatus.HELD:
            for item in items:
                await conn.execute_query(
                    "UPDATE products SET stock = stock - $1, updated_at = now() WHERE id = $2",
                    [item.quantity, item.product_id],  # type: ignore[attr-defined]
                )
            reservation.status = ReservationStatus.COMMITTED
            await reservation.save(update_fields=["status", "updated_at"])
            return _reservation_body(reservation, items)
        else:
            return _reservation_body(reservation, items)
    raise Problem(409, f"the reservation is {body['status']}", extra={"reservation": body})


async def release(order_id: uuid.UUID) -> dict[str, Any]:
    """Free held stock, or restock committed stock (a cancelled order). Idempotent."""
    async with in_transaction() as conn:
        reservation, items = await _locked(order_id)
        if reservation.status == ReservationStatus.COMMITTED:
            for item in items:
                await conn.execute_query(
                    "UPDATE products SET stock = stock + $1, updated_at = now() WHERE id = $2",
                    [item.quantity, item.product_id],  # type: ignore[attr-defined]
                )
        if reservation.status in (ReservationStatus.HELD, ReservationStatus.COMMITTED):
            reservation.status = ReservationStatus.RELEASED
            await reservation.save(update_fields=["status", "updated_at"])
        return _reservation_body(reservation, items)


async def expire_reservations() -> int:
    """Mark overdue held reservations expired (their stock is already free to others)."""
    return await Reservation.filter(status=ReservationStatus.HELD, expires_at__lte=utcnow()).update(
        status=ReservationStatus.EXPIRED
    )
