"""Password policy and hashing, without HTTP."""

from __future__ import annotations

import argon2
import pytest
from auth_service import passwords


def test_common_password_list_is_large() -> None:
    assert len(passwords.common_passwords()) >= 10_000


@pytest.mark.parametrize(
    ("candidate", "reason"),
    [
        ("short", "at least 10"),
        ("password123", "too common"),
        ("PASSWORD123", "too common"),
        ("x" * 300, "at most 256"),
    ],
)
def test_weak_passwords_are_refused(candidate: str, reason: str) -> None:
    problem = passwords.password_problem(candidate)
    assert problem is not None and reason in problem


def test_a_good_password_passes() -> None:
    assert passwords.password_problem("a-long-and-unusual-passphrase") is None


async def test_hash_is_argon2id_at_owasp_parameters() -> None:
    hashed = await passwords.hash_password("a-long-and-unusual-passphrase")
    params = argon2.extract_parameters(hashed)
    assert params.type is argon2.Type.ID
    assert params.memory_cost >= 19 * 1024 and params.time_cost >= 2 and params.parallelism == 1
    assert await passwords.verify_password(hashed, "a-long-and-unusual-passphrase")
    assert not await passwords.verify_password(hashed, "wrong")
    assert not await passwords.verify_password("not-a-hash", "wrong")


def test_weaker_hashes_need_rehash() -> None:
    weak = argon2.PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1).hash("x")
    assert passwords.needs_rehash(weak)
    assert not passwords.needs_rehash(passwords.HASHER.hash("x"))
