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
