"""user-auth's operations (``python -m auth_service <command>``), besides ``migrate``."""

from __future__ import annotations

import argparse
import getpass
import sys
from datetime import timedelta

from shopflow_kit.cli import Operation, OperationError
from shopflow_kit.errors import Problem

from auth_service import service
from auth_service.config import Settings
from auth_service.keys import key_ring
from auth_service.models import User


async def seed(settings: Settings, args: argparse.Namespace) -> str:
    """The local admin whose credentials `shopctl up` generated, once."""
    if not settings.seed_admin_email or settings.seed_admin_password is None:
        return "user-auth: no seed admin configured; nothing to seed"
    email = settings.seed_admin_email
    if await User.exists(email_normalized=service.normalize_email(email)):
        return f"user-auth: admin {email} already exists"
    await service.create_admin(email, settings.seed_admin_password.get_secret_value(), "Admin")
    return f"user-auth: seeded admin {email}"


def _read_password() -> str:
    """From the terminal (asked twice), or one line on standard input (``kubectl exec -i``)."""
    if sys.stdin.isatty():
        first = getpass.getpass("Password: ")
        if getpass.getpass("Repeat the password: ") != first:
            raise OperationError("the two passwords differ")
        return first
    return sys.stdin.readline().rstrip("\r\n")


def _admin_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--email", required=True)
    parser.add_argument("--name", default="Admin")


async def create_admin(settings: Settings, args: argparse.Namespace) -> str:
    """An admin account; the HTTP API can never create one. The password is never an argument."""
    password = _read_password()
    try:
        user = await service.create_admin(args.email, password, args.name)
    except ValueError as exc:
        raise OperationError(str(exc)) from None
    except Problem as exc:
        raise OperationError(f"{args.email}: {exc.detail}") from None
    return f"created admin {args.email} ({user.id})"


def _rotate_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--activate-in",
        type=int,
        default=360,
        help="seconds before the new key signs (default 360); it is published at once, so "
        "every verifier's JWKS cache has it before its first token",
    )


async def rotate_keys(settings: Settings, args: argparse.Namespace) -> str:
    """Publish a new signing key now and sign with it after ``--activate-in`` seconds."""
    if args.activate_in < 0:
        raise OperationError("--activate-in must be 0 or more")
    keys = key_ring(settings)
    await keys.ensure_key()
    row = await keys.rotate(timedelta(seconds=args.activate_in))
    return f"added signing key {row.kid}; published now, signing from {row.active_from.isoformat()}"


OPERATIONS = (
    Operation("seed", "create the local admin named in the settings (idempotent)", seed),
    Operation("create-admin", "create an admin account", create_admin, _admin_arguments),
    Operation("rotate-keys", "add a new signing key", rotate_keys, _rotate_arguments),
)
