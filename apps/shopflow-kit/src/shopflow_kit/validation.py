"""Request parsing with precise 400/422 answers.

sanic-ext's own ``@validate`` answers 400 for every failure; the public contract
wants 400 for malformed JSON or bad query parameters and 422 for a well-formed
but invalid body, so the kit parses with pydantic itself and only borrows
sanic-ext for the OpenAPI document.
"""

from __future__ import annotations

import json as jsonlib
from collections.abc import Awaitable, Callable
from functools import wraps
from typing import Any, TypeVar, get_origin

from pydantic import BaseModel, ValidationError
from sanic import HTTPResponse, Request

from shopflow_kit.errors import Problem, validation_errors
from shopflow_kit.openapi import doc_of

M = TypeVar("M", bound=BaseModel)
Handler = Callable[..., Awaitable[HTTPResponse]]


def parse_json(request: Request, model: type[M]) -> M:
    """Parse the request body as ``model``: 400 if it is not JSON, 422 if it is invalid."""
    if not request.body:
        raise Problem(400, "a JSON request body is required")
    try:
        data = jsonlib.loads(request.body)
    except (ValueError, UnicodeDecodeError):
        raise Problem(400, "the request body is not valid JSON") from None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise Problem(422, "the request body is invalid", errors=validation_errors(exc)) from None


def parse_query(request: Request, model: type[M]) -> M:
    """Parse query parameters as ``model``; any problem is a 400 naming the parameter."""
    data: dict[str, Any] = {}
    for name, field in model.model_fields.items():
        key = field.alias or name
        values = request.args.getlist(key)
        if not values:
            continue
        data[key] = values if get_origin(field.annotation) is list else values[-1]
    unknown = sorted(set(request.args) - {f.alias or n for n, f in model.model_fields.items()})
    if unknown and model.model_config.get("extra") == "forbid":
        raise Problem(
            400,
            f"unknown query parameter: {', '.join(unknown)}",
            errors=[{"field": u, "message": "unknown parameter"} for u in unknown],
        )
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = validation_errors(exc)
        names = ", ".join(e["field"] for e in errors)
        raise Problem(400, f"invalid query parameter: {names}", errors=errors) from None


def json_body(model: type[BaseModel]) -> Callable[[Handler], Handler]:
    """Decorator: validate the body as ``model``, pass it as ``body=``, document it."""

    def decorator(handler: Handler) -> Handler:
        @wraps(handler)
        async def wrapper(request: Request, *args: Any, **kwargs: Any) -> HTTPResponse:
            kwargs["body"] = parse_json(request, model)
            return await handler(request, *args, **kwargs)

        doc = doc_of(wrapper)
        doc.body = model
        doc.problems.update({400, 413, 415, 422})
        return wrapper

    return decorator
