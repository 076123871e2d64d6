"""notify-hub's chart, as Argo CD renders it per environment, configures the code it runs."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from notify_hub.config import Settings
from shopctl.render import render_environment

ROOT = Path(__file__).resolve().parents[2]
PREFIX = "SHOPFLOW_NOTIFY_HUB_"


def rendered(env: str) -> list[dict[str, Any]]:
    result = asyncio.run(render_environment(ROOT, env, service="notify-hub"))
    return [doc for app in result.applications for doc in app.documents]


@pytest.mark.parametrize("env", ["dev", "staging", "prod"])
def test_chart_values_and_secret_keys_match_the_settings(env: str) -> None:
    docs = rendered(env)
    config = next(d for d in docs if d["kind"] == "ConfigMap")["data"]
    secret = next(d for d in docs if d["kind"] == "ExternalSecret")
    secret_keys = {item["secretKey"] for item in secret["spec"]["data"]}
    assert f"{PREFIX}SMTP_PASSWORD" in secret_keys

    fields = set(Settings.model_fields)
    for key in [*config, *secret_keys]:
        assert key.startswith(PREFIX), key
        name = key.removeprefix(PREFIX).lower()
        # Every key the chart sets is a setting the code reads.
        assert name in fields, key

    # What the pod would read: the ConfigMap as environment, the secret as files.
    values = {k.removeprefix(PREFIX).lower(): v for k, v in config.items()}
    settings = Settings(
        **values, smtp_password="from-the-external-secret", database_url="postgres://db/notify"
    )
    assert settings.smtp_port == 587 and settings.smtp_starttls is True
    assert settings.smtp_host not in ("127.0.0.1", "localhost")
    assert settings.smtp_username and settings.smtp_password is not None
    assert "@" in settings.mail_from


def test_the_password_never_appears_in_values_or_config() -> None:
    for env in ("dev", "prod"):
        config = next(d for d in rendered(env) if d["kind"] == "ConfigMap")["data"]
        assert not any("PASSWORD" in key for key in config)
