"""Request parsing with precise 400/415/422 answers.

sanic-ext's own ``@validate`` answers 400 for every failure; the public contract
wants 400 for malformed JSON or bad query parameters and 422 for a well-formed
but invalid body, so the kit parses with pydantic itself and only borrows
sanic-ext for the OpenAPI document.

Everything a request carries is checked here before a service sees it, so no
service has to remember that PostgreSQL cannot store a NUL character, that a
JSON parser recurses, or how wide an ``integer`` column is.
"""

from __future__ import annotations

import json as jsonlib
from collections.abc import Awaitable, Callable
from functools import wraps
from typing import Annotated, Any, TypeVar, get_origin

from pydantic import BaseModel, Field, ValidationError
from sanic import HTTPResponse, Request

from shopflow_kit.errors import Problem, validation_errors
from shopflow_kit.openapi import doc_of

M = TypeVar("M", bound=BaseModel)
Handler = Callable[..., Awaitable[HTTPResponse]]

# PostgreSQL's integer column types. Every integer a request carries is bounded
# by the column it ends up in; these are the only place those bounds are written.
INT4_MIN, INT4_MAX = -(2**31), 2**31 - 1
INT8_MIN, INT8_MAX = -(2**63), 2**63 - 1
Int4 = Annotated[int, Field(ge=INT4_MIN, le=INT4_MAX)]
Int8 = Annotated[int, Field(ge=INT8_MIN, le=INT8_MAX)]

#: No ShopFlow body nests deeper than a few levels; this bounds parsing and storage.
MAX_JSON_DEPTH = 32
JSON_MEDIA_TYPE = "application/json"


class BadJSON(ValueError):
    """The body is not JSON the kit accepts; ``status`` and ``field`` say why and where."""

    def __init__(self, status: int, detail: str, field: str = "body") -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.field = field


def text_problem(value: str) -> str | None:
    """Why PostgreSQL could not store ``value`` as text, or ``None``."""
    if "\x00" in value:
        return "must not contain NUL characters"
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return "is not valid Unicode (it contains a lone surrogate)"
    return None


def _field_name(path: tuple[str | int, ...]) -> str:
    return ".".join(str(p) for p in path) or "body"


def check_json(data: Any) -> None:
    """Depth and text checks over parsed JSON, without recursion."""
    stack: list[tuple[Any, tuple[str | int, ...]]] = [(data, ())]
    while stack:
        value, path = stack.pop()
        if isinstance(value, str):
            problem = text_problem(value)
            if problem:
                raise BadJSON(422, f"{_field_name(path)} {problem}", _field_name(path))
        elif isinstance(value, dict | list):
            if len(path) >= MAX_JSON_DEPTH:
                raise BadJSON(400, f"the JSON body nests deeper than {MAX_JSON_DEPTH} levels")
            if isinstance(value, dict):
                for key, item in value.items():
                    if text_problem(key):
                        name = _field_name(path)
                        raise BadJSON(422, f"a key in {name} {text_problem(key)}", name)
                    stack.append((item, (*path, key)))
            else:
                stack.extend((item, (*path, index)) for index, item in enumerate(value))


def _not_json(constant: str) -> Any:
    """Python's parser takes NaN and Infinity; RFC 8259 JSON has no such values."""
    raise ValueError(f"{constant} is not JSON")


def decode_json(raw: bytes) -> Any:
    """Parse and check a JSON body; raises :class:`BadJSON`.

    The standard parser recurses once per nesting level and stops at Python's
    recursion limit; that, and the explicit depth check, bound the work for any
    input (100,000 nested arrays included).
    """
    try:
        data = jsonlib.loads(raw, parse_constant=_not_json)
    except RecursionError:
        raise BadJSON(400, f"the JSON body nests deeper than {MAX_JSON_DEPTH} levels") from None
    except (ValueError, UnicodeDecodeError):
        raise BadJSON(400, "the request body is not valid JSON") from None
    check_json(data)
    return data


def require_json_content_type(request: Request) -> None:
    """415 unless the body is declared ``application/json`` (parameters such as charset allowed).

    A cross-site HTML form can only send form or text bodies; refusing them means
    a browser must make a CORS preflight before it can post JSON here.
    """
    declared = request.headers.get("content-type", "")
    if declared.partition(";")[0].strip().lower() != JSON_MEDIA_TYPE:
        raise Problem(415, f"the request body must be sent as {JSON_MEDIA_TYPE}")


def require_identity_encoding(request: Request) -> None:
    """415 for a body sent with a content coding (gzip, ...): bodies are read as sent.

    RFC 7694: the answer names what is accepted, ``Accept-Encoding: identity``.
    """
    codings = [c.strip().lower() for c in request.headers.get("content-encoding", "").split(",")]
    if any(c not in ("", "identity") for c in codings):
        raise Problem(
            415,
            "request bodies must be sent uncompressed (no Content-Encoding)",
            headers={"Accept-Encoding": "identity"},
        )


def parse_json(request: Request, model: type[M]) -> M:
    """Parse the body as ``model``: 400 if not JSON, 415 if not declared JSON or
    compressed, 422 if invalid."""
    if not request.body:
        raise Problem(400, "a JSON request body is required")
    require_json_content_type(request)
    require_identity_encoding(request)
    try:
        data = decode_json(request.body)
    except BadJSON as exc:
        errors = [{"field": exc.field, "message": exc.detail}] if exc.status == 422 else None
        detail = "the request body is invalid" if exc.status == 422 else exc.detail
        raise Problem(exc.status, detail, errors=errors) from None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise Problem(422, "the request body is invalid", errors=validation_errors(exc)) from None


def parse_query(request: Request, model: type[M]) -> M:
    """Parse query parameters as ``model``; any problem is a 400 naming the parameter."""
    data: dict[str, Any] = {}
    errors: list[dict[str, str]] = []
    for name, field in model.model_fields.items():
        key = field.alias or name
        values = request.args.getlist(key)
        if not values:
            continue
        for value in values:
            problem = text_problem(value)
            if problem:
                errors.append({"field": key, "message": problem})
                break
        data[key] = values if get_origin(field.annotation) is list else values[-1]
    unknown = sorted(set(request.args) - {f.alias or n for n, f in model.model_fields.items()})
    if unknown and model.model_config.get("extra") == "forbid":
        raise Problem(
            400,
            f"unknown query parameter: {', '.join(unknown)}",
            errors=[{"field": u, "message": "unknown parameter"} for u in unknown],
        )
    if not errors:
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            errors = validation_errors(exc)
    names = ", ".join(e["field"] for e in errors)
    raise Problem(400, f"invalid query parameter: {names}", errors=errors)


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
