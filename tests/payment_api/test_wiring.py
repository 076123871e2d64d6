"""What Argo CD would deploy for payment-api matches what the code reads."""

from __future__ import annotations

from pathlib import Path

import pytest
from payment_api.acquirers import ACQUIRERS, acquirer_for
from payment_api.config import SERVICE, Settings
from shopctl.render import render_environment
from shopctl.runner import local_secrets, service_env
from shopctl.services import SERVICES

ROOT = Path(__file__).resolve().parents[2]
#: What payment-api cannot serve without; each must come from the ExternalSecret.
SECRETS = {"database_url", "oauth_client_secret", "card_fingerprint_key"}


@pytest.mark.parametrize("env", ["dev", "staging", "prod"])
async def test_config_and_secret_keys_are_settings(env: str) -> None:
    (app,) = (await render_environment(ROOT, env, service="payment-api")).applications
    config = next(d for d in app.documents if d["kind"] == "ConfigMap")["data"]
    secret = next(d for d in app.documents if d["kind"] == "ExternalSecret")
    secret_keys = [item["secretKey"] for item in secret["spec"]["data"]]
    prefix = SERVICE.env_prefix
    names = {key.removeprefix(prefix).lower() for key in [*config, *secret_keys]}
    assert all(key.startswith(prefix) for key in [*config, *secret_keys])
    assert names <= set(Settings.model_fields), names - set(Settings.model_fields)
    assert {k.removeprefix(prefix).lower() for k in secret_keys} >= SECRETS
    assert not SECRETS & {k.removeprefix(prefix).lower() for k in config}
    # The rendered configuration, plus stand-ins for the secrets, is a working setup.
    values = {k.removeprefix(prefix).lower(): v for k, v in config.items()}
    settings = Settings(
        **values,
        database_url="postgres://u@db/payments",
        oauth_client_secret="s",
        card_fingerprint_key="k" * 64,
    )
    assert settings.acquirer in ACQUIRERS and acquirer_for(settings).name == settings.acquirer
    assert len(settings.derived_key("card-fingerprint")) == 32


def test_shopctl_up_gives_payment_api_its_own_fingerprint_key(tmp_path: Path) -> None:
    secrets = local_secrets(tmp_path)
    env = service_env(SERVICE, "postgres://u@127.0.0.1/payments", secrets, 8080, 1025)
    key = env[f"{SERVICE.env_prefix}CARD_FINGERPRINT_KEY"]
    assert len(key) >= 32 and key == local_secrets(tmp_path)["card_fingerprint_key"]
    assert (tmp_path / "secrets.json").stat().st_mode & 0o777 == 0o600
    settings = Settings.model_validate(
        {k.removeprefix(SERVICE.env_prefix).lower(): v for k, v in env.items()}
    )
    assert settings.card_fingerprint_key is not None
    # Least privilege: no other service is handed the key.
    for other in SERVICES:
        if other != SERVICE:
            other_env = service_env(other, "postgres://u@127.0.0.1/x", secrets, 8080, 1025)
            assert key not in other_env.values()
