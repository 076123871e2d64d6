"""A payment's lifecycle: the one place that says which status may follow which.

Pure data and one function, so the rules are tested without a database:

    (new) --> authorized --> captured --> refunded
      |           |
      +--> declined (the issuer said no)
      +--> failed   (the acquirer could not process it; retryable)
                  +--> failed (the capture could not be done)
"""

from __future__ import annotations

from enum import StrEnum


class PaymentStatus(StrEnum):
    AUTHORIZED = "authorized"
    CAPTURED = "captured"
    DECLINED = "declined"
    REFUNDED = "refunded"
    FAILED = "failed"


#: What a new payment may start as: the outcome of its authorization.
INITIAL: frozenset[PaymentStatus] = frozenset(
    {PaymentStatus.AUTHORIZED, PaymentStatus.DECLINED, PaymentStatus.FAILED}
)

TRANSITIONS: dict[PaymentStatus, frozenset[PaymentStatus]] = {
    PaymentStatus.AUTHORIZED: frozenset({PaymentStatus.CAPTURED, PaymentStatus.FAILED}),
    PaymentStatus.CAPTURED: frozenset({PaymentStatus.REFUNDED}),
    PaymentStatus.DECLINED: frozenset(),
    PaymentStatus.REFUNDED: frozenset(),
    PaymentStatus.FAILED: frozenset(),
}


class InvalidTransition(ValueError):
    def __init__(self, current: PaymentStatus | None, target: PaymentStatus) -> None:
        origin = current.value if current is not None else "a new payment"
        super().__init__(f"a payment cannot go from {origin} to {target.value}")
        self.current = current
        self.target = target


def can_transition(current: PaymentStatus | None, target: PaymentStatus) -> bool:
    if current is None:
        return target in INITIAL
    return target in TRANSITIONS[current]


def transition(current: PaymentStatus | None, target: PaymentStatus) -> PaymentStatus:
    """``target`` if the lifecycle allows it from ``current`` (None: a new payment)."""
    if not can_transition(current, target):
        raise InvalidTransition(current, target)
    return target
