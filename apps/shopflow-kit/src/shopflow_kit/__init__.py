"""ShopFlow's shared service kit: everything the five services have in common."""

from shopflow_kit.app import create_app
from shopflow_kit.config import ServiceSettings
from shopflow_kit.errors import Problem
from shopflow_kit.security import Principal, require_role, require_scope, require_user
from shopflow_kit.validation import json_body, parse_json, parse_query

__all__ = [
    "Principal",
    "Problem",
    "ServiceSettings",
    "create_app",
    "json_body",
    "parse_json",
    "parse_query",
    "require_role",
    "require_scope",
    "require_user",
]
