"""One checkout in progress per shopper: parallel checkouts of one cart never both charge.

Two ``POST /orders`` with different Idempotency-Keys (a double click, two tabs)
would otherwise each copy the whole cart into an order of its own. The index
covers exactly the steps of ``order_mgmt.checkout.CHECKOUT_PENDING``; a test
keeps the two in step.
"""

from tortoise import migrations
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    dependencies = [("order_mgmt", "0002_constraints_and_indexes")]

    operations = [
        ops.RunSQL(
            [
                "CREATE UNIQUE INDEX orders_one_checkout_per_customer ON orders (customer_id) "
                "WHERE step IN ('placed', 'reserved', 'charging', 'charged', 'releasing', "
                "'refunding')",
            ],
            reverse_sql=["DROP INDEX orders_one_checkout_per_customer"],
        ),
    ]
