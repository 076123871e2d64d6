"""Full-text search (weighted tsvector + GIN) and the stock/price CHECK constraints."""

from tortoise import migrations
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    dependencies = [("catalog_api", "0001_initial")]

    operations = [
        ops.RunSQL(
            [
                # Name matches (weight A) outrank description matches (weight B).
                "ALTER TABLE products ADD COLUMN search tsvector GENERATED ALWAYS AS ("
                "setweight(to_tsvector('english', coalesce(name, '')), 'A') || "
                "setweight(to_tsvector('english', coalesce(description, '')), 'B')) STORED",
                "CREATE INDEX products_search_idx ON products USING GIN (search)",
                "CREATE INDEX products_price_idx ON products (price_cents, id)",
                "CREATE INDEX products_created_idx ON products (created_at DESC, id)",
                "ALTER TABLE products ADD CONSTRAINT products_stock_nonnegative CHECK (stock >= 0)",
                "ALTER TABLE products ADD CONSTRAINT products_price_nonnegative CHECK (price_cents >= 0)",
                "ALTER TABLE products ADD CONSTRAINT products_currency_iso CHECK (currency ~ '^[A-Z]{3}$')",
                "ALTER TABLE reservation_items ADD CONSTRAINT reservation_items_quantity_positive "
                "CHECK (quantity > 0)",
                "CREATE INDEX reservation_items_product_idx ON reservation_items (product_id)",
                "CREATE INDEX reservations_live_idx ON reservations (status, expires_at)",
            ],
            reverse_sql=[
                "DROP INDEX reservations_live_idx",
                "DROP INDEX reservation_items_product_idx",
                "ALTER TABLE reservation_items DROP CONSTRAINT reservation_items_quantity_positive",
                "ALTER TABLE products DROP CONSTRAINT products_currency_iso",
                "ALTER TABLE products DROP CONSTRAINT products_price_nonnegative",
                "ALTER TABLE products DROP CONSTRAINT products_stock_nonnegative",
                "DROP INDEX products_created_idx",
                "DROP INDEX products_price_idx",
                "DROP INDEX products_search_idx",
                "ALTER TABLE products DROP COLUMN search",
            ],
        ),
    ]
