"""Strict schema validation of rendered objects: Kubernetes, Istio, External Secrets.

- Kubernetes kinds: ``kubernetes-validate``'s strict schemas for the cluster's
  version (unknown fields are errors).
- Istio kinds: JSON schemas generated from ``cloudcoil-models-istio`` (the
  Istio API as pydantic models), made strict by forbidding unknown properties.
- ExternalSecret: a strict schema of the external-secrets.io/v1 fields we use.
- Kinds with no schema are reported, never passed silently.
"""

from __future__ import annotations

import copy
import importlib
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from typing import Any

import jsonschema
import kubernetes_validate

from shopctl.argo_schemas import SCHEMAS as ARGO_SCHEMAS

ISTIO_MODULES = {
    "networking.istio.io/v1": "cloudcoil.models.istio.networking.v1",
    "security.istio.io/v1": "cloudcoil.models.istio.security.v1",
}

EXTERNAL_SECRET_V1: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "external-secrets.io/v1"},
        "kind": {"const": "ExternalSecret"},
        "metadata": {"type": "object"},
        "spec": {
            "type": "object",
            "additionalProperties": False,
            "required": ["secretStoreRef", "target"],
            "properties": {
                "refreshInterval": {"type": "string", "pattern": "^[0-9]+[smh]$"},
                "secretStoreRef": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["name"],
                    "properties": {
                        "name": {"type": "string"},
                        "kind": {"enum": ["SecretStore", "ClusterSecretStore"]},
                    },
                },
                "target": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "name": {"type": "string"},
                        "creationPolicy": {"enum": ["Owner", "Orphan", "Merge", "None"]},
                    },
                },
                "data": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["secretKey", "remoteRef"],
                        "properties": {
                            "secretKey": {"type": "string"},
                            "remoteRef": {
                                "type": "object",
                                "additionalProperties": False,
                                "required": ["key"],
                                "properties": {
                                    "key": {"type": "string"},
                                    "property": {"type": "string"},
                                },
                            },
                        },
                    },
                },
            },
        },
    },
}

# Extra schemas, by (apiVersion, kind).
EXTRA_SCHEMAS: dict[tuple[str, str], dict[str, Any]] = {
    ("external-secrets.io/v1", "ExternalSecret"): EXTERNAL_SECRET_V1,
    **ARGO_SCHEMAS,
}


@dataclass(frozen=True)
class SchemaIssue:
    kind: str
    name: str
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.kind}/{self.name}: {self.field}: {self.message}"


def _strict(schema: Any) -> Any:
    """Forbid unknown properties in every object schema that lists its properties."""
    if isinstance(schema, dict):
        result = {k: _strict(v) for k, v in schema.items()}
        if "properties" in result and "additionalProperties" not in result:
            result["additionalProperties"] = False
        return result
    if isinstance(schema, list):
        return [_strict(v) for v in schema]
    return schema


@cache
def istio_schema(api_version: str, kind: str) -> dict[str, Any] | None:
    module_name = ISTIO_MODULES.get(api_version)
    if module_name is None:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        module = importlib.import_module(module_name)
    model = getattr(module, kind, None)
    if model is None:
        return None
    schema = copy.deepcopy(model.model_json_schema(by_alias=True))
    schema = _strict(schema)
    # metadata is Kubernetes ObjectMeta, already checked by name/labels elsewhere.
    schema["properties"]["metadata"] = {"type": "object"}
    return dict(schema)


def _path(error: jsonschema.ValidationError) -> str:
    return ".".join(str(p) for p in error.absolute_path) or "(root)"


def _precise(error: jsonschema.ValidationError) -> jsonschema.ValidationError:
    """For anyOf/oneOf failures, the deepest branch error names the real field."""
    if error.context:
        # Prefer the branch that got furthest into the object, not "is not null".
        deepest = max(
            error.context,
            key=lambda e: (len(e.absolute_path), e.validator != "type"),
        )
        return _precise(deepest)
    return error


def validate_object(doc: dict[str, Any], kube_version: str) -> list[SchemaIssue]:
    api_version, kind = str(doc.get("apiVersion", "")), str(doc.get("kind", ""))
    name = str((doc.get("metadata") or {}).get("name", "?"))
    schema = EXTRA_SCHEMAS.get((api_version, kind)) or istio_schema(api_version, kind)
    if schema is not None:
        validator = jsonschema.Draft202012Validator(schema)
        errors = [_precise(e) for e in validator.iter_errors(doc)]
        return [
            SchemaIssue(kind, name, _path(e), e.message)
            for e in sorted(errors, key=lambda e: [str(p) for p in e.absolute_path])
        ]
    group = api_version.split("/")[0] if "/" in api_version else ""
    if "." in group and not group.endswith(".k8s.io"):
        return [SchemaIssue(kind, name, "apiVersion", f"no schema known for {api_version} {kind}")]
    try:
        kubernetes_validate.validate(doc, kube_version.lstrip("v"), strict=True)
    except kubernetes_validate.ValidationError as exc:
        return [
            SchemaIssue(kind, name, ".".join(str(p) for p in exc.path) or "(root)", exc.message)
        ]
    except (kubernetes_validate.SchemaNotFoundError, kubernetes_validate.InvalidSchemaError) as exc:
        return [SchemaIssue(kind, name, "apiVersion", f"no Kubernetes schema: {exc}")]
    return []


def validate_objects(docs: Iterable[dict[str, Any]], kube_version: str) -> list[SchemaIssue]:
    return [issue for doc in docs for issue in validate_object(doc, kube_version)]
