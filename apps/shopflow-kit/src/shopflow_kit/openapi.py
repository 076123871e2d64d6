"""Each service's public OpenAPI 3.1 document, built from its handlers' declarations.

Handlers declare what they take and answer with :func:`operation`; the kit's
:func:`~shopflow_kit.validation.json_body` and ``require_*`` decorators add the
request body, the security requirement and the problem statuses they can cause.
The document is then built from Sanic's router and pydantic's JSON Schemas (the
same models that validate and serialise), so it cannot drift from the code:

- every JSON endpoint has its ``requestBody``;
- success bodies are the real shapes (:class:`Page` envelopes for lists), and
  every error status has the shared RFC 9457 ``Problem`` schema;
- ``securitySchemes`` declares the bearer scheme that ``security`` uses;
- operationIds are unique (building fails otherwise);
- ``links`` say how one response feeds another operation (a created order's id
  to ``GET /orders/{order_id}``), within the document by operationId or to
  another service's document by ``operationRef``: schemathesis follows them in
  its stateful runs (tests/contracts);
- operations whose URL carries client data (a query or path parameters) document
  the gateway's 414 for a request line over ``limits.MAX_REQUEST_LINE_BYTES``;
- role-restricted operations name their role in ``security`` (``{"bearer":
  ["admin"]}``, as OpenAPI 3.1 allows for non-OAuth schemes);
- only public operations are listed: ``/internal/...``, ``/health``, ``/ready``
  and ``/metrics`` are not routed by the gateway, so they are not in the public
  document served at ``<prefix>/openapi.json`` (under each public prefix).

Why not sanic-ext's builder: it emits OpenAPI 3.0 around pydantic v2 schemas
(which are JSON Schema 2020-12, i.e. OpenAPI 3.1), loses ``required`` and can
only describe one body per status; the document would not tell the truth.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, Generic, TypeVar

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema
from sanic import HTTPResponse, Request, Sanic, json

from shopflow_kit.registry import lookup

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])

PROBLEM_JSON = "application/problem+json"
ATTRIBUTE = "__shopflow_operation__"
#: Paths a service serves that the gateway never routes to it.
PRIVATE = re.compile(r"^/(internal|health|ready|metrics)(/|$)")

PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "An RFC 9457 problem; validation errors add `errors`.",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["field", "message"],
                "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
            },
        },
    },
    "additionalProperties": True,
}


class Page(BaseModel, Generic[T]):
    """The list envelope of API.md: ``{items, total, page, page_size}``."""

    items: list[T]
    total: int
    page: int
    page_size: int


@dataclass(frozen=True)
class Link:
    """An OpenAPI link from a response to the operation it feeds.

    ``parameters`` and ``request_body`` are runtime expressions
    (``$response.body#/id``, ``$request.body#/email``); a parameter may name its
    location (``path.order_id``, ``header.Authorization``). The target is an
    operationId in the same document, or, with ``service``, another service's
    operation by method and path (an ``operationRef`` into its document).
    """

    operation_id: str = ""
    parameters: Mapping[str, str] = field(default_factory=dict)
    request_body: Any = None
    description: str = ""
    service: str | None = None
    method: str = ""
    path: str = ""

    def render(self) -> dict[str, Any]:
        if self.service is None:
            if not self.operation_id:
                raise ValueError("a link needs an operation_id, or a service, method and path")
            target: dict[str, Any] = {"operationId": self.operation_id}
        else:
            if not (self.method and self.path):
                raise ValueError(f"a link to {self.service} needs its method and path")
            pointer = self.path.replace("~", "~0").replace("/", "~1")
            document = f"{lookup(self.service).openapi_prefix}/openapi.json"
            target = {"operationRef": f"{document}#/paths/{pointer}/{self.method.lower()}"}
        if self.parameters:
            target["parameters"] = dict(self.parameters)
        if self.request_body is not None:
            target["requestBody"] = self.request_body
        if self.description:
            target["description"] = self.description
        return target


@dataclass
class OperationDoc:
    """What one handler takes and answers; filled in by the kit's decorators."""

    summary: str = ""
    description: str = ""
    #: status -> body model (None: no body, e.g. 204 or 304)
    responses: dict[int, type[BaseModel] | None] = field(default_factory=dict)
    problems: set[int] = field(default_factory=set)
    query: type[BaseModel] | None = None
    body: type[BaseModel] | None = None
    body_media_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    secured: bool = False
    #: roles the token must carry (``require_role``); empty: any signed-in user
    roles: set[str] = field(default_factory=set)
    #: status -> link name -> link
    links: dict[int, dict[str, Link]] = field(default_factory=dict)


def doc_of(handler: Callable[..., Any]) -> OperationDoc:
    """The handler's declaration, created on first use.

    Decorators run innermost first and ``functools.wraps`` copies the attribute
    (by reference) to each wrapper, so every decorator fills in the same object.
    """
    existing = getattr(handler, ATTRIBUTE, None)
    if existing is None:
        existing = OperationDoc()
        setattr(handler, ATTRIBUTE, existing)
    return existing


def operation(
    summary: str,
    *,
    responses: Mapping[int, type[BaseModel] | None],
    problems: Iterable[int] = (),
    query: type[BaseModel] | None = None,
    headers: Mapping[str, str] | None = None,
    form: type[BaseModel] | None = None,
    description: str = "",
    links: Mapping[int, Mapping[str, Link]] | None = None,
) -> Callable[[F], F]:
    """Declare a public operation: its success bodies, its problem statuses, its query model.

    ``headers`` documents request headers (name -> description), such as
    ``Idempotency-Key``. ``form`` documents a form-encoded body (OAuth2's token
    endpoint); JSON bodies are documented by ``json_body``. ``links`` maps a
    success status to the links of that response. Put it directly under the
    route decorator.
    """

    def decorator(handler: F) -> F:
        doc = doc_of(handler)
        doc.summary = summary
        doc.description = description
        doc.responses.update(responses)
        doc.problems.update(problems)
        doc.headers.update(headers or {})
        for status, named in (links or {}).items():
            doc.links.setdefault(status, {}).update(named)
        if query is not None:
            doc.query = query
            doc.problems.add(400)
        if form is not None:
            doc.body = form
            doc.body_media_type = "application/x-www-form-urlencoded"
        return handler

    return decorator


def _path(route_path: str) -> str:
    """Sanic's ``products/<product_id:str>`` as OpenAPI's ``/products/{product_id}``."""
    path = re.sub(r"<([A-Za-z_][A-Za-z0-9_]*)(?::[^>]*)?>", r"{\1}", route_path)
    return "/" + path.lstrip("/")


def _models(docs: Iterable[OperationDoc]) -> list[tuple[type[BaseModel], Any]]:
    seen: dict[tuple[type[BaseModel], str], None] = {}
    for doc in docs:
        for model in doc.responses.values():
            if model is not None:
                seen[(model, "serialization")] = None
        if doc.body is not None:
            seen[(doc.body, "validation")] = None
    return list(seen)


def _ref(model: type[BaseModel], mode: str, refs: Mapping[tuple[Any, Any], Any]) -> Any:
    return refs[(model, mode)]


def _parameters(doc: OperationDoc, path: str) -> list[dict[str, Any]]:
    parameters: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in re.findall(r"{([^}]+)}", path)
    ]
    for name, description in doc.headers.items():
        parameters.append(
            {
                "name": name,
                "in": "header",
                "required": True,
                "description": description,
                "schema": {"type": "string", "minLength": 1, "maxLength": 255},
            }
        )
    if doc.query is not None:
        schema = doc.query.model_json_schema(mode="validation")
        required = set(schema.get("required", []))
        for name, prop in schema.get("properties", {}).items():
            prop = dict(prop)
            description = prop.pop("description", "")
            prop.pop("title", None)
            parameter = {"name": name, "in": "query", "required": name in required, "schema": prop}
            if description:
                parameter["description"] = description
            parameters.append(parameter)
    return parameters


def build(app: Sanic[Any, Any], title: str, prefixes: Iterable[str]) -> dict[str, Any]:
    """The public document: every declared operation under one of ``prefixes``."""
    wanted = tuple(p.rstrip("/") for p in prefixes)
    found: list[tuple[str, str, Callable[..., Any], OperationDoc]] = []
    for route in app.router.routes:
        path = _path(route.path)
        doc = getattr(route.handler, ATTRIBUTE, None)
        if doc is None or PRIVATE.match(path):
            continue
        if not any(path == p or path.startswith(f"{p}/") for p in wanted):
            continue
        for method in sorted(route.methods - {"HEAD", "OPTIONS"}):
            found.append((path, method.lower(), route.handler, doc))

    refs, definitions = models_json_schema(
        _models(doc for *_, doc in found), ref_template="#/components/schemas/{model}"
    )
    schemas: dict[str, Any] = dict(definitions.get("$defs", {}))
    schemas["Problem"] = PROBLEM_SCHEMA

    paths: dict[str, dict[str, Any]] = {}
    operation_ids: set[str] = set()
    for path, method, handler, doc in sorted(found, key=lambda f: (f[0], f[1])):
        operation_id = handler.__name__
        if operation_id in operation_ids:
            raise ValueError(f"duplicate operationId {operation_id} ({method.upper()} {path})")
        operation_ids.add(operation_id)
        responses: dict[str, Any] = {}
        for status, model in sorted(doc.responses.items()):
            response: dict[str, Any] = {"description": HTTPStatus(status).phrase}
            if model is not None:
                schema = _ref(model, "serialization", refs)
                response["content"] = {"application/json": {"schema": schema}}
            if doc.links.get(status):
                response["links"] = {n: link.render() for n, link in doc.links[status].items()}
            responses[str(status)] = response
        problems = set(doc.problems)
        if doc.query is not None or "{" in path:
            problems.add(414)  # the gateway's request-line limit (shopflow_kit.limits)
        for status in sorted(problems):
            responses[str(status)] = {
                "description": HTTPStatus(status).phrase,
                "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
            }
        entry: dict[str, Any] = {
            "operationId": operation_id,
            "summary": doc.summary or handler.__name__.replace("_", " "),
            "responses": responses,
        }
        if doc.description:
            entry["description"] = doc.description
        parameters = _parameters(doc, path)
        if parameters:
            entry["parameters"] = parameters
        if doc.body is not None:
            entry["requestBody"] = {
                "required": True,
                "content": {doc.body_media_type: {"schema": _ref(doc.body, "validation", refs)}},
            }
        if doc.secured:
            entry["security"] = [{"bearer": sorted(doc.roles)}]
        paths.setdefault(path, {})[method] = entry

    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": "1.0.0"},
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
            },
        },
    }


def install(app: Sanic[Any, Any], title: str, prefixes: Iterable[str]) -> None:
    """Serve the public document at ``<prefix>/openapi.json`` for each prefix, built once.

    A service with several prefixes (order-mgmt's ``/cart`` and ``/orders``)
    serves the same document under each, so every routed prefix documents itself.
    """
    prefixes = tuple(prefixes)
    cache: dict[str, dict[str, Any]] = {}

    async def openapi_json(request: Request) -> HTTPResponse:
        if "doc" not in cache:
            cache["doc"] = build(request.app, title, prefixes)
        return json(cache["doc"])

    for index, prefix in enumerate(prefixes):
        name = "openapi" if index == 0 else f"openapi_{index}"
        app.add_route(openapi_json, f"{prefix}/openapi.json", methods=["GET"], name=name)
