"""catalog-api's settings; read by the app, its operations and the tests alike."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict
from shopflow_kit import ServiceSettings
from shopflow_kit.registry import lookup

SERVICE = lookup("catalog-api")
MODELS = "catalog_api.models"


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix=SERVICE.env_prefix)
    service_name: str = SERVICE.name
    database_name: str = SERVICE.database
    sweep_interval_seconds: float = Field(default=5.0, gt=0)
    # Searches are the hot read: enough connections for both cores' worth of
    # PostgreSQL work while requests queue in the app, not in the database.
    database_pool_max: int = Field(default=10, ge=1, le=50)
