"""Static contracts: the mesh's routes and policies against the services' OpenAPI documents.

Pure code over rendered objects, OpenAPI documents and the service registry;
:mod:`shopctl.contracts_io` renders and reads them. Four checks run for each
environment, and every finding names the environment, the route or operation,
and the file to change:

- ``owner``: each VirtualService route prefix belongs to exactly one service in
  the registry, the route sends it to that service, and the service's OpenAPI
  has at least one path under it.
- ``route``: each documented operation (and each service's own OpenAPI document)
  is reached through the gateway by a route to its owner, with Istio's path
  normalisation and ``rewrite.uri`` applied as the local gateway applies them
  (the same :class:`~shopctl.virtualservice.RoutingTable`); the owner's sidecar
  admits the ingress gateway for it; POST and PATCH are never retried.
- ``security``: an operation is secured in its OpenAPI (``security``) if and
  only if the mesh demands a verified JWT for it: without a token the ingress
  gateway's AuthorizationPolicies deny it, and with a token that user-auth
  signed (a RequestAuthentication on the gateway accepts its issuer) they allow it.
- ``callers``: each service's AuthorizationPolicy callers and NetworkPolicy
  peers (ingress and egress) equal the registry's call graph.
- ``links``: every OpenAPI link leads to an operation that exists: by
  operationId in the same document, or by ``operationRef`` into the document of
  the service that owns the path (the stateful fuzzing follows them).

A service whose code has not landed yet cannot give its document: that is a
``pending`` finding naming the service, never a silent pass.

Istio's AuthorizationPolicy semantics are evaluated by :func:`authorize` (DENY
first, then ALLOW; rules OR-ed, fields inside a source or operation AND-ed;
exact, prefix ``x*``, suffix ``*x`` and presence ``*`` matches). Any field it
does not implement is a finding naming the field, so a policy can never be
judged by a model that ignores part of it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from shopflow_kit.registry import SERVICES, Service, callers_of

from shopctl.virtualservice import GatewayConfigError, Route, RoutingTable, normalize_path

#: Istio's gateway chart runs the ingress under its release name
#: (argocd/applicationsets/istio.yaml installs it as ``istio-ingressgateway``).
INGRESS_SERVICE_ACCOUNT = "istio-ingressgateway"
#: Not safe to send twice (RFC 9110 9.2.2): the mesh must never retry them.
NON_IDEMPOTENT = frozenset({"POST", "PATCH"})
HTTP_METHODS = frozenset({"get", "put", "post", "delete", "patch", "head", "options", "trace"})
#: Stands in for a path parameter: every id in the API is a UUID.
SAMPLE_ID = "00000000-0000-4000-8000-000000000000"
#: A verified token's request principal is ``<iss>/<sub>`` in Istio.
SAMPLE_SUBJECT = SAMPLE_ID
AUDIENCE = "shopflow"
_PARAMETER = re.compile(r"{[^}/]+}")
_PRINCIPAL = re.compile(r"^cluster\.local/ns/(?P<ns>[^/]+)/sa/(?P<sa>[^/]+)$")

OpenAPI = Mapping[str, Any]
Doc = dict[str, Any]


@dataclass(frozen=True)
class Finding:
    env: str
    check: str  #: owner | route | security | callers | pending | model
    subject: str  #: the route, operation or service it is about
    message: str
    file: str  #: the file to change

    def __str__(self) -> str:
        return f"[{self.env}] {self.check}: {self.subject}: {self.message} (change {self.file})"


@dataclass(frozen=True)
class Source:
    """One rendered Application: its objects and the value files that made them.

    ``value_files`` are in Helm's order (the chart's ``values.yaml`` first), so
    :meth:`blame` names the last file that sets a key: the one to change.
    """

    component: str  #: a service name, ``mesh`` or ``platform``
    chart: str  #: ``charts/<chart>``
    value_files: tuple[tuple[str, Mapping[str, Any]], ...]
    objects: tuple[Doc, ...]

    def blame(self, *keys: str) -> str:
        for path, values in reversed(self.value_files):
            node: Any = values
            for key in keys:
                if not isinstance(node, Mapping) or key not in node:
                    break
                node = node[key]
            else:
                return str(path)
        return self.value_files[0][0] if self.value_files else f"{self.chart}/values.yaml"


@dataclass(frozen=True)
class Deployment:
    """What Argo CD would apply for one environment."""

    env: str
    namespace: str
    sources: tuple[Source, ...]

    def objects(self, kind: str) -> Iterator[tuple[Source, Doc]]:
        for source in self.sources:
            for obj in source.objects:
                if obj.get("kind") == kind:
                    yield source, obj

    def source(self, component: str) -> Source | None:
        return next((s for s in self.sources if s.component == component), None)


@dataclass(frozen=True)
class Operation:
    service: Service
    method: str  #: upper case
    path: str  #: as documented, ``/products/{product_id}``
    secured: bool
    what: str = "operation"

    @property
    def concrete(self) -> str:
        return _PARAMETER.sub(SAMPLE_ID, self.path)

    def __str__(self) -> str:
        return f"{self.method} {self.path} ({self.service.name} {self.what})"


# --- Istio AuthorizationPolicy, the subset ShopFlow uses ------------------------


class PolicyModelError(ValueError):
    """A policy uses a field this model does not evaluate; the message names it."""


@dataclass(frozen=True)
class Request:
    """What an AuthorizationPolicy sees of a request."""

    method: str
    path: str
    #: the peer's mTLS identity, ``cluster.local/ns/<ns>/sa/<sa>``
    principal: str | None = None
    #: ``<iss>/<sub>`` of a verified JWT
    request_principal: str | None = None

    @property
    def namespace(self) -> str | None:
        match = _PRINCIPAL.match(self.principal or "")
        return match["ns"] if match else None


@dataclass(frozen=True)
class Workload:
    namespace: str
    labels: Mapping[str, str]


def _value_matches(pattern: str, value: str | None) -> bool:
    if value is None or value == "":
        return False
    if pattern == "*":
        return True
    if pattern.endswith("*"):
        return value.startswith(pattern[:-1])
    if pattern.startswith("*"):
        return value.endswith(pattern[1:])
    return value == pattern


def _negated(name: str) -> str:
    return "not" + name[0].upper() + name[1:]


def _field(spec: Mapping[str, Any], name: str, value: str | None, where: str) -> bool:
    """One positive/negative pair (``paths``/``notPaths``): both must hold if present."""
    positive, negative = spec.get(name), spec.get(_negated(name))
    for patterns, label in ((positive, name), (negative, _negated(name))):
        if patterns is None:
            continue
        if not isinstance(patterns, list):
            raise PolicyModelError(f"{where}.{label} must be a list")
        if name == "paths" and any("{" in str(p) for p in patterns):
            raise PolicyModelError(f"{where}.{label}: path templates are not evaluated")
    if positive is not None and not any(_value_matches(str(p), value) for p in positive):
        return False
    return negative is None or not any(_value_matches(str(p), value) for p in negative)


#: rule clause -> (entry key, {field: the Request attribute it is matched against})
_CLAUSES: dict[str, tuple[str, dict[str, str]]] = {
    "from": (
        "source",
        {
            "principals": "principal",
            "requestPrincipals": "request_principal",
            "namespaces": "namespace",
        },
    ),
    "to": ("operation", {"paths": "path", "methods": "method"}),
}


def _unknown(keys: Iterable[str], allowed: Iterable[str], where: str) -> None:
    unknown = sorted(set(keys) - set(allowed))
    if unknown:
        raise PolicyModelError(f"{where}.{unknown[0]} is not evaluated by the contract checker")


def _entry_matches(
    entry: Mapping[str, Any], fields: Mapping[str, str], request: Request, where: str
) -> bool:
    _unknown(entry, [*fields, *map(_negated, fields)], where)
    return all(
        _field(entry, name, getattr(request, attribute), where)
        for name, attribute in fields.items()
    )


def _rule_matches(rule: Mapping[str, Any], request: Request, where: str) -> bool:
    """Clauses are AND-ed; the entries of one clause are OR-ed; an absent clause matches."""
    _unknown(rule, _CLAUSES, where)
    for clause, (key, fields) in _CLAUSES.items():
        entries = rule.get(clause)
        if entries is not None and not any(
            _entry_matches(e.get(key) or {}, fields, request, f"{where}.{clause}[{i}].{key}")
            for i, e in enumerate(entries)
        ):
            return False
    return True


def _selects(policy: Mapping[str, Any], workload: Workload, root_namespace: str) -> bool:
    meta, spec = policy.get("metadata") or {}, policy.get("spec") or {}
    namespace = meta.get("namespace")
    for ref in ("targetRef", "targetRefs"):
        if ref in spec:
            raise PolicyModelError(
                f"AuthorizationPolicy {meta.get('name')}: spec.{ref} is not evaluated"
            )
    selector = (spec.get("selector") or {}).get("matchLabels")
    if namespace == root_namespace and selector is None:
        return True  # mesh-wide
    if namespace != workload.namespace:
        return False
    return selector is None or all(workload.labels.get(k) == v for k, v in selector.items())


def authorize(
    policies: Iterable[Mapping[str, Any]],
    workload: Workload,
    request: Request,
    *,
    root_namespace: str = "istio-system",
) -> bool:
    """Whether Istio lets ``request`` reach ``workload`` (CUSTOM policies are not modelled)."""
    deny: list[Mapping[str, Any]] = []
    allow: list[Mapping[str, Any]] = []
    for policy in policies:
        if not _selects(policy, workload, root_namespace):
            continue
        action = (policy.get("spec") or {}).get("action", "ALLOW")
        if action == "DENY":
            deny.append(policy)
        elif action == "ALLOW":
            allow.append(policy)
        elif action != "AUDIT":
            name = (policy.get("metadata") or {}).get("name")
            raise PolicyModelError(f"AuthorizationPolicy {name}: action {action} is not evaluated")

    def matches(policy: Mapping[str, Any]) -> bool:
        name = (policy.get("metadata") or {}).get("name")
        rules = (policy.get("spec") or {}).get("rules") or []
        return any(
            _rule_matches(rule or {}, request, f"AuthorizationPolicy {name}: spec.rules[{i}]")
            for i, rule in enumerate(rules)
        )

    if any(matches(p) for p in deny):
        return False
    return not allow or any(matches(p) for p in allow)


# --- reading the deployment ------------------------------------------------------


def operations(service: Service, document: OpenAPI) -> list[Operation]:
    """Every documented operation, plus the document itself (a public GET)."""
    default = document.get("security") or []
    found = []
    for path, item in sorted((document.get("paths") or {}).items()):
        for method, spec in sorted(item.items()):
            if method not in HTTP_METHODS:
                continue
            requirements = spec.get("security", default) or []
            # `[{}]` or an empty alternative means a token is optional: not secured.
            secured = bool(requirements) and all(bool(r) for r in requirements)
            found.append(Operation(service, method.upper(), path, secured))
    found.append(
        Operation(
            service, "GET", f"{service.openapi_prefix}/openapi.json", False, "OpenAPI document"
        )
    )
    return found


def _name(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("name", "?"))


def _short_host(host: str) -> str:
    return host.split(".")[0]


@dataclass
class _Mesh:
    """The mesh as the checks need it, or the findings that stopped reading it."""

    table: RoutingTable | None = None
    vs_source: Source | None = None
    vs_name: str = ""
    ingress: Workload | None = None
    ingress_principal: str = ""
    policies: list[Doc] = field(default_factory=list)
    token_principal: str | None = None
    problems: list[Finding] = field(default_factory=list)


def _read_mesh(deployment: Deployment) -> _Mesh:
    env = deployment.env
    mesh = _Mesh(policies=[obj for _, obj in deployment.objects("AuthorizationPolicy")])
    services = list(deployment.objects("VirtualService"))
    if len(services) != 1:
        mesh.problems.append(
            Finding(
                env,
                "model",
                "VirtualService",
                f"expected one VirtualService, rendered {len(services)}",
                "charts/shopflow-mesh/templates/virtualservice.yaml",
            )
        )
        return mesh
    source, vs = services[0]
    mesh.vs_source, mesh.vs_name = source, _name(vs)
    try:
        mesh.table = RoutingTable.from_virtual_service(vs)
    except GatewayConfigError as exc:
        mesh.problems.append(
            Finding(env, "model", f"VirtualService {_name(vs)}", str(exc), source.blame("routes"))
        )
        return mesh
    gateways = {
        f"{(obj.get('metadata') or {}).get('namespace')}/{_name(obj)}": obj
        for _, obj in deployment.objects("Gateway")
    }
    names = (vs.get("spec") or {}).get("gateways") or []
    bound = [gateways[n] for n in names if n in gateways]
    if not bound:
        mesh.problems.append(
            Finding(
                env,
                "model",
                f"VirtualService {_name(vs)}",
                f"spec.gateways {names} names no rendered Gateway",
                source.blame("gateway"),
            )
        )
        return mesh
    gateway = bound[0]
    namespace = str(gateway["metadata"]["namespace"])
    mesh.ingress = Workload(namespace, dict((gateway.get("spec") or {}).get("selector") or {}))
    mesh.ingress_principal = f"cluster.local/ns/{namespace}/sa/{INGRESS_SERVICE_ACCOUNT}"
    issuer = _signing_issuer(deployment)
    for _, auth in deployment.objects("RequestAuthentication"):
        if not _selects_workload(auth, mesh.ingress):
            continue
        for rule in (auth.get("spec") or {}).get("jwtRules") or []:
            audiences = rule.get("audiences")
            if issuer and rule.get("issuer") == issuer and (not audiences or AUDIENCE in audiences):
                mesh.token_principal = f"{issuer}/{SAMPLE_SUBJECT}"
    return mesh


def _selects_workload(obj: Mapping[str, Any], workload: Workload) -> bool:
    if (obj.get("metadata") or {}).get("namespace") != workload.namespace:
        return False
    selector = ((obj.get("spec") or {}).get("selector") or {}).get("matchLabels")
    return selector is None or all(workload.labels.get(k) == v for k, v in selector.items())


def _signing_issuer(deployment: Deployment) -> str | None:
    """The issuer user-auth signs with: its rendered ConfigMap's ``..._JWT_ISSUER``."""
    source = deployment.source("user-auth")
    for obj in source.objects if source else ():
        if obj.get("kind") == "ConfigMap":
            for key, value in (obj.get("data") or {}).items():
                if key.endswith("_JWT_ISSUER"):
                    return str(value)
    return None


def _workload(deployment: Deployment, service: Service) -> Workload | None:
    source = deployment.source(service.name)
    for obj in source.objects if source else ():
        if obj.get("kind") == "Deployment":
            labels = ((obj["spec"].get("template") or {}).get("metadata") or {}).get("labels")
            return Workload(deployment.namespace, dict(labels or {}))
    return None


# --- the checks ------------------------------------------------------------------


def _owners(prefix: str, services: Sequence[Service]) -> list[Service]:
    return [
        s for s in services if any(prefix == p or prefix.startswith(f"{p}/") for p in s.prefixes)
    ]


def _under(document: OpenAPI, prefix: str) -> bool:
    return any(
        path == prefix or path.startswith(f"{prefix.rstrip('/')}/")
        for path in document.get("paths") or {}
    )


def check_owners(
    deployment: Deployment,
    mesh: _Mesh,
    documents: Mapping[str, OpenAPI | None],
    services: Sequence[Service],
) -> list[Finding]:
    assert mesh.table is not None and mesh.vs_source is not None
    env, file = deployment.env, mesh.vs_source.blame("routes")
    findings = []
    for route in mesh.table.routes:
        subject = f"route {route.name}"
        hosts = sorted({_short_host(d.host) for d in route.destinations})
        uris = [m.uri for m in route.matches]
        if not route.matches or any(u is None for u in uris):
            findings.append(
                Finding(
                    env, "owner", subject, "matches every path: each route must name a prefix", file
                )
            )
            continue
        for uri in uris:
            assert uri is not None
            if uri.kind == "regex":
                findings.append(
                    Finding(
                        env,
                        "owner",
                        subject,
                        f"uri regex {uri.value!r} has no single owner; use a prefix",
                        file,
                    )
                )
                continue
            owners = _owners(uri.value, services)
            where = f"{subject} (prefix {uri.value})"
            if not owners:
                findings.append(
                    Finding(
                        env, "owner", where, "no service in the registry owns this prefix", file
                    )
                )
                continue
            if len(owners) > 1:
                names = ", ".join(o.name for o in owners)
                findings.append(
                    Finding(
                        env,
                        "owner",
                        where,
                        f"owned by more than one service ({names})",
                        "apps/shopflow-kit/src/shopflow_kit/registry.py",
                    )
                )
                continue
            owner = owners[0]
            if hosts != [owner.name]:
                findings.append(
                    Finding(
                        env,
                        "owner",
                        where,
                        f"owned by {owner.name} but routed to {', '.join(hosts)}",
                        file,
                    )
                )
            document = documents.get(owner.name)
            if document is not None and not _under(document, uri.value):
                findings.append(
                    Finding(
                        env,
                        "owner",
                        where,
                        f"{owner.name}'s OpenAPI has no path under {uri.value}",
                        file,
                    )
                )
    return findings


def _external_paths(table: RoutingTable, path: str) -> list[str]:
    """The paths a client can send for ``path`` to arrive: as is, or through a rewrite."""
    candidates = [path]
    for route in table.routes:
        if route.rewrite_uri is None:
            continue
        for match in route.matches:
            if (
                match.uri is not None
                and match.uri.kind == "prefix"
                and path.startswith(route.rewrite_uri)
            ):
                candidates.append(match.uri.value + path[len(route.rewrite_uri) :])
            elif match.uri is not None and match.uri.kind == "exact" and path == route.rewrite_uri:
                candidates.append(match.uri.value)
    return list(dict.fromkeys(candidates))


@dataclass(frozen=True)
class _Routing:
    external: str | None = None  #: the path a client sends
    route: Route | None = None
    wrong: tuple[str, ...] = ()  #: routes that catch it but send it elsewhere


def _route_to(table: RoutingTable, op: Operation) -> _Routing:
    """The external path and the route that bring ``op`` to its owner, or why none does."""
    wrong: list[str] = []
    for external in _external_paths(table, op.concrete):
        if normalize_path(external) != external:
            continue  # the gateway would normalise it into another path
        resolved = table.resolve(op.method, external, {})
        if resolved is None:
            continue
        route, match = resolved
        if route.rewritten(external, match) != op.concrete:
            continue
        hosts = sorted({_short_host(d.host) for d in route.destinations})
        if hosts == [op.service.name]:
            return _Routing(external, route)
        wrong.append(f"route {route.name} sends {op.method} {external} to {', '.join(hosts)}")
    return _Routing(wrong=tuple(wrong))


def check_operations(
    deployment: Deployment,
    mesh: _Mesh,
    documents: Mapping[str, OpenAPI | None],
    services: Sequence[Service],
) -> list[Finding]:
    assert mesh.table is not None and mesh.vs_source is not None and mesh.ingress is not None
    env = deployment.env
    routes_file = mesh.vs_source.blame("routes")
    mesh_source = deployment.source("mesh") or mesh.vs_source
    findings: list[Finding] = []
    for service in services:
        document = documents.get(service.name)
        if document is None:
            continue
        workload = _workload(deployment, service)
        chart = deployment.source(service.name)
        for op in operations(service, document):
            subject = str(op)
            routing = _route_to(mesh.table, op)
            external, route = routing.external, routing.route
            if external is None or route is None:
                message = "; ".join(routing.wrong) or "no route reaches it through the gateway"
                findings.append(Finding(env, "route", subject, message, routes_file))
                continue
            retries = route.retries
            if op.method in NON_IDEMPOTENT and (retries is None or retries.attempts > 0):
                attempts = (
                    "Istio's default retries" if retries is None else f"{retries.attempts} retries"
                )
                findings.append(
                    Finding(
                        env,
                        "route",
                        subject,
                        f"route {route.name} allows {attempts} for a non-idempotent method; "
                        "set retries.attempts: 0",
                        routes_file,
                    )
                )
            try:
                findings += _security(env, mesh, mesh_source, op, external)
                if workload is None or chart is None:
                    findings.append(
                        Finding(
                            env,
                            "route",
                            subject,
                            f"no Deployment rendered for {service.name}",
                            f"charts/{service.image}",
                        )
                    )
                    continue
                admitted = authorize(
                    mesh.policies,
                    workload,
                    Request(
                        op.method,
                        op.concrete,
                        principal=mesh.ingress_principal,
                        request_principal=mesh.token_principal if op.secured else None,
                    ),
                )
            except PolicyModelError as exc:
                findings.append(
                    Finding(env, "model", subject, str(exc), mesh_source.blame("protected"))
                )
                continue
            if not admitted:
                findings.append(
                    Finding(
                        env,
                        "route",
                        subject,
                        f"{service.name}'s AuthorizationPolicy does not admit the ingress "
                        "gateway for it",
                        chart.blame("mesh", "publicPrefixes"),
                    )
                )
    return findings


def _security(env: str, mesh: _Mesh, source: Source, op: Operation, external: str) -> list[Finding]:
    assert mesh.ingress is not None
    file = source.blame("protected")
    anonymous = authorize(mesh.policies, mesh.ingress, Request(op.method, external))
    subject = str(op)
    if not op.secured:
        if anonymous:
            return []
        return [
            Finding(
                env,
                "security",
                subject,
                "public in its OpenAPI, but the mesh blocks it without a token",
                file,
            )
        ]
    if anonymous:
        return [
            Finding(
                env,
                "security",
                subject,
                "secured in its OpenAPI, but the mesh lets it through without a token",
                file,
            )
        ]
    if mesh.token_principal is None:
        return [
            Finding(
                env,
                "security",
                subject,
                "no RequestAuthentication on the ingress gateway accepts user-auth's issuer "
                f"with audience {AUDIENCE}, so no token can ever pass",
                source.blame("jwt"),
            )
        ]
    signed = Request(op.method, external, request_principal=mesh.token_principal)
    if not authorize(mesh.policies, mesh.ingress, signed):
        return [
            Finding(env, "security", subject, "the mesh blocks it even with a valid token", file)
        ]
    return []


def _peers(entries: Iterable[Mapping[str, Any]], key: str) -> set[str]:
    """``app`` labels of same-namespace pod peers (namespaced peers are the ingress and infra)."""
    found = set()
    for rule in entries:
        for peer in rule.get(key) or []:
            if "podSelector" in peer and "namespaceSelector" not in peer:
                app = (peer["podSelector"].get("matchLabels") or {}).get("app")
                if app:
                    found.add(str(app))
    return found


def _difference(expected: set[str], actual: set[str]) -> str:
    parts = []
    if expected - actual:
        parts.append("missing " + ", ".join(sorted(expected - actual)))
    if actual - expected:
        parts.append("not in the registry: " + ", ".join(sorted(actual - expected)))
    return "; ".join(parts)


def check_callers(
    deployment: Deployment, mesh: _Mesh, services: Sequence[Service]
) -> list[Finding]:
    env, namespace = deployment.env, deployment.namespace
    findings = []
    accounts: dict[str, str] = {}  # service account -> service
    for rendered_by, obj in deployment.objects("Deployment"):
        pod = (obj["spec"].get("template") or {}).get("spec") or {}
        accounts[str(pod.get("serviceAccountName", "default"))] = rendered_by.component
    for service in services:
        source = deployment.source(service.name)
        workload = _workload(deployment, service)
        if source is None or workload is None:
            findings.append(
                Finding(
                    env,
                    "callers",
                    service.name,
                    "not rendered in this environment",
                    "argocd/applicationsets/shopflow-services.yaml",
                )
            )
            continue
        expected_in, expected_out = set(callers_of(service.name)), set(service.calls)
        allowed: set[str] = set()
        for obj in source.objects:
            if (
                obj.get("kind") != "AuthorizationPolicy"
                or (obj.get("spec") or {}).get("action", "ALLOW") != "ALLOW"
            ):
                continue
            for rule in (obj.get("spec") or {}).get("rules") or []:
                for entry in rule.get("from") or []:
                    for principal in (entry.get("source") or {}).get("principals") or []:
                        if principal == mesh.ingress_principal:
                            continue
                        match = _PRINCIPAL.match(str(principal))
                        if match is None or match["ns"] != namespace:
                            allowed.add(str(principal))
                        else:
                            allowed.add(accounts.get(match["sa"], f"service account {match['sa']}"))
        subject = f"{service.name} AuthorizationPolicy"
        if allowed != expected_in:
            findings.append(
                Finding(
                    env,
                    "callers",
                    subject,
                    f"callers {_difference(expected_in, allowed)}",
                    source.blame("mesh", "callers"),
                )
            )
        ingress: set[str] = set()
        egress: set[str] = set()
        for obj in source.objects:
            if obj.get("kind") == "NetworkPolicy":
                spec = obj.get("spec") or {}
                ingress |= _peers(spec.get("ingress") or [], "from")
                egress |= _peers(spec.get("egress") or [], "to")
        if ingress != expected_in:
            findings.append(
                Finding(
                    env,
                    "callers",
                    f"{service.name} NetworkPolicy ingress",
                    f"peers {_difference(expected_in, ingress)}",
                    source.blame("mesh", "callers"),
                )
            )
        if egress != expected_out:
            findings.append(
                Finding(
                    env,
                    "callers",
                    f"{service.name} NetworkPolicy egress",
                    f"peers {_difference(expected_out, egress)}",
                    source.blame("mesh", "callees"),
                )
            )
    return findings


def _link_target(
    link: Mapping[str, Any], document: OpenAPI, documents: Mapping[str, OpenAPI | None]
) -> str | None:
    """Why ``link`` leads nowhere, or None when its target exists (or is not checkable yet)."""
    if "operationId" in link:
        ids = {
            spec.get("operationId")
            for item in (document.get("paths") or {}).values()
            for spec in item.values()
            if isinstance(spec, Mapping)
        }
        return None if link["operationId"] in ids else f"no operationId {link['operationId']}"
    reference = str(link.get("operationRef", ""))
    location, _, pointer = reference.partition("#")
    parts = pointer.split("/")
    if len(parts) != 4 or parts[:2] != ["", "paths"]:
        return f"operationRef {reference!r} is not <document>#/paths/<path>/<method>"
    path = parts[2].replace("~1", "/").replace("~0", "~")
    owners = [s for s in SERVICES if location == f"{s.openapi_prefix}/openapi.json"]
    if not owners:
        return f"operationRef {reference!r} names no service's OpenAPI document"
    target = documents.get(owners[0].name)
    if target is None:
        return None  # pending: named by its own finding
    if parts[3] not in ((target.get("paths") or {}).get(path) or {}):
        return f"{owners[0].name}'s OpenAPI has no {parts[3].upper()} {path}"
    return None


def check_links(
    env: str, documents: Mapping[str, OpenAPI | None], services: Sequence[Service]
) -> list[Finding]:
    findings = []
    for service in services:
        document = documents.get(service.name)
        if document is None:
            continue
        for path, item in sorted((document.get("paths") or {}).items()):
            for method, spec in sorted(item.items()):
                if method not in HTTP_METHODS:
                    continue
                for status, response in sorted((spec.get("responses") or {}).items()):
                    for name, link in sorted((response.get("links") or {}).items()):
                        problem = _link_target(link, document, documents)
                        if problem:
                            findings.append(
                                Finding(
                                    env,
                                    "links",
                                    f"{method.upper()} {path} -> {status} link {name}",
                                    problem,
                                    f"apps/{service.image}/src/{service.package}/api.py",
                                )
                            )
    return findings


def check_environment(
    deployment: Deployment,
    documents: Mapping[str, OpenAPI | None],
    services: Sequence[Service] = SERVICES,
) -> list[Finding]:
    """Every contract for one environment. ``documents[name]`` is None for a service
    whose code has not landed yet: it gets a ``pending`` finding by name."""
    findings = [
        Finding(
            deployment.env,
            "pending",
            service.name,
            f"no code under apps/{service.image} yet: its prefixes, operations and security "
            "are not checked against an OpenAPI document",
            f"apps/{service.image}",
        )
        for service in services
        if documents.get(service.name) is None
    ]
    mesh = _read_mesh(deployment)
    findings += mesh.problems
    if mesh.table is not None:
        findings += check_owners(deployment, mesh, documents, services)
        if mesh.ingress is not None:
            findings += check_operations(deployment, mesh, documents, services)
    findings += check_callers(deployment, mesh, services)
    findings += check_links(deployment.env, documents, services)
    return findings
