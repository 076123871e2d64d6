"""order-mgmt's configuration as the cluster and `shopctl up` give it: it matches the code."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
from order_mgmt.config import SERVICE, Settings
from shopctl.helm import documents, ensure_dependencies, mesh_virtual_service
from shopctl.render import applications_for, helm_arguments
from shopctl.runner import local_secrets, service_env
from shopctl.toolchain import require_helm

ROOT = Path(__file__).resolve().parents[2]
PREFIX = SERVICE.env_prefix


def rendered(env: str) -> list[dict[str, Any]]:
    """The order-mgmt Application of ``env``, rendered exactly as Argo CD would."""
    app = next(
        a for a in applications_for(ROOT, env) if a["metadata"]["name"].endswith("order-mgmt")
    )
    chart, args = helm_arguments(ROOT, app)
    ensure_dependencies(ROOT, chart)
    result = subprocess.run(
        [str(require_helm(ROOT)), *args], capture_output=True, text=True, timeout=120, check=True
    )
    return list(documents(result.stdout))


def settings_from(variables: dict[str, str]) -> Settings:
    fields = {}
    for name, value in variables.items():
        assert name.startswith(PREFIX), name
        field = name.removeprefix(PREFIX).lower()
        assert field in Settings.model_fields, f"{name} is not an order-mgmt setting"
        fields[field] = value
    return Settings.model_validate(fields)


def mesh_timeouts() -> dict[str, float]:
    """The mesh's timeout per order-mgmt route; POSTs are never retried there."""
    routes = {r["name"]: r for r in mesh_virtual_service(ROOT)["spec"]["http"]}
    for name in ("cart", "orders"):
        assert routes[name]["retries"] == {"attempts": 0}
    return {name: float(routes[name]["timeout"].removesuffix("s")) for name in ("cart", "orders")}


@pytest.mark.parametrize("env", ["dev", "staging", "prod"])
def test_the_chart_sets_only_real_settings_and_every_secret(env: str) -> None:
    docs = rendered(env)
    config = next(d for d in docs if d["kind"] == "ConfigMap")["data"]
    secret = next(d for d in docs if d["kind"] == "ExternalSecret")
    secret_keys = {item["secretKey"] for item in secret["spec"]["data"]}
    assert secret_keys == {
        f"{PREFIX}DATABASE_URL",
        f"{PREFIX}OAUTH_CLIENT_SECRET",
        f"{PREFIX}FINGERPRINT_KEY",
    }
    settings = settings_from(
        {
            **config,
            **dict.fromkeys(secret_keys, "postgres://user:a-long-secret-value@db:5432/orders"),
        }
    )
    assert settings.catalog_api_url == "http://catalog-api:4000"
    assert settings.payment_api_url == "http://payment-api:4000"
    assert settings.oauth_client_id == "order-mgmt"
    assert settings.fingerprint_key is not None
    assert settings.test_sigkill_after_step is None
    # A checkout answers, at worst 503 with Retry-After, before the mesh gives up on it;
    # so does a cart change (a product lookup, then the cart's prices).
    timeouts = mesh_timeouts()
    assert settings.checkout_deadline_seconds + 1 < timeouts["orders"]
    assert 2 * settings.catalog_timeout_seconds < timeouts["cart"]


def test_shopctl_up_runs_it_on_4003_with_a_local_fingerprint_key(tmp_path: Path) -> None:
    assert SERVICE.local_port == 4003
    env = service_env(
        SERVICE, "postgres://u:p@127.0.0.1:5544/orders", local_secrets(tmp_path), 8080, 1025
    )
    settings = settings_from(env)
    assert settings.catalog_api_url == "http://127.0.0.1:4002"
    assert settings.payment_api_url == "http://127.0.0.1:4004"
    assert settings.notify_hub_url == "http://127.0.0.1:4005"
    key = settings.fingerprint_key
    assert key is not None and len(key.get_secret_value()) >= 32
    # The key is generated once per checkout and kept with the other local secrets.
    again = service_env(
        SERVICE, "postgres://u:p@127.0.0.1:5544/orders", local_secrets(tmp_path), 8080, 1025
    )
    assert again[f"{PREFIX}FINGERPRINT_KEY"] == key.get_secret_value()
