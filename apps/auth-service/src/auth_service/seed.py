"""Local seed: an admin account whose credentials `shopctl up` generated."""

from __future__ import annotations

import asyncio

from shopflow_kit.db import close_db, init_db

from auth_service.app import MODELS, Settings
from auth_service.models import User
from auth_service.service import create_admin, normalize_email


async def seed(settings: Settings) -> None:
    if not settings.seed_admin_email or settings.seed_admin_password is None:
        return
    await init_db(settings, MODELS)
    try:
        if not await User.exists(email_normalized=normalize_email(settings.seed_admin_email)):
            await create_admin(
                settings.seed_admin_email, settings.seed_admin_password.get_secret_value(), "Admin"
            )
            print(f"seeded admin {settings.seed_admin_email}")
    finally:
        await close_db()


if __name__ == "__main__":
    asyncio.run(seed(Settings()))
