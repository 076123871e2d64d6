"""The platform's money limits: the currencies it sells in and the largest charge.

catalog-api prices products only in these currencies and at most this much,
order-mgmt refuses a cart whose total is more, and payment-api charges within
them: a product a shopper can put in a cart is one the platform can charge for.
"""

from __future__ import annotations

from typing import Literal, get_args

#: The currencies the platform takes (ISO 4217); the one list, used by validation and docs.
Currency = Literal["USD", "EUR", "GBP"]
SUPPORTED_CURRENCIES: tuple[str, ...] = get_args(Currency)
#: One charge is at most 1,000,000.00 in major units; anything above is a bug, not an order.
MAX_AMOUNT_CENTS = 100_000_000
