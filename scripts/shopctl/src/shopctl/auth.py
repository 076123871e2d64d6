"""shopctl's user-auth operations, run against user-auth's database directly."""

from __future__ import annotations

import os
from datetime import datetime, timedelta

from auth_service.app import MODELS, Settings, key_ring
from auth_service.keys import KeyConfigError
from auth_service.service import create_admin as create_admin_account
from pydantic import SecretStr
from shopflow_kit.db import close_db, init_db, migrate
from shopflow_kit.errors import Problem

__all__ = ["AccountExists", "KeyConfigError", "create_admin", "rotate_keys"]


class AccountExists(RuntimeError):
    pass


def _settings(database_url: str) -> Settings:
    return Settings(database_url=SecretStr(database_url))


async def create_admin(database_url: str, email: str, password: str, name: str) -> str:
    settings = _settings(database_url)
    await migrate(settings, MODELS)
    await init_db(settings, MODELS)
    try:
        user = await create_admin_account(email, password, name)
    except Problem as exc:
        raise AccountExists(f"{email}: {exc.detail}") from None
    finally:
        await close_db()
    return str(user.id)


async def rotate_keys(database_url: str, activate_in: int) -> tuple[str, datetime]:
    settings = _settings(database_url)
    if (
        settings.key_encryption_key is None
        and "SHOPFLOW_AUTH_SERVICE_SIGNING_KEY" not in os.environ
    ):
        # The local platform's key-encryption key lives in .shopflow/secrets.json.
        from shopctl.repo import local_state, repo_root
        from shopctl.runner import local_secrets

        kek = str(local_secrets(local_state(repo_root()))["key_encryption_key"])
        settings = settings.model_copy(update={"key_encryption_key": SecretStr(kek)})
    keys = key_ring(settings)
    await migrate(settings, MODELS)
    await init_db(settings, MODELS)
    try:
        await keys.ensure_key()
        row = await keys.rotate(timedelta(seconds=activate_in))
    finally:
        await close_db()
    return row.kid, row.active_from
