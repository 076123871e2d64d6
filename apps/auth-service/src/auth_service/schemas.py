"""Request and response bodies of the auth API."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from pydantic import BaseModel, ConfigDict, EmailStr, Field, field_validator

from auth_service.passwords import password_problem


class Strict(BaseModel):
    # Unknown fields are refused: a "role" in a register body is never honoured.
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)


class RegisterIn(Strict):
    email: EmailStr = Field(max_length=320)
    password: str
    name: str = Field(min_length=1, max_length=200)

    @field_validator("password")
    @classmethod
    def strong_password(cls, value: str) -> str:
        problem = password_problem(value)
        if problem:
            raise ValueError(f"password {problem}")
        return value

    @field_validator("name")
    @classmethod
    def visible_name(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("name must not be blank")
        return value


class LoginIn(Strict):
    email: str = Field(min_length=1, max_length=320)
    password: str = Field(min_length=1, max_length=1024)


class RefreshIn(Strict):
    refresh_token: str = Field(min_length=1, max_length=512)


class UserOut(BaseModel):
    id: UUID
    email: str
    name: str
    role: str
    created_at: datetime


class MeOut(BaseModel):
    id: UUID
    email: str
    name: str
    role: str


class TokenPairOut(BaseModel):
    access_token: str
    token_type: str = "Bearer"  # noqa: S105 (a token type, not a secret)
    expires_in: int
    refresh_token: str


class ServiceTokenOut(BaseModel):
    access_token: str
    token_type: str = "Bearer"  # noqa: S105 (a token type, not a secret)
    expires_in: int
    scope: str


class JWKSOut(BaseModel):
    keys: list[dict[str, str]]


class OpenIDConfigurationOut(BaseModel):
    issuer: str
    jwks_uri: str
    token_endpoint: str
    grant_types_supported: list[str]
    token_endpoint_auth_methods_supported: list[str]
    id_token_signing_alg_values_supported: list[str]
    token_endpoint_auth_signing_alg_values_supported: list[str]
    response_types_supported: list[str]
    subject_types_supported: list[str]
    scopes_supported: list[str]


class ClientCredentialsForm(BaseModel):
    """RFC 6749 section 4.4: client authentication by Basic header or these form fields."""

    grant_type: str = Field(pattern="^client_credentials$")
    scope: str | None = None
    client_id: str | None = None
    client_secret: str | None = None
