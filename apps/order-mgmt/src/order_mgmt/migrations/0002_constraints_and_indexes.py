"""CHECK constraints, the shopper's order listing index, and the recovery loop's partial index."""

from tortoise import migrations
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    dependencies = [("order_mgmt", "0001_initial")]

    operations = [
        ops.RunSQL(
            [
                "ALTER TABLE cart_items ADD CONSTRAINT cart_items_quantity_range "
                "CHECK (quantity BETWEEN 1 AND 99)",
                "ALTER TABLE orders ADD CONSTRAINT orders_total_nonnegative CHECK (total_cents >= 0)",
                "ALTER TABLE orders ADD CONSTRAINT orders_currency_iso CHECK (currency ~ '^[A-Z]{3}$')",
                "ALTER TABLE orders ADD CONSTRAINT orders_charge_attempts_range "
                "CHECK (charge_attempts BETWEEN 0 AND 4)",
                "CREATE INDEX orders_customer_newest_idx ON orders (customer_id, created_at DESC, id DESC)",
                # What the recovery loop scans: only orders with work left.
                "CREATE INDEX orders_unfinished_idx ON orders (lease_until) WHERE step IN "
                "('placed', 'reserved', 'charging', 'charged', 'releasing', 'refunding', "
                "'cancelling', 'restocking')",
            ],
            reverse_sql=[
                "DROP INDEX orders_unfinished_idx",
                "DROP INDEX orders_customer_newest_idx",
                "ALTER TABLE orders DROP CONSTRAINT orders_charge_attempts_range",
                "ALTER TABLE orders DROP CONSTRAINT orders_currency_iso",
                "ALTER TABLE orders DROP CONSTRAINT orders_total_nonnegative",
                "ALTER TABLE cart_items DROP CONSTRAINT cart_items_quantity_range",
            ],
        ),
    ]
