import pytest
from shopflow_kit.config import ConfigError

from tests.kit_sample.app import Settings


def test_per_service_url_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOPFLOW_KIT_SAMPLE_DATABASE_URL", "postgres://a@h:1/own")
    monkeypatch.setenv("SHOPFLOW_DATABASE_URL", "postgres://b@h:2/other")
    assert Settings().resolved_database_url() == "postgres://a@h:1/own"


def test_shared_url_gets_the_service_database(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SHOPFLOW_KIT_SAMPLE_DATABASE_URL", raising=False)
    monkeypatch.setenv(
        "SHOPFLOW_DATABASE_URL", "postgres://u:p@db.internal:5432/postgres?ssl=require"
    )
    assert (
        Settings().resolved_database_url()
        == "postgres://u:p@db.internal:5432/kit_sample?ssl=require"
    )


def test_missing_url_names_both_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SHOPFLOW_KIT_SAMPLE_DATABASE_URL", raising=False)
    monkeypatch.delenv("SHOPFLOW_DATABASE_URL", raising=False)
    with pytest.raises(
        ConfigError, match="SHOPFLOW_KIT_SAMPLE_DATABASE_URL or SHOPFLOW_DATABASE_URL"
    ):
        Settings().resolved_database_url()


def test_non_postgres_url_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOPFLOW_KIT_SAMPLE_DATABASE_URL", "mysql://x@h/db")
    with pytest.raises(ConfigError, match="postgres://"):
        Settings().resolved_database_url()


def test_service_urls_default_to_cluster_dns() -> None:
    settings = Settings(database_url="postgres://x@h/db")
    assert settings.catalog_api_url == "http://catalog-api:4000"
    assert settings.jwks_url == "http://user-auth:4000/auth/.well-known/jwks.json"
    assert settings.oauth_token_url == "http://user-auth:4000/auth/oauth/token"


def test_cluster_names_resolve_to_the_configured_urls() -> None:
    local = Settings(
        database_url="postgres://x@h/db",
        catalog_api_url="http://127.0.0.1:4102",
        user_auth_url="http://127.0.0.1:4101/",
    )
    assert local.resolve_url("http://catalog-api:4000/health") == "http://127.0.0.1:4102/health"
    assert (
        local.resolve_url("http://catalog-api.shopflow-dev.svc.cluster.local:4000/products?q=a")
        == "http://127.0.0.1:4102/products?q=a"
    )
    assert local.resolve_url("http://user-auth:4000/auth/health") == (
        "http://127.0.0.1:4101/auth/health"
    )
    # Not a service on its cluster port: left as it is.
    for url in (
        "http://catalog-api:8080/health",
        "http://catalog-api/health",
        "https://catalog-api:4000/health",
        "http://auth-service:4000/health",  # an image name, not a Service name
        "http://catalog-api.example.com:4000/health",
        "http://127.0.0.1:4102/health",
    ):
        assert local.resolve_url(url) == url
    # In the cluster the defaults are the cluster names themselves.
    cluster = Settings(database_url="postgres://x@h/db")
    assert cluster.resolve_url("http://catalog-api:4000/health") == (
        "http://catalog-api:4000/health"
    )
