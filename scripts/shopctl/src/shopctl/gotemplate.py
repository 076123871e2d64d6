"""The subset of Go's text/template that the repo's ApplicationSets use.

Supported: ``{{.a.b}}`` field access (``.`` alone too), ``{{- ... -}}`` trim
markers, and ``{{range .list}} ... {{end}}`` with ``.`` rebound to each item.
Anything else (functions, pipelines, ``if``, variables) is refused by name,
so a template the harness cannot render exactly is never rendered approximately.
With ``missingkey=error``, a missing key is an error, as in Argo CD.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

_ACTION = re.compile(r"\{\{(-?)\s*(.*?)\s*(-?)\}\}", re.DOTALL)
_FIELD = re.compile(r"^\.(?:[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)?$")


class TemplateError(ValueError):
    pass


@dataclass
class _Text:
    text: str


@dataclass
class _Field:
    path: str


@dataclass
class _Range:
    path: str
    body: list[Any]


def _tokens(source: str) -> list[tuple[str, str]]:
    """("text", s) and ("action", s) pairs, with trim markers applied."""
    tokens: list[tuple[str, str]] = []
    position = 0
    for match in _ACTION.finditer(source):
        text = source[position : match.start()]
        if match.group(1):
            text = text.rstrip()
        tokens.append(("text", text))
        tokens.append(("action", match.group(2)))
        position = match.end()
        if match.group(3):
            rest = source[position:]
            position += len(rest) - len(rest.lstrip())
    tokens.append(("text", source[position:]))
    return tokens


def _parse(tokens: list[tuple[str, str]], index: int, inside_range: bool) -> tuple[list[Any], int]:
    nodes: list[Any] = []
    while index < len(tokens):
        kind, value = tokens[index]
        index += 1
        if kind == "text":
            if value:
                nodes.append(_Text(value))
            continue
        if value == "end":
            if not inside_range:
                raise TemplateError("{{end}} without {{range}}")
            return nodes, index
        if value.startswith("range "):
            path = value[len("range ") :].strip()
            if not _FIELD.match(path):
                raise TemplateError(f"unsupported range expression {{{{range {path}}}}}")
            body, index = _parse(tokens, index, inside_range=True)
            nodes.append(_Range(path, body))
            continue
        if _FIELD.match(value):
            nodes.append(_Field(value))
            continue
        word = value.split()[0] if value.split() else value
        raise TemplateError(
            f"unsupported template action {{{{{value}}}}} ({word!r} is not implemented)"
        )
    if inside_range:
        raise TemplateError("{{range}} without {{end}}")
    return nodes, index


def _lookup(data: Any, path: str) -> Any:
    value = data
    for part in [p for p in path.split(".") if p]:
        if not isinstance(value, dict) or part not in value:
            raise TemplateError(f'map has no entry for key "{part}" (in {path})')
        value = value[part]
    return value


def _format(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "<no value>"
    if isinstance(value, (dict, list)):
        raise TemplateError("cannot print a map or list; use range")
    return str(value)


def _render(nodes: list[Any], data: Any) -> str:
    out = []
    for node in nodes:
        if isinstance(node, _Text):
            out.append(node.text)
        elif isinstance(node, _Field):
            out.append(_format(_lookup(data, node.path)))
        else:
            items = _lookup(data, node.path)
            if not isinstance(items, list):
                raise TemplateError(f"range over {node.path}: not a list")
            out.extend(_render(node.body, item) for item in items)
    return "".join(out)


def render(source: str, data: dict[str, Any]) -> str:
    nodes, _ = _parse(_tokens(source), 0, inside_range=False)
    return _render(nodes, data)


def render_tree(tree: Any, data: dict[str, Any]) -> Any:
    """Render every string in a YAML tree (Argo CD templates each field)."""
    if isinstance(tree, dict):
        return {render(k, data): render_tree(v, data) for k, v in tree.items()}
    if isinstance(tree, list):
        return [render_tree(v, data) for v in tree]
    if isinstance(tree, str):
        return render(tree, data)
    return tree
