"""A shopper mix through the gateway, for `make load` (Locust's FastHttpUser).

Weights follow a shop's traffic: browse 10, search 5, view a product 5, cart 3,
checkout 1. The cart and checkout tasks follow API.md; until order-mgmt is part
of the checkout, the gateway answers 404 for /cart and they switch themselves
off with a message instead of counting failures.

``CheckoutRush`` is `make bench`'s checkout load (tests/load/checkout.py): each
user only fills its cart and checks out, with no pause, as an already signed-in
shopper (tokens from ``SHOPFLOW_CHECKOUT_TOKENS``, products from
``SHOPFLOW_CHECKOUT_PRODUCTS``, both files). Name the class to run:
``locust -f locustfile.py Shopper`` or ``... CheckoutRush``. ``CheckoutPaced`` is
``CheckoutRush`` at a set rate per user (``SHOPFLOW_CHECKOUT_RATE_PER_USER``).
"""

from __future__ import annotations

import itertools
import json
import os
import random
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from locust import FastHttpUser, between, constant, constant_throughput, events, task

CATEGORIES = ["kitchen", "outdoor", "electronics", "books", "apparel", "home-office"]
SORTS = ["relevance", "price_asc", "price_desc", "name", "newest"]
WORDS = ["coffee", "steel", "classic", "tent", "wool", "lamp", "knife", "bamboo", "travel", "desk"]
# Card expiries more than 20 years ahead are refused: two years from now is a real card's.
CARD = {
    "card_number": "4242424242424242",
    "exp_month": 12,
    "exp_year": datetime.now(UTC).year + 2,
    "cvc": "123",
}
ADDRESS = {
    "name": "Load Shopper",
    "line1": "1 Main St",
    "city": "Springfield",
    "postal_code": "12345",
    "country": "US",
}
ORDERS_ENABLED: bool | None = None  # decided once, by the first shopper


class Shopper(FastHttpUser):
    wait_time = between(0.1, 0.5)
    product_ids: list[str] = []

    def on_start(self) -> None:
        global ORDERS_ENABLED
        email = f"shopper-{uuid.uuid4().hex[:12]}@example.com"
        password = "a-long-shopper-passphrase"
        self.client.post(
            "/auth/register", json={"email": email, "password": password, "name": "Shopper"}
        )
        login = self.client.post("/auth/login", json={"email": email, "password": password})
        token = login.json().get("access_token", "") if login.status_code == 200 else ""
        self.auth = {"Authorization": f"Bearer {token}"}
        if ORDERS_ENABLED is None:
            with self.client.get("/cart", headers=self.auth, catch_response=True) as probe:
                if probe.status_code == 404:
                    ORDERS_ENABLED = False
                    probe.success()
                    print(
                        "cart and checkout tasks disabled: the gateway answers 404 for /cart "
                        "(order-mgmt is not in this checkout yet)"
                    )
                else:
                    ORDERS_ENABLED = True

    def _remember(self, body: dict[str, Any]) -> None:
        ids = [item["id"] for item in body.get("items", [])]
        if ids:
            Shopper.product_ids = (Shopper.product_ids + ids)[-500:]

    def _add_to_cart(self, product: str) -> None:
        with self.client.put(
            f"/cart/items/{product}",
            json={"quantity": 1},
            headers=self.auth,
            name="/cart/items/{id}",
            catch_response=True,
        ) as response:
            # 409: sold out, or in another currency than the cart's; real answers.
            if response.status_code in (200, 409):
                response.success()

    @task(10)
    def browse(self) -> None:
        params = f"category={random.choice(CATEGORIES)}&sort={random.choice(SORTS[1:])}"
        page = random.choice([1, 1, 1, 2, 3, 10])
        response = self.client.get(f"/products?{params}&page={page}", name="/products?category")
        if response.status_code == 200:
            self._remember(response.json())

    @task(5)
    def search(self) -> None:
        response = self.client.get(f"/products?q={random.choice(WORDS)}", name="/products?q")
        if response.status_code == 200:
            self._remember(response.json())

    @task(5)
    def view_product(self) -> None:
        if Shopper.product_ids:
            product = random.choice(Shopper.product_ids)
            self.client.get(f"/products/{product}", name="/products/{id}")

    @task(3)
    def cart(self) -> None:
        if not ORDERS_ENABLED or not Shopper.product_ids:
            return
        self._add_to_cart(random.choice(Shopper.product_ids))
        self.client.get("/cart", headers=self.auth)

    @task(1)
    def checkout(self) -> None:
        if not ORDERS_ENABLED or not Shopper.product_ids:
            return
        self._add_to_cart(random.choice(Shopper.product_ids))
        with self.client.post(
            "/orders",
            json={"payment": CARD, "shipping_address": ADDRESS},
            headers={**self.auth, "Idempotency-Key": str(uuid.uuid4())},
            catch_response=True,
        ) as response:
            if response.status_code in (201, 409):  # 409: sold out meanwhile, a real answer
                response.success()


def _from_file(variable: str) -> list[Any]:
    path = os.environ.get(variable)
    return list(json.loads(Path(path).read_text())) if path else []


class CheckoutRush(FastHttpUser):
    """A signed-in shopper who only buys: one line in the cart, then checkout, again and again."""

    wait_time = constant(0)
    tokens = itertools.cycle(_from_file("SHOPFLOW_CHECKOUT_TOKENS") or [""])
    products = _from_file("SHOPFLOW_CHECKOUT_PRODUCTS")

    def on_start(self) -> None:
        self.auth = {"Authorization": f"Bearer {next(CheckoutRush.tokens)}"}

    @task
    def buy(self) -> None:
        product = random.choice(self.products)
        self.client.put(
            f"/cart/items/{product}",
            json={"quantity": random.randint(1, 3)},
            headers=self.auth,
            name="/cart/items/{id}",
        )
        self.client.post(
            "/orders",
            json={"payment": CARD, "shipping_address": ADDRESS},
            headers={**self.auth, "Idempotency-Key": str(uuid.uuid4())},
        )


class CheckoutPaced(CheckoutRush):
    """``CheckoutRush`` at a set pace: each user buys ``SHOPFLOW_CHECKOUT_RATE_PER_USER``
    times a second (Locust's ``constant_throughput``), so the platform is offered a
    fixed rate of orders rather than as many as it can take."""

    wait_time = constant_throughput(float(os.environ.get("SHOPFLOW_CHECKOUT_RATE_PER_USER", "1")))


@events.quitting.add_listener
def _report(environment: Any, **_: Any) -> None:
    stats = environment.stats.total
    print(f"requests {stats.num_requests}, failures {stats.num_failures}")
