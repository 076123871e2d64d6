"""catalog-api's use cases: search, admin changes, and stock reservations.

Reads use SQL so that ``stock_available`` (stock minus live reservations) and
the full-text rank are computed in the same query as the rows themselves.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections import Counter, OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from shopflow_kit import db
from shopflow_kit.errors import Problem
from tortoise import connections
from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from catalog_api.models import Category, Product, Reservation, ReservationItem, ReservationStatus
from catalog_api.schemas import ProductIn, ProductPatch, ProductQuery

log = logging.getLogger("catalog.search")

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


def _public(row: Mapping[str, Any]) -> dict[str, Any]:
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

# Shoppers' searches are the hot read. They go to asyncpg directly (through
# Tortoise's pool): asyncpg prepares each statement once per connection and
# caches it, so repeated searches skip parsing and, once PostgreSQL settles on a
# generic plan, planning too.
HELD_FOR = """COALESCE((
    SELECT SUM(ri.quantity) FROM reservation_items ri
    JOIN reservations r ON r.id = ri.reservation_id
    WHERE ri.product_id = p.id AND r.status = 'held' AND r.expires_at > now()), 0)"""
PAGE_COLUMNS = f"""
    p.id, p.sku, p.name, p.description, c.slug AS category, p.price_cents, p.currency,
    p.stock - {HELD_FOR} AS stock_available, p.created_at
"""
#: ``total`` is counted exactly up to this many matches; beyond, it is
#: PostgreSQL's estimate (documented in the OpenAPI description and docs/).
EXACT_TOTAL_UP_TO = 1_000
#: Ranked searches keep this many ids per query for ``RANKING_TTL`` seconds:
#: page 50 of 20 stays a lookup by id.
RANKED_IDS = 2_000
#: As long as the responses' ``Cache-Control: max-age`` allows.
RANKING_TTL = 5.0


@dataclass
class _Ranking:
    ids: list[uuid.UUID]
    total: int
    expires: float


class RankingCache:
    """Ranked id lists of recent full-text searches, for at most ``RANKING_TTL`` seconds.

    Ranking a broad query ("steel" in a 100,000-product catalog) means scoring
    every match; a shop's searches repeat, so the order is computed once per
    query and TTL, by one request while concurrent ones wait for it. Rows,
    prices and ``stock_available`` are always read fresh, by id, in the page's
    one statement, which applies the search's filters again: a row that no
    longer matches (repriced, sold out, renamed) is left out, never shown
    against its filter. Admin writes and reservations clear the cache, and a
    request waits only for a ranking begun after this process's last change,
    so it never gets a membership older than that change. An entry unused for
    a whole TTL after it expired is recomputed, not served while refreshing.
    """

    def __init__(self, size: int = 512) -> None:
        self.size = size
        self.entries: OrderedDict[tuple[Any, ...], _Ranking] = OrderedDict()
        #: Rankings being computed, by key: the generation each began in, and its result.
        self.pending: dict[tuple[Any, ...], tuple[int, asyncio.Future[_Ranking]]] = {}
        self.refreshing: set[asyncio.Task[_Ranking]] = set()
        self.generation = 0
        self.estimates: dict[tuple[Any, ...], tuple[int, float]] = {}

    def clear(self) -> None:
        self.entries.clear()
        self.estimates.clear()
        self.generation += 1  # a computation that started before a write is not kept

    async def get(
        self, key: tuple[Any, ...], compute: Callable[[], Awaitable[_Ranking]]
    ) -> _Ranking:
        entry = self.entries.get(key)
        now = time.monotonic()
        if entry is not None and entry.expires + RANKING_TTL > now:
            self.entries.move_to_end(key)
            if entry.expires <= now and key not in self.pending:
                # Stale: one task recomputes it while requests keep the old order
                # for that moment, so the expiry never stalls a busy query.
                task = asyncio.ensure_future(self._compute(key, compute))
                self.refreshing.add(task)
                task.add_done_callback(self._refreshed)
            return entry
        waiting = self.pending.get(key)
        if waiting is not None and waiting[0] == self.generation:
            return await asyncio.shield(waiting[1])
        return await self._compute(key, compute)

    def _refreshed(self, task: asyncio.Task[_Ranking]) -> None:
        self.refreshing.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("refreshing a search ranking failed", exc_info=task.exception())

    async def _compute(
        self, key: tuple[Any, ...], compute: Callable[[], Awaitable[_Ranking]]
    ) -> _Ranking:
        generation = self.generation
        future: asyncio.Future[_Ranking] = asyncio.get_running_loop().create_future()
        self.pending[key] = (generation, future)
        try:
            entry = await compute()
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: waiters re-raise it, nobody else must
            raise
        finally:
            current = self.pending.get(key)
            if current is not None and current[1] is future:  # not a newer one's
                del self.pending[key]
        future.set_result(entry)
        if generation != self.generation:
            return entry
        self.entries[key] = entry
        while len(self.entries) > self.size:
            self.entries.popitem(last=False)
        return entry


RANKINGS = RankingCache()


def _invalidate_rankings() -> None:
    RANKINGS.clear()


async def _fetch(sql: str, *args: Any) -> list[asyncpg.Record]:
    found: list[asyncpg.Record] = await db.reads().fetch_shared(sql, *args)
    return found


def _filters(query: ProductQuery, params: list[Any]) -> tuple[list[str], str]:
    """WHERE conditions (on ``p`` and ``c``) and the rank expression for ``query``."""

    def param(value: Any) -> str:
        params.append(value)
        return f"${len(params)}"

    where, rank = [], "0::real"
    if query.q:
        tsquery = f"websearch_to_tsquery('english', {param(query.q)})"
        where.append(f"p.search @@ {tsquery}")
        rank = f"ts_rank(p.search, {tsquery})"
    if query.category:
        # The id, not a join condition: the planner can then use the per-category indexes.
        where.append(
            f"p.category_id = (SELECT id FROM categories WHERE slug = {param(query.category)})"  # noqa: S608
        )
    # Price bounds are written into the statement as integer literals (validated
    # ints, never text), not passed as parameters: statements are planned once
    # (shopflow_kit.db), and a generic plan assumes a bound keeps a third of the
    # table. ``min_price_cents=99999900`` then walked 100,000 products in
    # ``newest`` order to find none (38 ms); with the bound in sight the planner
    # reads the price index (under 1 ms).
    if query.min_price_cents is not None:
        where.append(f"p.price_cents >= {int(query.min_price_cents)}")
    if query.max_price_cents is not None:
        where.append(f"p.price_cents <= {int(query.max_price_cents)}")
    if query.in_stock is not None:
        where.append(f"p.stock - {HELD_FOR} {'>' if query.in_stock else '<='} 0")
    return where, rank


def _where(conditions: list[str]) -> str:
    return "WHERE " + " AND ".join(conditions) if conditions else ""


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
    sort = query.sort or ("relevance" if query.q else "newest")
    if sort == "relevance" and not query.q:
        sort = "newest"  # nothing to rank by
    if query.q and query.offset + query.page_size <= RANKED_IDS:
        return await _ranked_page(query, sort)
    return await _page(query, sort)


async def _ranked_page(query: ProductQuery, sort: str) -> tuple[list[dict[str, Any]], int]:
    """A full-text page: the ranking from the cache (or computed), the rows fresh by id."""
    key: tuple[Any, ...] = (query.q, query.category, query.min_price_cents)
    key += (query.max_price_cents, query.in_stock, sort)

    async def rank() -> _Ranking:
        params: list[Any] = []
        where, rank_expr = _filters(query, params)
        rows = await _fetch(
            f"""SELECT p.id, {rank_expr} AS rank, COUNT(*) OVER () AS total
                FROM products p JOIN categories c ON c.id = p.category_id
                {_where(where)}
                ORDER BY {ORDERINGS[sort]} LIMIT {RANKED_IDS}""",  # noqa: S608
            *params,
        )
        total = int(rows[0]["total"]) if rows else 0
        return _Ranking([r["id"] for r in rows], total, time.monotonic() + RANKING_TTL)

    ranking = await RANKINGS.get(key, rank)
    ids = ranking.ids[query.offset : query.offset + query.page_size]
    if not ids:
        return [], ranking.total
    params: list[Any] = [ids]
    where, _ = _filters(query, params)
    rows = await _fetch(
        f"""SELECT {PAGE_COLUMNS}
            FROM unnest($1::uuid[]) WITH ORDINALITY AS page(id, n)
            JOIN products p ON p.id = page.id JOIN categories c ON c.id = p.category_id
            {_where(where)}
            ORDER BY page.n""",  # noqa: S608
        *params,
    )
    return [_public(r) for r in rows], ranking.total


async def _page(query: ProductQuery, sort: str) -> tuple[list[dict[str, Any]], int]:
    """A listing page and its total in one statement; the total counted up to a bound."""
    params: list[Any] = []
    where, rank = _filters(query, params)
    matches = f"FROM products p JOIN categories c ON c.id = p.category_id {_where(where)}"
    # The page's ids first, then its columns: ``stock_available`` (a subquery per
    # row) is computed for the page's rows only, not for every row OFFSET skips.
    # LIMIT and OFFSET are integer literals, like the price bounds (see _filters):
    # a generic plan that cannot see the offset read page 500 five times slower.
    rows = await _fetch(
        f"""SELECT {PAGE_COLUMNS}, page.rank,
                   (SELECT COUNT(*) FROM (SELECT 1 {matches} LIMIT {EXACT_TOTAL_UP_TO + 1}) b)
                       AS total
            FROM (SELECT p.id, {rank} AS rank {matches}
                  ORDER BY {ORDERINGS[sort]}
                  LIMIT {int(query.page_size)} OFFSET {int(query.offset)}) page
            JOIN products p ON p.id = page.id JOIN categories c ON c.id = p.category_id
            ORDER BY {ORDERINGS[sort]}""",  # noqa: S608
        *params,
    )
    if rows:
        total = int(rows[0]["total"])
    else:
        counted = await _fetch(
            f"SELECT COUNT(*) AS total FROM (SELECT 1 {matches} LIMIT {EXACT_TOTAL_UP_TO + 1}) b",  # noqa: S608
            *params,
        )
        total = int(counted[0]["total"])
    if total > EXACT_TOTAL_UP_TO:
        total = max(total, await _estimate(f"SELECT 1 {matches}", params))
    return [_public(r) for r in rows], total


async def _estimate(sql: str, params: list[Any]) -> int:
    """PostgreSQL's own row estimate for ``sql``, as large shops show "1,000+" results."""
    key = (sql, *params)
    known = RANKINGS.estimates.get(key)
    if known is not None and known[1] > time.monotonic():
        return known[0]
    rows = await _fetch(f"EXPLAIN (FORMAT JSON) {sql}", *params)
    plan = rows[0][0]
    plan = json.loads(plan) if isinstance(plan, str) else plan
    estimate = int(plan[0]["Plan"]["Plan Rows"])
    if len(RANKINGS.estimates) > RANKINGS.size:
        RANKINGS.estimates.clear()
    RANKINGS.estimates[key] = (estimate, time.monotonic() + RANKING_TTL)
    return estimate


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
    _invalidate_rankings()
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
    _invalidate_rankings()
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
        # The row lock a reservation takes first: a reservation of this product
        # either committed before the check below (which then sees it) or waits
        # and then finds the product gone.
        await Product.filter(id=product_id).select_for_update().first()
        live = await ReservationItem.filter(
            product_id=product_id,
            reservation__status=ReservationStatus.HELD,
            reservation__expires_at__gt=utcnow(),
        ).exists()
        if live:
            raise Problem(409, "the product has live reservations; release them first")
        await Product.filter(id=product_id).delete()
    _invalidate_rankings()


# --- reservations ----------------------------------------------------------------------


def _timestamp(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _reservation_body(reservation: Reservation, items: list[ReservationItem]) -> dict[str, Any]:
    return {
        "order_id": str(reservation.order_id),
        "status": str(reservation.status),
        "expires_at": _timestamp(reservation.expires_at),
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


#: Run once this transaction holds the products' row locks, so its snapshot sees every
#: hold committed before them. Holds the stock if all of it is free and the order holds
#: nothing yet; returns the short lines, or one ``exists`` row for an order already held.
_HOLD = f"""
    WITH want AS (
        SELECT * FROM unnest($4::uuid[], $5::int[]) AS u(product_id, quantity)
    ),
    mine AS (SELECT 1 FROM reservations WHERE order_id = $2::uuid),
    short AS (
        SELECT * FROM (
            SELECT w.product_id, w.quantity AS requested, p.stock - {HELD_FOR} AS available
            FROM want w JOIN products p ON p.id = w.product_id
        ) a
        WHERE available < requested
    ),
    r AS (
        INSERT INTO reservations (id, order_id, status, expires_at, created_at, updated_at)
        SELECT $1::uuid, $2::uuid, 'held', $3::timestamptz, now(), now()
        WHERE NOT EXISTS (SELECT 1 FROM short) AND NOT EXISTS (SELECT 1 FROM mine)
        RETURNING id
    ),
    lines AS (
        INSERT INTO reservation_items (reservation_id, product_id, quantity)
        SELECT r.id, w.product_id, w.quantity FROM r, want w
    )
    SELECT 'short' AS outcome, product_id, requested, available FROM short
    UNION ALL
    SELECT 'exists', NULL, NULL, NULL FROM mine
"""  # noqa: S608 - our own SQL fragment


async def reserve(
    order_id: uuid.UUID, lines: list[tuple[uuid.UUID, int]], ttl_seconds: int
) -> tuple[dict[str, Any], bool]:
    """All or nothing; idempotent on ``order_id``. Returns (reservation, created).

    Four round trips: ``BEGIN``, the products' row locks, :data:`_HOLD`, ``COMMIT``.
    The locks are held only across the last two, so concurrent checkouts of the
    same products queue for as short a time as the check allows.
    """
    wanted: Counter[uuid.UUID] = Counter()
    for product_id, quantity in lines:
        wanted[product_id] += quantity
    ids = sorted(wanted)
    expires_at = utcnow() + timedelta(seconds=ttl_seconds)
    try:
        async with in_transaction() as conn:
            # Row locks in a fixed order: concurrent reservations of the same
            # products queue here instead of overselling (or deadlocking). A
            # concurrent repeat of this order queues here too, then finds its hold.
            stock = await conn.execute_query_dict(
                "SELECT id FROM products WHERE id = ANY($1::uuid[]) ORDER BY id FOR UPDATE",
                [ids],
            )
            found = {row["id"] for row in stock}
            if unknown := [str(i) for i in ids if i not in found]:
                if existing := await _existing(order_id, wanted):  # a product deleted since
                    return existing, False
                raise Problem(
                    422,
                    "unknown products in the reservation",
                    errors=[
                        {"field": "items.product_id", "message": f"unknown product {u}"}
                        for u in unknown
                    ],
                )
            outcome = await conn.execute_query_dict(
                _HOLD, [uuid.uuid4(), order_id, expires_at, ids, [wanted[pid] for pid in ids]]
            )
            if outcome:
                # A repeat is answered with its hold (409 if it asks for other items),
                # even when that stock would now be short for a new hold.
                if existing := await _existing(order_id, wanted):
                    return existing, False
                short = [
                    {
                        "product_id": str(row["product_id"]),
                        "requested": row["requested"],
                        "available": row["available"],
                    }
                    for row in sorted(outcome, key=lambda row: str(row["product_id"]))
                    if row["outcome"] == "short"
                ]
                raise Problem(409, "not enough stock", extra={"short_items": short})
        _invalidate_rankings()  # in_stock searches see the held stock
    except IntegrityError:
        # A repeat of this order for other products, which took other row locks,
        # inserted first: answer as the first one's repeat.
        existing = await _existing(order_id, wanted)
        if existing is None:
            raise
        return existing, False
    body = {
        "order_id": str(order_id),
        "status": ReservationStatus.HELD.value,
        "expires_at": _timestamp(expires_at),
        "items": [{"product_id": str(pid), "quantity": wanted[pid]} for pid in ids],
    }
    return body, True


#: The products of an order's reservation, locked in id order.
_LOCK_PRODUCTS_OF = """
    SELECT p.id FROM products p
    WHERE p.id IN (
        SELECT ri.product_id FROM reservation_items ri
        JOIN reservations r ON r.id = ri.reservation_id
        WHERE r.order_id = $1
    )
    ORDER BY p.id FOR UPDATE
"""


async def _locked(conn: Any, order_id: uuid.UUID) -> tuple[Reservation, list[ReservationItem]]:
    """The order's reservation and lines, locked: its products first, then the reservation.

    Every path takes the products' row locks before a reservation's (reserve,
    commit, release, deleting a product), so no two of them wait on each other.
    """
    await conn.execute_query(_LOCK_PRODUCTS_OF, [order_id])
    reservation = await Reservation.filter(order_id=order_id).select_for_update().first()
    if reservation is None:
        raise Problem(404, "no reservation for this order")
    return reservation, await ReservationItem.filter(reservation=reservation).order_by("product_id")


#: A live hold becomes committed and its stock is taken, in one statement; its lines
#: come back. The products are locked in id order first (``locked``), as reserve locks
#: them, and only then is the hold's expiry checked, against the clock at that moment
#: (``gate``): a reservation that ran while this waited for the locks, and found the
#: hold expired, took its stock; the hold must not be committed over it. Checked
#: against the statement's start instead, a commit that began just before the expiry
#: and waited out such a reservation would take the same stock a second time.
_COMMIT_HELD = """
    WITH cand AS (
        SELECT id FROM reservations
        WHERE order_id = $1 AND status = 'held' AND expires_at > now()
    ),
    lines AS (
        SELECT ri.product_id, SUM(ri.quantity) AS quantity
        FROM reservation_items ri JOIN cand ON cand.id = ri.reservation_id
        GROUP BY ri.product_id
    ),
    locked AS (
        SELECT p.id FROM products p WHERE p.id IN (SELECT product_id FROM lines)
        ORDER BY p.id FOR UPDATE
    ),
    gate AS (SELECT clock_timestamp() AS at FROM (SELECT count(*) FROM locked) l),
    r AS (
        UPDATE reservations SET status = 'committed', updated_at = now()
        WHERE order_id = $1 AND status = 'held' AND expires_at > (SELECT at FROM gate)
        RETURNING id, order_id, status, expires_at
    ),
    taken AS (
        UPDATE products p SET stock = p.stock - l.quantity, updated_at = now()
        FROM lines l, r
        WHERE p.id = l.product_id
    )
    SELECT r.order_id, r.status, r.expires_at, ri.product_id, ri.quantity
    FROM r JOIN reservation_items ri ON ri.reservation_id = r.id
    ORDER BY ri.product_id
"""


_TAKE_STOCK = "UPDATE products SET stock = stock - $1, updated_at = now() WHERE id = $2"


async def commit(order_id: uuid.UUID) -> dict[str, Any]:
    """Take the held stock for good. Idempotent; 409 once released or expired."""
    # The common case, a live hold: one statement, its own transaction.
    held = await _db().execute_query_dict(_COMMIT_HELD, [order_id])
    if held:
        _invalidate_rankings()
        first = held[0]
        return {
            "order_id": str(first["order_id"]),
            "status": first["status"],
            "expires_at": _timestamp(first["expires_at"]),
            "items": [
                {"product_id": str(line["product_id"]), "quantity": line["quantity"]}
                for line in held
            ],
        }
    async with in_transaction() as conn:
        reservation, items = await _locked(conn, order_id)
        if reservation.status == ReservationStatus.HELD and reservation.expires_at <= utcnow():
            reservation.status = ReservationStatus.EXPIRED
            await reservation.save(update_fields=["status", "updated_at"])
        if reservation.status in (ReservationStatus.RELEASED, ReservationStatus.EXPIRED):
            body = _reservation_body(reservation, items)
        elif reservation.status == ReservationStatus.HELD:
            for item in items:
                await conn.execute_query(
                    _TAKE_STOCK,
                    [item.quantity, item.product_id],  # type: ignore[attr-defined]
                )
            reservation.status = ReservationStatus.COMMITTED
            await reservation.save(update_fields=["status", "updated_at"])
            _invalidate_rankings()
            return _reservation_body(reservation, items)
        else:
            return _reservation_body(reservation, items)
    raise Problem(409, f"the reservation is {body['status']}", extra={"reservation": body})


async def release(order_id: uuid.UUID) -> dict[str, Any]:
    """Free held stock, or restock committed stock (a cancelled order). Idempotent."""
    async with in_transaction() as conn:
        reservation, items = await _locked(conn, order_id)
        if reservation.status == ReservationStatus.COMMITTED:
            for item in items:
                await conn.execute_query(
                    "UPDATE products SET stock = stock + $1, updated_at = now() WHERE id = $2",
                    [item.quantity, item.product_id],  # type: ignore[attr-defined]
                )
        if reservation.status in (ReservationStatus.HELD, ReservationStatus.COMMITTED):
            reservation.status = ReservationStatus.RELEASED
            await reservation.save(update_fields=["status", "updated_at"])
            _invalidate_rankings()
        return _reservation_body(reservation, items)


async def expire_reservations() -> int:
    """Mark overdue held reservations expired (their stock is already free to others)."""
    return await Reservation.filter(status=ReservationStatus.HELD, expires_at__lte=utcnow()).update(
        status=ReservationStatus.EXPIRED
    )
