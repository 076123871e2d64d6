"""user-auth's tables."""

from __future__ import annotations

from tortoise import fields
from tortoise.models import Model


class User(Model):
    id = fields.UUIDField(primary_key=True)
    email = fields.CharField(max_length=320)
    #: Lower-cased email; unique, so emails compare case-insensitively.
    email_normalized = fields.CharField(max_length=320, unique=True)
    name = fields.CharField(max_length=200)
    password_hash = fields.CharField(max_length=255)
    role = fields.CharField(max_length=16, default="customer")
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "users"


class RefreshToken(Model):
    """One opaque refresh token, stored only as its SHA-256 hash.

    Tokens rotated from one login share a ``family_id``; reuse of a spent token
    revokes the whole family.
    """

    id = fields.UUIDField(primary_key=True)
    user: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "auth_service.User", related_name="refresh_tokens", on_delete=fields.CASCADE
    )
    family_id = fields.UUIDField(db_index=True)
    parent_id = fields.UUIDField(null=True)
    token_hash = fields.CharField(max_length=64, unique=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    expires_at = fields.DatetimeField()
    used_at = fields.DatetimeField(null=True)
    revoked_at = fields.DatetimeField(null=True)

    class Meta:
        table = "refresh_tokens"


class SigningKey(Model):
    """A JWT signing key; the private half is encrypted with the key-encryption key."""

    kid = fields.CharField(max_length=64, primary_key=True)
    alg = fields.CharField(max_length=8)
    public_jwk: fields.Field[dict[str, object]] = fields.JSONField()
    private_key_encrypted = fields.TextField()
    created_at = fields.DatetimeField(auto_now_add=True)
    #: Published in the JWKS at once; used for signing only from this moment.
    active_from = fields.DatetimeField()

    class Meta:
        table = "signing_keys"


class LoginFailure(Model):
    """A failed login, counted per account and per client address for throttling."""

    id = fields.BigIntField(primary_key=True)
    bucket = fields.CharField(max_length=340, db_index=True)
    failed_at = fields.DatetimeField(db_index=True)

    class Meta:
        table = "login_failures"
