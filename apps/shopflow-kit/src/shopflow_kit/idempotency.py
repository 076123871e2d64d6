"""Idempotency keys with Stripe's semantics.

Two ways to hold a key:

- :func:`run_once` for work that fits in one transaction. The key's row is
  inserted in the same transaction as the work. A concurrent duplicate's
  ``INSERT ... ON CONFLICT DO NOTHING`` waits on the unique index until the
  first transaction ends, then reads the stored response, so the work runs once
  with no check-then-act race (or, with ``conflict_in_flight``, gets 409 at
  once). If the work fails, the transaction rolls back and the key is free
  again: nothing is half-written.
- :func:`claim` / :func:`complete` / :func:`release` for work that commits as
  it goes and calls other services (order-mgmt's checkout saga). The claim is
  committed at once with a lease (held in ``expires_at`` until the response is
  stored): a duplicate arriving meanwhile gets 409 + ``Retry-After`` instead of
  waiting on a lock, and a holder that crashed loses the key when its lease runs
  out, so the next request with the key takes over and finishes the work.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sanic import HTTPResponse, Request
from sanic import json as json_response
from tortoise.expressions import Q
from tortoise.transactions import in_transaction

from shopflow_kit.errors import PROBLEM_JSON, Problem
from shopflow_kit.models import IdempotencyRecord
from shopflow_kit.validation import decode_json

TTL = timedelta(hours=24)
HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255

Work = Callable[[], Awaitable[tuple[int, Any]]]


@dataclass(frozen=True)
class StoredResponse:
    status: int
    body: Any
    replayed: bool


def fingerprint(method: str, path: str, body: bytes, *, key: bytes | None = None) -> str:
    """Same request, same fingerprint: JSON bodies are compared as data, not bytes.

    With ``key`` the fingerprint is an HMAC-SHA256: needed when the body holds
    something guessable that must not be recoverable from the stored row (a card
    number has few enough unknown digits to brute-force a plain hash).
    """
    try:
        canonical = json.dumps(decode_json(body), sort_keys=True, separators=(",", ":"))
    except ValueError:  # not JSON the kit accepts (too deep, malformed): compare bytes
        canonical = body.hex()
    message = f"{method} {path}\n{canonical}".encode()
    if key is not None:
        return hmac.new(key, message, hashlib.sha256).hexdigest()
    return hashlib.sha256(message).hexdigest()


def validate_key(key: str | None) -> str:
    if key is None or not key.strip():
        raise Problem(400, f"the {HEADER} header is required")
    key = key.strip()
    if len(key) > MAX_KEY_LENGTH or not key.isprintable():
        raise Problem(400, f"the {HEADER} header must be 1-{MAX_KEY_LENGTH} printable characters")
    return key


_INSERT = (
    "INSERT INTO idempotency_keys (scope, key, fingerprint, created_at, expires_at) "
    "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (scope, key) DO NOTHING RETURNING id"
)
#: _INSERT behind the key's lock, held for the key's transaction: a second request
#: with the same key finds it taken (``locked`` false) and inserts nothing, so it
#: never waits on the first one's uncommitted row. One round trip for both.
_LOCK_AND_INSERT = """
    WITH key_lock AS MATERIALIZED (
        SELECT pg_try_advisory_xact_lock(
            hashtextextended($1::text || E'\\n' || $2::text, 0)
        ) AS locked
    ),
    claimed AS (
        INSERT INTO idempotency_keys (scope, key, fingerprint, created_at, expires_at)
        SELECT $1, $2, $3, $4, $5 FROM key_lock WHERE key_lock.locked
        ON CONFLICT (scope, key) DO NOTHING RETURNING id
    )
    SELECT key_lock.locked, claimed.id FROM key_lock LEFT JOIN claimed ON true
"""

_COMPLETE = (
    "UPDATE idempotency_keys SET status_code = $3, response = $4, expires_at = created_at + $5 "
    "WHERE scope = $1 AND key = $2 AND status_code IS NULL"
)


def mismatch() -> Problem:
    """422: the key was first used with a different request."""
    return Problem(
        422,
        f"this {HEADER} was already used with a different request",
        title="Idempotency key reused",
    )


def _in_flight(retry_after: int = 1) -> Problem:
    return Problem(
        409,
        f"a request with this {HEADER} is still in progress; retry",
        headers={"Retry-After": str(retry_after)},
    )


async def run_once(
    scope: str,
    key: str,
    request_fingerprint: str,
    work: Work,
    *,
    ttl: timedelta = TTL,
    conflict_in_flight: bool = False,
) -> StoredResponse:
    """Run ``work`` once per (scope, key); replay its stored result afterwards.

    ``work`` returns ``(status, body)`` and runs inside the key's transaction.
    If it raises, nothing is stored and the key can be used again.

    A duplicate that arrives while the first request is still running waits for
    it and replays its result; with ``conflict_in_flight`` it is answered 409
    with ``Retry-After`` at once instead (Stripe's behaviour), so no connection
    or worker is held by a waiting duplicate.
    """
    async with in_transaction() as conn:
        for attempt in range(3):
            now = datetime.now(UTC)
            params = [scope, key, request_fingerprint, now, now + ttl]
            # execute_query_dict fetches; Tortoise's execute_query drops RETURNING rows.
            if conflict_in_flight and attempt == 0:
                (row,) = await conn.execute_query_dict(_LOCK_AND_INSERT, params)
                if not row["locked"]:
                    raise _in_flight()
                claimed = row["id"]
            else:
                rows = await conn.execute_query_dict(_INSERT, params)
                claimed = rows[0]["id"] if rows else None
            if claimed is not None:
                status, body = await work()
                await IdempotencyRecord.filter(id=claimed).update(status_code=status, response=body)
                return StoredResponse(status, body, replayed=False)
            record = await IdempotencyRecord.get_or_none(scope=scope, key=key)
            if record is None:
                continue  # deleted between our insert and read; try again
            if record.expires_at <= now:
                await record.delete()
                continue
            if record.fingerprint != request_fingerprint:
                raise mismatch()
            return StoredResponse(record.status_code or 200, record.response, replayed=True)
    raise _in_flight()


async def claim(
    scope: str, key: str, request_fingerprint: str, *, lease: timedelta
) -> StoredResponse | None:
    """Hold (scope, key) for work that commits step by step; see the module docstring.

    Returns the stored response to replay, or None when the caller now holds the
    key for ``lease`` and must end with :func:`complete` (or :func:`release`).
    Raises 409 (with ``Retry-After``) while another holder's lease runs and 422
    when the key was used with a different request.
    """
    now = datetime.now(UTC)
    # The common case, a new key, is one statement in its own transaction.
    if await IdempotencyRecord._meta.db.execute_query_dict(
        _INSERT, [scope, key, request_fingerprint, now, now + lease]
    ):
        return None
    async with in_transaction() as conn:
        for _ in range(3):
            now = datetime.now(UTC)
            rows = await conn.execute_query_dict(
                _INSERT, [scope, key, request_fingerprint, now, now + lease]
            )
            if rows:
                return None
            record = (
                await IdempotencyRecord.filter(scope=scope, key=key).select_for_update().first()
            )
            if record is None:
                continue  # deleted between our insert and read; try again
            if record.status_code is not None:
                if record.expires_at <= now:
                    await record.delete()
                    continue
                if record.fingerprint != request_fingerprint:
                    raise mismatch()
                return StoredResponse(record.status_code, record.response, replayed=True)
            # Still in flight: the key stays bound to its first request even
            # after the holder's lease ran out.
            if record.fingerprint != request_fingerprint:
                raise mismatch()
            if record.expires_at > now:
                raise _in_flight(max(1, math.ceil((record.expires_at - now).total_seconds())))
            record.expires_at = now + lease  # the holder is gone: take over
            await record.save(update_fields=["expires_at"])
            return None
    raise _in_flight(1)


async def complete(scope: str, key: str, status: int, body: Any, *, ttl: timedelta = TTL) -> None:
    """Store the final response of a claimed key; replayed for ``ttl`` from the first request.

    Nothing happens to a key that was purged, or whose result another holder
    (after a takeover) stored first.
    """
    response = IdempotencyRecord._meta.fields_map["response"].to_db_value(body, IdempotencyRecord)
    await IdempotencyRecord._meta.db.execute_query(_COMPLETE, [scope, key, status, response, ttl])


async def release(scope: str, key: str) -> None:
    """Give a claimed key back without a result, so the next request with it takes over at once."""
    await IdempotencyRecord.filter(scope=scope, key=key, status_code=None).update(
        expires_at=datetime.now(UTC)
    )


def stored_json(stored: StoredResponse) -> HTTPResponse:
    """A stored response as Sanic's; problem bodies keep ``application/problem+json``."""
    is_problem = isinstance(stored.body, dict) and stored.status >= 400 and "title" in stored.body
    response = json_response(
        stored.body,
        status=stored.status,
        content_type=PROBLEM_JSON if is_problem else "application/json",
    )
    if stored.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return response


async def idempotent_response(
    request: Request,
    scope: str,
    work: Work,
    *,
    fingerprint_key: bytes | None = None,
    conflict_in_flight: bool = False,
) -> HTTPResponse:
    """Sanic helper: read the header, fingerprint the request, run once, answer.

    A replay carries ``Idempotent-Replayed: true``. ``fingerprint_key`` and
    ``conflict_in_flight`` are passed on (see :func:`fingerprint`, :func:`run_once`).
    """
    key = validate_key(request.headers.get(HEADER))
    request_fingerprint = fingerprint(
        request.method, request.path, request.body, key=fingerprint_key
    )
    stored = await run_once(
        scope, key, request_fingerprint, work, conflict_in_flight=conflict_in_flight
    )
    return stored_json(stored)


async def purge_expired() -> int:
    """Delete expired keys; returns how many were removed.

    A claim whose holder vanished keeps its row for the full TTL: until then the
    key stays bound to its first request (a different body still gets 422).
    """
    now = datetime.now(UTC)
    return await IdempotencyRecord.filter(
        Q(status_code__isnull=False) | Q(created_at__lte=now - TTL), expires_at__lte=now
    ).delete()
