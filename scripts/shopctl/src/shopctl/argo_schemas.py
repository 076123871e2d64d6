"""Strict schemas of the Argo CD fields this repo uses, written from Argo CD's docs.

Unknown fields are errors, so a typo in argocd/ fails validation instead of
being ignored by Argo CD's lenient decoding.
"""

from __future__ import annotations

from typing import Any


def obj(properties: dict[str, Any], required: tuple[str, ...] = ()) -> dict[str, Any]:
    schema: dict[str, Any] = {
        "type": "object",
        "additionalProperties": False,
        "properties": properties,
    }
    if required:
        schema["required"] = list(required)
    return schema


STR = {"type": "string"}
STR_LIST = {"type": "array", "items": STR}
STR_MAP = {"type": "object", "additionalProperties": STR}
METADATA = obj(
    {
        "name": STR,
        "namespace": STR,
        "labels": STR_MAP,
        "annotations": STR_MAP,
        "finalizers": STR_LIST,
    },
    ("name",),
)
HELM = obj(
    {
        "releaseName": STR,
        "valueFiles": STR_LIST,
        "values": STR,
        "kubeVersion": {"type": "string", "pattern": r"^\d+\.\d+\.\d+$"},
        "apiVersions": STR_LIST,
        "namespace": STR,
    }
)
SOURCE = obj(
    {
        "repoURL": STR,
        "targetRevision": STR,
        "path": STR,
        "chart": STR,
        "ref": STR,
        "helm": HELM,
        "directory": obj({"recurse": {"type": "boolean"}, "include": STR, "exclude": STR}),
    },
    ("repoURL",),
)
DESTINATION = obj({"name": STR, "server": STR, "namespace": STR}, ("namespace",))
SYNC_POLICY = obj(
    {
        "automated": obj({"prune": {"type": "boolean"}, "selfHeal": {"type": "boolean"}}),
        "retry": obj(
            {
                "limit": {"type": "integer"},
                "backoff": obj(
                    {"duration": STR, "factor": {"type": "integer"}, "maxDuration": STR}
                ),
            }
        ),
        "syncOptions": STR_LIST,
    }
)
APPLICATION_SPEC = obj(
    {
        "project": STR,
        "source": SOURCE,
        "sources": {"type": "array", "items": SOURCE},
        "destination": DESTINATION,
        "syncPolicy": SYNC_POLICY,
    },
    ("project", "destination"),
)
APPLICATION = obj(
    {
        "apiVersion": {"const": "argoproj.io/v1alpha1"},
        "kind": {"const": "Application"},
        "metadata": METADATA,
        "spec": APPLICATION_SPEC,
    },
    ("apiVersion", "kind", "metadata", "spec"),
)
GENERATOR: dict[str, Any] = {
    "type": "object",
    "maxProperties": 1,
    "minProperties": 1,
    "properties": {
        "git": obj(
            {
                "repoURL": STR,
                "revision": STR,
                "files": {"type": "array", "items": obj({"path": STR}, ("path",))},
            },
            ("repoURL", "revision"),
        ),
        "list": obj({"elements": {"type": "array", "items": {"type": "object"}}}, ("elements",)),
        "matrix": obj(
            {"generators": {"type": "array", "items": {"$ref": "#/$defs/generator"}}},
            ("generators",),
        ),
    },
    "additionalProperties": False,
}
APPLICATION_SET = {
    "$defs": {"generator": GENERATOR},
    **obj(
        {
            "apiVersion": {"const": "argoproj.io/v1alpha1"},
            "kind": {"const": "ApplicationSet"},
            "metadata": METADATA,
            "spec": obj(
                {
                    "goTemplate": {"type": "boolean"},
                    "goTemplateOptions": STR_LIST,
                    "generators": {"type": "array", "items": {"$ref": "#/$defs/generator"}},
                    "template": obj(
                        {
                            "metadata": METADATA,
                            "spec": {**APPLICATION_SPEC, "required": ["project", "destination"]},
                        },
                        ("metadata", "spec"),
                    ),
                    "templatePatch": STR,
                },
                ("generators", "template"),
            ),
        },
        ("apiVersion", "kind", "metadata", "spec"),
    ),
}
GROUP_KIND = obj({"group": STR, "kind": STR}, ("group", "kind"))
APP_PROJECT = obj(
    {
        "apiVersion": {"const": "argoproj.io/v1alpha1"},
        "kind": {"const": "AppProject"},
        "metadata": METADATA,
        "spec": obj(
            {
                "description": STR,
                "sourceRepos": STR_LIST,
                "destinations": {
                    "type": "array",
                    "items": obj({"name": STR, "server": STR, "namespace": STR}),
                },
                "clusterResourceWhitelist": {"type": "array", "items": GROUP_KIND},
                "namespaceResourceWhitelist": {"type": "array", "items": GROUP_KIND},
                "orphanedResources": obj({"warn": {"type": "boolean"}}),
                "roles": {
                    "type": "array",
                    "items": obj(
                        {
                            "name": STR,
                            "description": STR,
                            "groups": STR_LIST,
                            # p, proj:<project>:<role>, <resource>, <action>, <object>, <effect>
                            "policies": {
                                "type": "array",
                                "items": {
                                    "type": "string",
                                    "pattern": r"^p, proj:[a-z0-9-]+:[a-z0-9-]+, [a-z]+, "
                                    r"[a-z*/-]+, [a-z0-9*/-]+, (allow|deny)$",
                                },
                            },
                        },
                        ("name",),
                    ),
                },
                "syncWindows": {
                    "type": "array",
                    "items": obj(
                        {
                            "kind": {"enum": ["allow", "deny"]},
                            "schedule": STR,
                            "duration": STR,
                            "timeZone": STR,
                            "applications": STR_LIST,
                            "namespaces": STR_LIST,
                            "clusters": STR_LIST,
                            "manualSync": {"type": "boolean"},
                        },
                        ("kind", "schedule", "duration"),
                    ),
                },
            },
            ("sourceRepos", "destinations"),
        ),
    },
    ("apiVersion", "kind", "metadata", "spec"),
)

SCHEMAS = {
    ("argoproj.io/v1alpha1", "Application"): APPLICATION,
    ("argoproj.io/v1alpha1", "ApplicationSet"): APPLICATION_SET,
    ("argoproj.io/v1alpha1", "AppProject"): APP_PROJECT,
}
