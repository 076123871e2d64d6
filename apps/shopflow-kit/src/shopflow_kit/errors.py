"""Every error leaves a service as RFC 9457 ``application/problem+json``."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any

from pydantic import ValidationError
from sanic import HTTPResponse, Request, json
from sanic.exceptions import SanicException
from sanic.handlers import ErrorHandler
from tortoise.exceptions import DoesNotExist, IntegrityError

from shopflow_kit.redaction import redact

log = logging.getLogger("shopflow.errors")

PROBLEM_JSON = "application/problem+json"


class Problem(SanicException):
    """An error with a status, a short title and a human-readable detail."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        title: str | None = None,
        type_: str = "about:blank",
        errors: Sequence[Mapping[str, str]] | None = None,
        headers: Mapping[str, str] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(detail, status_code=status, headers=dict(headers or {}))
        self.detail = detail
        self.title = title or HTTPStatus(status).phrase
        self.type_ = type_
        self.errors = list(errors) if errors is not None else None
        self.extra = dict(extra or {})


def problem_body(
    status: int,
    detail: str,
    *,
    title: str | None = None,
    type_: str = "about:blank",
    errors: Sequence[Mapping[str, str]] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The RFC 9457 body; for answers that are stored before they are sent (idempotency)."""
    body: dict[str, Any] = {
        "type": type_,
        "title": title or HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
    }
    if errors is not None:
        body["errors"] = list(errors)
    body.update(extra or {})
    # An error body never echoes card data, whatever a handler put into it.
    redacted: dict[str, Any] = redact(body)
    return redacted


def problem_response(
    status: int,
    detail: str,
    *,
    title: str | None = None,
    type_: str = "about:blank",
    errors: Sequence[Mapping[str, str]] | None = None,
    headers: Mapping[str, str] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> HTTPResponse:
    body = problem_body(status, detail, title=title, type_=type_, errors=errors, extra=extra)
    return json(body, status=status, headers=dict(headers or {}), content_type=PROBLEM_JSON)


def validation_errors(exc: ValidationError) -> list[dict[str, str]]:
    """Pydantic errors as ``[{field, message}]``; input values are never echoed."""
    return [
        {"field": ".".join(str(p) for p in err["loc"]) or "body", "message": err["msg"]}
        for err in exc.errors(include_url=False, include_input=False)
    ]


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def _allowed_methods(request: Request) -> str:
    """RFC 9110's ``Allow`` of a 405, from the router: Sanic leaves it out on routes
    with a path parameter (``/products/<id>``)."""
    allowed = []
    for method in _METHODS:
        try:
            request.app.router.get(request.path, method, None)
        except SanicException:
            continue
        allowed.append(method)
    return ", ".join(allowed)


def to_problem(request: Request | None, exc: BaseException) -> HTTPResponse:
    if isinstance(exc, Problem):
        return problem_response(
            exc.status_code,
            exc.detail,
            title=exc.title,
            type_=exc.type_,
            errors=exc.errors,
            headers=exc.headers,
            extra=exc.extra,
        )
    if isinstance(exc, ValidationError):
        return problem_response(422, "the request body is invalid", errors=validation_errors(exc))
    if isinstance(exc, DoesNotExist):
        return problem_response(404, "the resource does not exist")
    if isinstance(exc, IntegrityError):
        return problem_response(409, "the request conflicts with the current state")
    if isinstance(exc, SanicException):
        status = exc.status_code
        detail = str(exc) if exc.message else HTTPStatus(status).description
        if status == 413 and "header" in str(exc).lower():
            # Sanic reports headers over REQUEST_MAX_HEADER_SIZE as a 413 too.
            status = 431
            detail = "the request headers are larger than the 16 KiB limit"
        elif status == 413:
            detail = "the request body is larger than the 1 MiB limit"
        elif status == 401:  # never a library's own wording on an authentication failure
            detail = "authentication is required"
        headers = exc.headers
        if status == 405 and request is not None and "allow" not in {k.lower() for k in headers}:
            headers = {**headers, "Allow": _allowed_methods(request)}
        return problem_response(status, detail, headers=headers)
    request_id = getattr(getattr(request, "ctx", None), "request_id", None)
    log.exception("unhandled error", extra={"request_id": request_id})
    return problem_response(500, "an internal error occurred; quote the x-request-id to support")


class ProblemErrorHandler(ErrorHandler):
    """Sanic error handler that renders problem+json and never a traceback."""

    def default(self, request: Request, exception: Exception) -> HTTPResponse:
        response = to_problem(request, exception)
        request_id = getattr(request.ctx, "request_id", None) if request else None
        if request_id:
            response.headers["x-request-id"] = request_id
        return response
